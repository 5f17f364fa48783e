"""Benchmark: planning cost of a text key in "rows" batching on PostgreSQL, against an integer key.

One cycle of the reference's busiest rate (1,350 batches of 70: 94,501 index entries walked) cut by
``TextCarver`` on 10^6 rows keyed by ``TEXT COLLATE "en-x-icu"`` (mixed-case words, accents), with the
cursor at the top and in the middle, and by ``RowCarver`` on 10^6 BIGINT keys as the baseline in the same
run, interleaved (medians of 9 after a warm-up). EXPLAIN (ANALYZE) shows the text read's plan. The tables
are created once in the database of ``SPREADER_TEST_POSTGRES_URL``; Redis is ``REDIS_URL`` (the carver
reads the cursor's text there). Run: ``python -m bench.text_planning``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import redis
import sqlalchemy as sa

from airflow_spreader.core.keys import TEXT_MIN, TEXT_TOP
from airflow_spreader.sql.boundaries import RowCarver
from airflow_spreader.sql.table import SourceTable
from airflow_spreader.sql.text_keys import key_at, text_statement
from airflow_spreader.state.text_keys import TextCarver, TextKeys, TextKeyStore
from airflow_spreader.state.tracker import Tracker
from bench.common import Stats

ROWS, BATCH_SIZE, SLOTS, RUNS = 10**6, 70, 1350, 9
TEXT_TABLE, INT_TABLE = "spreader_bench_text_1e6", "spreader_bench_int_1e6"
#: Mixed-case words with accents, unique: the ICU order differs from the code points' one.
TEXT_KEY = "(array['Ab','ab','é','E','_x',' a','zz','Ø'])[1 + g % 8] || md5(g::text)"


def ensure(engine: sa.Engine, name: str, column: str, key: str) -> None:
    with engine.begin() as conn:
        if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": name}).scalar() is not None:
            return
        conn.execute(sa.text(f"CREATE TABLE {name} (id {column} PRIMARY KEY, counter INTEGER NOT NULL DEFAULT 0)"))
        conn.execute(sa.text(f"INSERT INTO {name} (id) SELECT {key} FROM generate_series(1, {ROWS}) g"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # index-only scans need it
        conn.execute(sa.text(f"VACUUM ANALYZE {name}"))


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    engine = sa.create_engine(os.environ.get("SPREADER_TEST_POSTGRES_URL",
                                             "postgresql+psycopg2://postgres@127.0.0.1:5432/test"))
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ensure(engine, TEXT_TABLE, 'TEXT COLLATE "en-x-icu"', TEXT_KEY)
    ensure(engine, INT_TABLE, "BIGINT", "g * 3")
    text_table, int_table = SourceTable(TEXT_TABLE), SourceTable(INT_TABLE)
    with engine.connect() as conn:
        top = conn.execute(sa.text(f"SELECT id FROM {TEXT_TABLE} ORDER BY id DESC LIMIT 1")).scalar_one()
    tracker = Tracker("bench-text-planning", client)
    tracker.reset()
    store = TextKeyStore(tracker)
    store.begin(top)
    middle = key_at(engine, text_table, low=None, high=top, offset=ROWS // 2)
    assert middle is not None
    store.mint({TEXT_TOP - ROWS // 2: middle})
    text_carve = TextCarver(TextKeys(store, engine, text_table), BATCH_SIZE)
    int_carve = RowCarver(engine, int_table, BATCH_SIZE)
    cases: dict[str, Callable[[], object]] = {
        "text, cursor at the top": lambda: text_carve(TEXT_TOP, TEXT_MIN, SLOTS),
        "text, cursor in the middle": lambda: text_carve(TEXT_TOP - ROWS // 2, TEXT_MIN, SLOTS),
        "bigint (baseline), top": lambda: int_carve(3 * ROWS, 3, SLOTS),
        "bigint (baseline), middle": lambda: int_carve(3 * ROWS // 2, 3, SLOTS),
    }
    assert len(text_carve(TEXT_TOP, TEXT_MIN, SLOTS)) == SLOTS
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(RUNS + 1):  # interleaved; the first round warms the caches and is dropped
        for name, call in cases.items():
            times[name].append(timed(call))
    load = os.getloadavg()[0]
    print(f"| case ({ROWS:,} rows, {SLOTS} batches of {BATCH_SIZE}) | ms, median [min .. max] of {RUNS} |")
    print("|---|---|")
    for name, values in times.items():
        print(f"| {name} | {Stats.of(values[1:]).fmt(3, 1000)} |")
    base = Stats.of(times["bigint (baseline), top"][1:]).median
    print(f"\nratio text/bigint at the top: {Stats.of(times['text, cursor at the top'][1:]).median / base:.2f}; "
          f"1-min load average {load:.2f} on {os.cpu_count()} cores")
    with engine.connect() as conn:
        sql = str(text_statement(text_table, below=top, batch_size=BATCH_SIZE, count=SLOTS).compile(
            engine, compile_kwargs={"literal_binds": True}))
        plan = [row[0] for row in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}")]
    print("\n" + "\n".join(f"    {line}" for line in plan))
    tracker.reset()


if __name__ == "__main__":
    main()
