"""The baselines: the plain Python script a user would write instead, unthrottled or paced."""

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


class Pacer:
    """The limiter a user would put in front of a thread pool: batch k may start at ``start + k / per_second``
    (a token bucket of one token that keeps its debt: a batch that falls behind runs as soon as a thread is
    free, so late batches catch up, as the backfill's overdue batches do). ``take`` sleeps until the next
    batch's moment and returns it, the batch's planned start."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self.start = 0.0
        self.issued = 0
        self.lock = threading.Lock()

    def begin(self) -> None:
        self.start, self.issued = time.time(), 0

    def take(self) -> float:
        with self.lock:
            planned = self.start + self.issued * self.interval
            self.issued += 1
        time.sleep(max(0.0, planned - time.time()))
        return planned


def plain_script(engine_url: str, min_id: int, max_id: int, batch_size: int, threads: int,
                 per_second: float | None = None) -> BaselineRun:
    """What a user would write by hand: the same ranges, top down, the same work, one transaction per batch,
    on a thread pool as large as the Airflow pool; with ``per_second``, paced by a ``Pacer`` (each batch
    records its planned start, as the backfill's do). No tracker, no resume."""
    engine = sa.create_engine(engine_url, pool_size=threads, max_overflow=0)
    workload.reset_rows(engine)
    pacer = Pacer(per_second) if per_second else None

    def one(end_id: int) -> int:
        planned = pacer.take() if pacer else None
        with engine.begin() as conn:
            return workload.do_work(conn, max(min_id, end_id - batch_size + 1), end_id, planned,
                                    f"thread-{threading.get_ident()}")

    started = time.time()
    if pacer:
        pacer.begin()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(max_id, min_id - 1, -batch_size)))
    ended = time.time()
    batches = read_batches(engine, min_id, max_id, batch_size)
    rows_once, _ = check_rows(engine, min_id, max_id)
    engine.dispose()
    return BaselineRun(started, ended, batches, rows_once)
