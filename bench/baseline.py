"""The baseline of the unthrottled runs: the plain Python script a user would write instead."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import sqlalchemy as sa

from bench import workload
from bench.harness import BatchTiming, check_rows, read_batches


@dataclass
class BaselineRun:
    started: float
    ended: float
    batches: list[BatchTiming]
    rows_once: bool

    @property
    def wall(self) -> float:
        return self.ended - self.started


def plain_script(engine_url: str, min_id: int, max_id: int, batch_size: int, threads: int) -> BaselineRun:
    """What a user would write by hand: the same ranges, top down, the same work, one transaction per batch,
    on a thread pool as large as the Airflow pool. No throttle, no tracker, no resume."""
    engine = sa.create_engine(engine_url, pool_size=threads, max_overflow=0)
    workload.reset_rows(engine)

    def one(end_id: int) -> int:
        with engine.begin() as conn:
            return workload.do_work(conn, max(min_id, end_id - batch_size + 1), end_id, None,
                                    f"thread-{threading.get_ident()}")

    started = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(max_id, min_id - 1, -batch_size)))
    ended = time.time()
    batches = read_batches(engine, min_id, max_id, batch_size)
    rows_once, _ = check_rows(engine, min_id, max_id)
    engine.dispose()
    return BaselineRun(started, ended, batches, rows_once)
