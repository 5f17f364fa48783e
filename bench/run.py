"""Run every benchmark and write bench/RESULTS.md: ``python -m bench.run`` (``--quick`` for a smoke run).

Services: Redis at REDIS_URL or 127.0.0.1:6379 for the tracker benchmark (else an embedded one), and
PostgreSQL at SPREADER_BENCH_POSTGRES_URL (default postgres@127.0.0.1:5432/test) as the end-to-end source
table when it answers (else a SQLite file). The end-to-end runs start their own Airflow and their own
Redis server, and stop every process they started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import redis
import sqlalchemy as sa

from bench import (
    ceiling,
    console_latency,
    end_to_end,
    governor_cost,
    million,
    planner_scaling,
    rows_planning,
    scheduler_cost,
    tracker_throughput,
    workload,
)
from bench.common import Section, Stats, Table, machine_table
from bench.harness import COMPONENTS, BenchStack, bench_stack
from bench.profiling import Profile
from bench.splice import splice
from devtools.embedded import EmbeddedRedis

HERE = Path(__file__).resolve().parent
DEFAULT_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
BENCHMARKS = ("planner", "tracker", "console", "e2e", "rows", "governor", "ceiling", "million")
T = TypeVar("T")


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


class LoadSampler:
    """The 1-minute load average, sampled every few seconds in a thread while the benchmarks run: other
    engineers' work on the same machine shows here, next to the figures it may have disturbed."""

    def __init__(self, interval: float = 5.0) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)

    def _loop(self, interval: float) -> None:
        while True:
            self.samples.append((time.monotonic(), os.getloadavg()[0]))
            if self._stop.wait(interval):
                return

    def start(self) -> LoadSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def since(self, started: float) -> str:
        """``median [min .. max]`` of the samples taken since ``started`` (a ``time.monotonic()``)."""
        values = [load for at, load in self.samples if at >= started] or [os.getloadavg()[0]]
        return f"{Stats.of(values).fmt(3)} ({len(values)} samples, {os.cpu_count()} cores)"


def with_load(load: LoadSampler, func: Callable[[], list[Section]]) -> list[Section]:
    """Run a benchmark and note in its parameters the load the machine was under meanwhile."""
    started = time.monotonic()
    sections = func()
    for section in sections:
        section.parameters["1-min load average during this benchmark"] = load.since(started)
    return sections


def timed(label: str, func: Callable[[], T]) -> T:
    started = time.monotonic()
    log(f"{label}...")
    result = func()
    log(f"{label}: done in {time.monotonic() - started:.0f} s")
    return result


def reachable_redis(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.close()
        return True
    except redis.RedisError:
        return False


def reachable_postgres(url: str) -> bool:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except (sa.exc.SQLAlchemyError, ImportError):
        return False


def postgres_metadata_url(server_url: str) -> str:
    """A fresh database ``spreader_bench_airflow`` on the PostgreSQL server, for Airflow's metadata."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS spreader_bench_airflow WITH (FORCE)"))
        conn.execute(sa.text("CREATE DATABASE spreader_bench_airflow"))
    engine.dispose()
    return sa.make_url(server_url).set(database="spreader_bench_airflow").render_as_string(hide_password=False)


def end_to_end_sections(args: argparse.Namespace, workdir: Path, postgres: str | None) -> list[Section]:
    params = end_to_end.Params.for_mode(args.quick)
    source = postgres or f"sqlite:///{workdir / 'source.db'}"
    engine = sa.create_engine(source)
    timed(f"creating {params.rows:,} rows in {engine.dialect.name}",
          lambda: workload.create_table(engine, params.rows))
    metadata = postgres_metadata_url(postgres) if args.metadata == "postgres" and postgres else None
    profile = Profile(workdir / "profile") if args.profile and not args.quick else None
    sections = []
    with bench_stack(workdir, source, metadata, parallelism=params.pool + 8) as stack:
        healthy = timed("starting Airflow and Redis", stack.start)
        idle = timed("measuring idle CPU", lambda: stack.idle_cpu_rate(8 if args.quick else 15))
        results = timed("end to end", lambda: end_to_end.run(stack, params, idle, profile))
        sections.append(results.section)
        cost = timed("scheduler cost", lambda: scheduler_cost.run(stack, args.quick, params.rows, idle,
                                                                 results.runs))
        idle_table = Table("Idle burn of the stack (subtracted from the figures above)",
                           ["component", "CPU s per s"])
        for key in COMPONENTS:
            idle_table.add(key, f"{idle[key]:.3f}")
        idle_table.notes.append(f"Idle LocalExecutor workers (PSS): {stack.idle_executor_mib:,.0f} MiB.")
        cost.tables.append(idle_table)
        sections.append(cost)
        results.section.parameters["Airflow start (to healthy, DAG parsed)"] = f"{healthy:.0f} s"
        results.section.parameters["Redis (tracker)"] = f"private redis-server {stack.redis_version}"
    engine.dispose()
    return sections


def stack_sections(args: argparse.Namespace, workdir: Path, postgres: str | None, rows: int, parallelism: int,
                   body: Callable[[BenchStack, dict[str, float]], list[Section]]) -> list[Section]:
    """A table of ``rows`` rows, a fresh stack, its idle burn, then ``body``'s sections (with the stack's
    start time and metadata database in their parameters)."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = postgres or f"sqlite:///{workdir / 'source.db'}"
    engine = sa.create_engine(source)
    timed(f"creating {rows:,} rows in {engine.dialect.name}", lambda: workload.create_table(engine, rows))
    with bench_stack(workdir, source, None, parallelism=parallelism) as stack:
        healthy = timed("starting Airflow and Redis", stack.start)
        idle = timed("measuring idle CPU", lambda: stack.idle_cpu_rate(8 if args.quick else 15))
        sections = body(stack, idle)
    for section in sections:
        section.parameters["Airflow start (to healthy, DAG parsed)"] = f"{healthy:.0f} s"
        section.parameters["metadata database"] = stack.metadata_label
    engine.dispose()
    return sections


def ceiling_sections(args: argparse.Namespace, workdir: Path, postgres: str | None) -> list[Section]:
    """Issue 17's target 1: the rate ceiling's search (backfill and paced script)."""
    params = ceiling.CeilingParams.for_mode(args.quick, args.ceiling_cycles)
    profile = Profile(workdir / "profile-ceiling") if args.profile and not args.quick else None
    return stack_sections(args, workdir / "ceiling", postgres, params.rows, params.pool + 8, lambda stack, idle: [
        timed("rate ceiling", lambda: ceiling.run(stack, params, idle, profile))])


def million_sections(args: argparse.Namespace, workdir: Path, postgres: str | None) -> list[Section]:
    """Issue 17's target 5: the 10^6-row unthrottled run against the plain script."""
    params = million.params_for(args.quick)
    return stack_sections(args, workdir / "million", postgres, params.rows, params.pool + 8, lambda stack, idle: [
        timed("10^6-row run", lambda: million.run(stack, params, idle))])


def machine_revision(machine: Table) -> str:
    return next((row[1] for row in machine.rows if row[0] == "git revision"), "unknown")


def summary(sections: list[Section]) -> Table:
    table = Table("Summary", ["benchmark", "what", "figure", "target", "verdict"])
    for section in sections:
        for what, figure, target, verdict in section.verdicts:
            table.add(section.title, what, figure, target, verdict)
    return table


def write(path: Path, sections: list[Section], machine: Table, args: argparse.Namespace, elapsed: float) -> None:
    mode = "quick (smoke run: small sizes, few repeats; not for publishing)" if args.quick else "full"
    parts = [
        "# airflow-spreader benchmarks",
        "",
        f"Produced by `python -m bench.run{' --quick' if args.quick else ''}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {elapsed / 60:.1f} min; mode: {mode}. Method and "
        "how to run: [README.md](README.md). Figures are medians with their [min .. max] over several runs, each "
        "next to a baseline measured in the same run: this machine is shared, so ratios are steadier than "
        "absolute figures.",
        "",
        summary(sections).markdown(),
        machine.markdown(),
        *[section.markdown() for section in sections],
    ]
    path.write_text("\n".join(parts))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, few repeats (~3 min)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {','.join(BENCHMARKS)} (e2e includes the scheduler cost)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="where to write the results")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (Airflow logs, profiles)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis for the tracker benchmark (default REDIS_URL, else the local one)")
    parser.add_argument("--postgres-url", default=os.environ.get("SPREADER_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="PostgreSQL for the end-to-end table; 'none' for SQLite")
    parser.add_argument("--metadata", choices=("sqlite", "postgres"), default="sqlite",
                        help="Airflow's metadata database (postgres: a fresh database on --postgres-url's server)")
    parser.add_argument("--ceiling-cycles", type=int, default=2, metavar="N",
                        help="ceiling benchmark: cycles per run (1: within one cycle, its own section 7b)")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="skip the py-spy profile")
    parser.add_argument("--governor-hold-only", action="store_true",
                        help="governor benchmark: (d) without adaptive_rate (hold only)")
    parser.add_argument("--private-ports", type=int, default=None, metavar="PORT",
                        help="governor benchmark: its PostgreSQL on PORT, its Redis on PORT+1 (default: free ports)")
    args = parser.parse_args(argv)
    args.only_set = {name.strip() for name in args.only.split(",") if name.strip()}
    if args.only_set - set(BENCHMARKS):
        parser.error(f"unknown benchmarks: {sorted(args.only_set - set(BENCHMARKS))}")
    return args


def run_benchmarks(args: argparse.Namespace, workdir: Path, redis_url: str, postgres: str | None,
                   load: LoadSampler) -> list[Section]:
    """The benchmarks of ``--only``, in order, each with the load it ran under."""
    only = args.only_set
    sections: list[Section] = []
    if "planner" in only:
        sections += with_load(load, lambda: [timed("planner scaling", lambda: planner_scaling.run(args.quick))])
    if "tracker" in only:
        sections += with_load(load, lambda: [timed("tracker throughput",
                                                   lambda: tracker_throughput.run(redis_url, args.quick))])
    if "console" in only:
        sections += with_load(load, lambda: [timed("console latency",
                                                   lambda: console_latency.run(redis_url, args.quick))])
    if "e2e" in only:
        sections += with_load(load, lambda: end_to_end_sections(args, workdir, postgres))
    if "rows" in only:
        sections += with_load(load, lambda: [timed("rows batching", lambda: rows_planning.run(
            postgres, redis_url, args.quick))])
    if "ceiling" in only:
        sections += with_load(load, lambda: ceiling_sections(args, workdir, postgres))
    if "million" in only:
        sections += with_load(load, lambda: million_sections(args, workdir, postgres))
    if "governor" in only:
        governor_cost.ADAPTIVE_RATE = governor_cost.ADAPTIVE_RATE and not args.governor_hold_only
        sections += with_load(load, lambda: [timed("governor cost (pgbench)", lambda: governor_cost.run(
            workdir, args.quick, args.private_ports, args.out.parent))])
    return sections


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = args.only_set

    started = time.monotonic()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spreader-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedRedis | None = None
    redis_url = args.redis_url
    if only & {"tracker", "console", "rows"} and not reachable_redis(redis_url):
        embedded = EmbeddedRedis(directory=workdir / "tracker-redis")
        redis_url = embedded.start()
        log(f"no Redis at {args.redis_url}: using an embedded one at {redis_url}")
    postgres = args.postgres_url if args.postgres_url != "none" and reachable_postgres(args.postgres_url) else None
    if only & {"e2e", "rows", "ceiling", "million"}:
        log(f"source tables: {'PostgreSQL ' + postgres if postgres else 'SQLite (no PostgreSQL; rows: not run)'}")
    machine = machine_table(redis_url if "tracker" in only else None, postgres)
    load = LoadSampler().start()
    try:
        sections = run_benchmarks(args, workdir, redis_url, postgres, load)
    finally:
        load.stop()
        if embedded:
            embedded.stop()
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep:
            log(f"scratch kept in {workdir}")
    elapsed = time.monotonic() - started
    machine.add("load average at end (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    machine.add("1-min load average during the run", load.since(started))
    if only != set(BENCHMARKS) and args.out.exists():  # a subset: keep the other sections of the last run
        args.out.write_text(splice(args.out.read_text(), sections, (
            f"(`python -m bench.run --only {args.only}{' --quick' if args.quick else ''}`, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {elapsed / 60:.1f} min, revision "
            f"{machine_revision(machine)}; 1-min load average {load.since(started)}); the other sections come "
            "from the run above.")))
    else:
        write(args.out, sections, machine, args, elapsed)
    log(f"wrote {args.out} ({elapsed / 60:.1f} min)")
    for section in sections:
        for what, figure, target, verdict in section.verdicts:
            log(f"{section.title}: {what}: {figure} (target {target}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
