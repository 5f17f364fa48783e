"""Benchmark 5: "rows" batching's planning cost on PostgreSQL, and a sparse table in "ids" against "rows".

(a) One cycle of the reference's busiest rate (1,350 batches of 70) cut by ``RowCarver``: one query walking
94,501 entries of the key's index, on tables of 10^5, 10^6 and 10^7 rows, with the cursor at the top and
in the middle; the same cycle claimed through the tracker (Redis) with the rows carve and, as the baseline
in the same run, with the ids carve (no read). EXPLAIN (ANALYZE, BUFFERS) shows the plan. The same carve
on a table of 10^6 rows keyed by a PostgreSQL ``uuid`` (random, version 4), its plan too. (b) A sparse
table, 10^5 rows over 10^12 ids, at the same rate: its whole walk claimed in "rows" batching, and a bounded
number of "ids" cycles claimed and extrapolated to the whole key span.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

import redis
import sqlalchemy as sa

from airflow_spreader.core.carving import Carve, id_carver
from airflow_spreader.core.keys import to_key
from airflow_spreader.sql.boundaries import RowCarver, tops_statement
from airflow_spreader.sql.table import SourceTable, inspect_table, key_image
from airflow_spreader.state.tracker import Tracker
from bench.common import Section, Stats, Table, fmt

BATCH_SIZE = 70
PER_SECOND = 7.5
DURATION = 180
SLOTS = 1350  # 7.5/s x 180 s
TARGET_MS = 100.0
SIZES = [10**5, 10**6, 10**7]
#: Dense tables' keys: 3, 6, 9, ... (a key that is not the row number; density does not matter to the walk).
STEP = 3
SPARSE_ROWS = 10**5
SPARSE_SPAN = 10**12
#: Sparse keys: one per stretch of 10^7 ids, at a hashed offset inside it (distinct, over 1..10^12).
SPARSE_KEY = "g::bigint * 10000000 - (abs(hashtext(g::text)) % 9999999)"
SPARSE_TABLE = "spreader_bench_sparse"
IDS_CYCLES = 5
UUID_ROWS = 10**6
UUID_TABLE = "spreader_bench_uuid_1e6"
T0 = datetime(2027, 1, 4, 12, tzinfo=timezone.utc)


def table_name(rows: int) -> str:
    return f"spreader_bench_rows_1e{round(math.log10(rows))}"


def ensure_table(engine: sa.Engine, name: str, rows: int, key: str, key_type: str = "BIGINT") -> float | None:
    """Create ``name`` (BIGINT key, a text payload, a counter) once: reused while its comment says it holds
    these rows. Returns the seconds its creation took, None when it was reused."""
    marker = f"spreader-bench: {rows} rows, key {key}" + ("" if key_type == "BIGINT" else f" {key_type}")
    with engine.connect() as conn:
        comment = conn.execute(sa.text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": name}).scalar()
    if comment == marker:
        return None
    started = time.monotonic()
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE TABLE {name} (id {key_type} PRIMARY KEY, payload TEXT NOT NULL, "
                             "counter INTEGER NOT NULL DEFAULT 0)"))
        conn.execute(sa.text(f"INSERT INTO {name} (id, payload) SELECT {key}, md5(g::text) "
                             f"FROM generate_series(1, {rows}) g"))
        conn.execute(sa.text(f"VACUUM (ANALYZE) {name}"))  # the visibility map an index-only scan needs
        conn.execute(sa.text(f"COMMENT ON TABLE {name} IS '{marker}'"))
    return time.monotonic() - started


def bounds(engine: sa.Engine, name: str, rows: int) -> tuple[int, int, int]:
    """(min key, the key of the middle row, max key)."""
    with engine.connect() as conn:
        low, high = conn.execute(sa.text(f"SELECT MIN(id), MAX(id) FROM {name}")).one()
        middle = conn.execute(sa.text(f"SELECT id FROM {name} ORDER BY id DESC OFFSET :n LIMIT 1"),
                              {"n": rows // 2}).scalar_one()
    return int(low), int(middle), int(high)


def explain(engine: sa.Engine, name: str, cursor: Any, low: Any) -> list[str]:
    statement = tops_statement(SourceTable(name), below=cursor, above=low, batch_size=BATCH_SIZE, count=SLOTS)
    sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    # as compiled for psycopg2 (its modulo escaped as %%): sent to the driver as is, not through sa.text
    with engine.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")]


def time_once(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def claim_timer(client: redis.Redis, name: str, top: int, low: int, carve: Carve,
                from_top: bool = False) -> Callable[[], float]:
    """A fresh tracker on ``top..low``; each call claims its next cycle and returns the seconds it took.
    ``from_top``: each call first starts the tracker again (untimed), so that every claim is the first cycle."""
    tracker = Tracker(name, client)
    tracker.reset()
    tracker.start(max_id=top, min_id=low)
    cycles = [0]

    def claim() -> float:
        if from_top:
            tracker.reset()
            tracker.start(max_id=top, min_id=low)
        begin_at = T0 + timedelta(seconds=DURATION * cycles[0])
        cycles[0] += 1
        started = time.perf_counter()
        tracker.claim_cycle(batch_size=BATCH_SIZE, per_second=PER_SECOND, duration=DURATION, begin_at=begin_at,
                            lease_seconds=10**7, carve=carve)
        return time.perf_counter() - started

    return claim


def planning_cost(engine: sa.Engine, client: redis.Redis, repeats: int) -> tuple[Table, Table, dict[str, float]]:
    layouts = {rows: bounds(engine, table_name(rows), rows) for rows in SIZES}
    carvers = {rows: RowCarver(engine, SourceTable(table_name(rows)), BATCH_SIZE) for rows in SIZES}
    for rows, (low, _, high) in layouts.items():
        if len(carvers[rows](high, low, SLOTS)) != min(SLOTS, math.ceil(rows / BATCH_SIZE)):
            raise AssertionError(f"the rows carve of {table_name(rows)} cut the wrong number of ranges")
    claims = {(mode, rows): claim_timer(client, f"spreader-bench-rows-{mode}-{rows}", layouts[rows][2],
                                        layouts[rows][0], carvers[rows] if mode == "rows" else id_carver(BATCH_SIZE),
                                        from_top=True)
              for rows in SIZES for mode in ("rows", "ids")}
    samples: dict[tuple[str, int], list[float]] = {}
    for run in range(repeats + 1):  # interleaved; the first round only warms the caches and is dropped
        for rows, (low, middle, high) in layouts.items():
            for case, cursor in (("top", high), ("middle", middle)):
                took = time_once(partial(carvers[rows], cursor, low, SLOTS))
                if run:
                    samples.setdefault((case, rows), []).append(took)
            for mode in ("rows", "ids"):
                took = claims[mode, rows]()
                if run:
                    samples.setdefault((f"claim {mode}", rows), []).append(took)
    for mode, rows in claims:
        Tracker(f"spreader-bench-rows-{mode}-{rows}", client).reset()
    stats = {key: Stats.of(values) for key, values in samples.items()}
    table = Table(f"Rows carve of one cycle ({SLOTS:,} batches of {BATCH_SIZE}: {SLOTS * BATCH_SIZE + 1:,} "
                  "index entries), PostgreSQL",
                  ["table rows", "carve, cursor at the top, ms", "carve, cursor in the middle, ms",
                   "claim_cycle with the rows carve, ms", "claim_cycle with the ids carve (baseline), ms",
                   "rows claim - ids claim, ms"])
    for rows in SIZES:
        table.add(f"10^{round(math.log10(rows))}", stats["top", rows].fmt(3, 1000), stats["middle", rows].fmt(3, 1000),
                  stats["claim rows", rows].fmt(3, 1000), stats["claim ids", rows].fmt(3, 1000),
                  fmt((stats["claim rows", rows].median - stats["claim ids", rows].median) * 1000, 3))
    low, _, high = layouts[SIZES[-1]]
    plan = explain(engine, table_name(SIZES[-1]), high, low)
    plan_table = Table(f"EXPLAIN (ANALYZE, BUFFERS) of the carve on {table_name(SIZES[-1])}, cursor at the top",
                       ["plan line"])
    for line in plan:
        plan_table.add(f"`{line.replace('|', '/')}`")
    figures = {"worst_ms": max(s.median for (case, _), s in stats.items() if case in ("top", "middle")) * 1000,
               "flat": stats["top", SIZES[-1]].low / stats["top", SIZES[0]].low,
               "top_1e7_ms": stats["top", SIZES[-1]].median * 1000,
               "index_only": float("Index Only Scan" in "\n".join(plan)),
               "heap_fetches": float(sum(int(n) for n in re.findall(r"Heap Fetches: (\d+)", "\n".join(plan))))}
    return table, plan_table, figures


def uuid_cost(engine: sa.Engine, repeats: int) -> tuple[Table, dict[str, float]]:
    """The rows carve of the busiest cycle on a uuid key (its images, core/keys.py), cursor at the top and in
    the middle, and its plan."""
    table = SourceTable(UUID_TABLE)
    found = inspect_table(engine, table)
    assert found.min_id is not None and found.max_id is not None
    with engine.connect() as conn:
        middle = key_image(table, conn.execute(sa.text(f"SELECT id FROM {UUID_TABLE} ORDER BY id DESC OFFSET :n "
                                                       "LIMIT 1"), {"n": UUID_ROWS // 2}).scalar_one(), "middle",
                           like=found.max_id)
    carve = RowCarver(engine, table, BATCH_SIZE)
    if len(carve(found.max_id, found.min_id, SLOTS)) != SLOTS:
        raise AssertionError(f"the rows carve of {UUID_TABLE} cut the wrong number of ranges")
    samples: dict[str, list[float]] = {"top": [], "middle": []}
    for run in range(repeats + 1):  # the first round only warms the caches and is dropped
        for case, cursor in (("top", found.max_id), ("middle", middle)):
            took = time_once(partial(carve, cursor, found.min_id, SLOTS))
            if run:
                samples[case].append(took)
    plan = explain(engine, UUID_TABLE, to_key(found.max_id), to_key(found.min_id))
    stats = {case: Stats.of(values) for case, values in samples.items()}
    result = Table(f"Rows carve of one cycle on {UUID_TABLE} ({UUID_ROWS:,} rows, key `uuid`), PostgreSQL",
                   ["cursor", "carve, ms", "plan line"])
    result.add("at the top", stats["top"].fmt(3, 1000), "")
    result.add("in the middle", stats["middle"].fmt(3, 1000), "")
    for line in plan:
        result.add("", "", f"`{line.replace('|', '/')}`")
    joined = "\n".join(plan)
    return result, {"worst_ms": max(s.median for s in stats.values()) * 1000,
                    "index_only": float("Index Only Scan" in joined),
                    "heap_fetches": float(sum(int(n) for n in re.findall(r"Heap Fetches: (\d+)", joined)))}


def sparse_walk(engine: sa.Engine, client: redis.Redis) -> tuple[Table, dict[str, float]]:
    low, _, high = bounds(engine, SPARSE_TABLE, SPARSE_ROWS)
    rows_claim = claim_timer(client, "spreader-bench-sparse-rows", high, low,
                             RowCarver(engine, SourceTable(SPARSE_TABLE), BATCH_SIZE))
    tracker = Tracker("spreader-bench-sparse-rows", client)
    rows_times: list[float] = []
    while (tracker.progress().cursor or 0) >= low:
        rows_times.append(rows_claim())
    rows_batches = tracker.progress().batches_planned
    ids_claim = claim_timer(client, "spreader-bench-sparse-ids", high, low, id_carver(BATCH_SIZE))
    ids_times = [ids_claim() for _ in range(IDS_CYCLES)]
    ids_cursor = Tracker("spreader-bench-sparse-ids", client).progress().cursor or 0
    with engine.connect() as conn:  # rows inside the ids cycles claimed: what those batches would touch
        ids_rows = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {SPARSE_TABLE} WHERE id > :c"),
                                    {"c": ids_cursor}).scalar() or 0)
    for name in ("spreader-bench-sparse-rows", "spreader-bench-sparse-ids"):
        Tracker(name, client).reset()
    span = high - low + 1
    ids_batches = math.ceil(span / BATCH_SIZE)
    ids_cycles = math.ceil(ids_batches / SLOTS)
    rows_stats, ids_stats = Stats.of(rows_times), Stats.of(ids_times)
    table = Table(f"A sparse table ({SPARSE_ROWS:,} rows over {span:,} ids) at {PER_SECOND}/s, batches of "
                  f"{BATCH_SIZE}, cycles of {DURATION} s",
                  ["batching", "batches", "cycles", "claim per cycle, ms", "planning in all",
                   "wall time at the rate (batches / rate)", "how"])
    rows_wall = rows_batches / PER_SECOND
    table.add('"rows"', f"{rows_batches:,}", len(rows_times), rows_stats.fmt(3, 1000), f"{sum(rows_times):.2f} s",
              f"{rows_wall:,.0f} s ({rows_wall / 60:.1f} min)", "the whole walk claimed")
    years = ids_batches / PER_SECOND / (365.25 * 86400)
    table.add('"ids"', f"{ids_batches:,}", f"{ids_cycles:,}", ids_stats.fmt(3, 1000),
              f"{ids_cycles * ids_stats.median / 3600:,.0f} h (extrapolated)",
              f"{ids_batches / PER_SECOND:,.0f} s ({years:,.0f} years)",
              f"{IDS_CYCLES} cycles claimed ({IDS_CYCLES * SLOTS:,} batches, {ids_rows} row(s) in them), "
              "then span / batch_size")
    figures = {"rows_batches": float(rows_batches), "ids_batches": float(ids_batches), "years": years,
               "rows_minutes": rows_batches / PER_SECOND / 60, "rows_claim_ms": rows_stats.median * 1000,
               "ids_claim_ms": ids_stats.median * 1000, "ids_rows": float(ids_rows)}
    return table, figures


def run(postgres_url: str | None, redis_url: str, quick: bool = False) -> Section:
    method = __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else ""
    if postgres_url is None:
        section = Section("5. Rows batching", method)
        section.analysis.append("Not run: no PostgreSQL answered (`--postgres-url`).")
        return section
    repeats = 3 if quick else 9
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    client = redis.Redis.from_url(redis_url)
    created = {table_name(rows): ensure_table(engine, table_name(rows), rows, f"g::bigint * {STEP}")
               for rows in SIZES}
    created[SPARSE_TABLE] = ensure_table(engine, SPARSE_TABLE, SPARSE_ROWS, SPARSE_KEY)
    created[UUID_TABLE] = ensure_table(engine, UUID_TABLE, UUID_ROWS, "gen_random_uuid()", key_type="UUID")
    try:
        table, plan_table, cost = planning_cost(engine, client, repeats)
        uuid_table, uuid = uuid_cost(engine, repeats)
        sparse_table, sparse = sparse_walk(engine, client)
    finally:
        engine.dispose()
        client.close()
    reused = ", ".join(f"{name} {'reused' if took is None else f'created in {took:.0f} s'}"
                       for name, took in created.items())
    section = Section(
        "5. Rows batching", method + f"Times are medians of {repeats} interleaved runs after a dropped warm-up "
        "round, wall clock in the benchmark's process (connection from SQLAlchemy's pool, query, ranges). The "
        "machine is shared: other sessions ran their tests during the run (the load average is in the "
        "parameters), which can only add to the times; the fastest runs show the intrinsic cost.",
        {"batch_size": BATCH_SIZE, "per_second": PER_SECOND, "duration": f"{DURATION} s",
         "dense keys": f"{STEP}, {2 * STEP}, ... (BIGINT primary key, a 32-character text payload, a counter)",
         "sparse keys": f"{SPARSE_ROWS:,} rows, one per stretch of 10^7 ids (`{SPARSE_KEY}`)",
         "tables": reused, "target": f"under {TARGET_MS:g} ms a cycle, flat in the table size, index-only"},
        [table, plan_table, uuid_table, sparse_table])
    section.analysis.append(
        f"Flat and index-only: one rows carve of the busiest cycle takes {cost['top_1e7_ms']:.0f} ms at 10^7 rows "
        f"(slowest median of any size and cursor {cost['worst_ms']:.0f} ms; fastest runs from 10^5 to 10^7 rows "
        f"x{cost['flat']:.2f}): the query reads the same {SLOTS * BATCH_SIZE + 1:,} index entries whatever the "
        f"table's size (the 10^5 table's middle cursor has only 50,000 below it), by an "
        f"`Index Only Scan Backward` on the primary key with "
        f"{cost['heap_fetches']:.0f} heap fetches (a table vacuumed since its last writes; pages written since "
        "are fetched from the heap until the next vacuum). A whole claim through the tracker (each from the "
        "top of a freshly started tracker) is the carve plus the Redis commit of the 1,350 ranges, which the "
        "ids claim of the same run pays too; the difference column is what rows batching adds to a cycle.")
    section.analysis.append(
        f"UUID key: the same carve on {UUID_ROWS:,} random uuid keys takes {uuid['worst_ms']:.0f} ms (slowest "
        f"median), {'an `Index Only Scan Backward`' if uuid['index_only'] else 'NOT an index-only scan'} with "
        f"{uuid['heap_fetches']:.0f} heap fetches: the key's images (core/keys.py) go to the database as the "
        "driver's values, so the query and its plan are the integer key's.")
    section.analysis.append(
        f"Sparse: \"rows\" covers the {SPARSE_ROWS:,} rows in {sparse['rows_batches']:,.0f} batches, "
        f"{sparse['rows_minutes']:.1f} min at {PER_SECOND}/s; \"ids\" needs {sparse['ids_batches']:,.0f} batches "
        f"of {BATCH_SIZE} ids, {sparse['years']:,.0f} years at the same rate (the rate counts batches). The ids "
        f"figures are extrapolated: {IDS_CYCLES} cycles were claimed for real ({sparse['ids_claim_ms']:.0f} ms "
        f"each, {sparse['ids_rows']:.0f} row(s) in their {IDS_CYCLES * SLOTS:,} batches), and the whole walk is "
        "span / batch_size batches, one slot each. Wall times are batches / rate: a batch starts at its slot, "
        "and section 3 shows the rate held (99.9-100%); the work's own time overlaps the slots and is not "
        "counted here.")
    section.verdict("rows carve of 1,350 batches of 70, 10^5..10^7 rows (slowest median)",
                    f"{cost['worst_ms']:.0f} ms", f"< {TARGET_MS:g} ms", cost["worst_ms"] < TARGET_MS)
    section.verdict("rows carve from 10^5 to 10^7 rows", f"time x{cost['flat']:.2f}", "flat",
                    0.67 < cost["flat"] < 1.5)
    section.verdict("rows carve's plan", "Index Only Scan" if cost["index_only"] else "not index-only",
                    "index-only", bool(cost["index_only"]))
    section.verdict(f"rows carve on a uuid key ({UUID_ROWS:,} rows, slowest median; plan)",
                    f"{uuid['worst_ms']:.0f} ms, {'Index Only Scan' if uuid['index_only'] else 'not index-only'}",
                    f"< {TARGET_MS:g} ms, index-only", uuid["worst_ms"] < TARGET_MS and bool(uuid["index_only"]))
    section.verdict(f"sparse table ({SPARSE_ROWS:,} rows over 10^12 ids): batches, rows against ids",
                    f"{sparse['rows_batches']:,.0f} ({sparse['rows_minutes']:.1f} min) against "
                    f"{sparse['ids_batches']:.3g} ({sparse['years']:,.0f} years, extrapolated)", "(reported)", None)
    section.headline["rows_carve_ms"] = f"{cost['top_1e7_ms']:.0f} ms"
    return section
