"""``airflow-spreader``: the operator's console for backfills (status, ETA, stop/go, plan, skip, config).

Every command takes ``--json``. Errors are one line on stderr and a non-zero exit: 1 when
something is missing or unreachable, 2 for a bad argument or value. See docs/console.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone, tzinfo
from typing import Any

import redis

from airflow_spreader.core.carving import Carve
from airflow_spreader.core.config import ConfigError
from airflow_spreader.core.keys import is_text_image, key_label
from airflow_spreader.core.names import checkpoint_variable, config_variable
from airflow_spreader.cycle.plan import key_carver
from airflow_spreader.sql.boundaries import RowCarver
from airflow_spreader.sql.table import SourceTable
from airflow_spreader.state.checkpoint import Checkpoint
from airflow_spreader.state.source_record import recorded_source
from airflow_spreader.state.text_keys import TextCarver, key_labels
from airflow_spreader.state.tracker import Tracker, TrackerError
from airflow_spreader.tools import cli_config, cli_redo, cli_resume, cli_skip, cli_status
from airflow_spreader.tools.cli_errors import CliError
from airflow_spreader.tools.readmodel import status as status_model
from airflow_spreader.tools.readmodel.sources import (
    AirflowSource,
    NoAirflow,
    RedisSource,
    SourceError,
    one_line,
    shadowing_env_var,
)

PROG = "airflow-spreader"


class Console:
    """One invocation: its arguments and the places it reads from."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = getattr(args, "json", False)
        self.redis = RedisSource(getattr(args, "redis_url", None), getattr(args, "redis_conn_id", "redis_default"))
        self.airflow = NoAirflow() if getattr(args, "redis_only", False) else AirflowSource()

    @property
    def dag_id(self) -> str:
        """``--dag-id``, else the DAG the tracker recorded, else the backfill's own name."""
        given = getattr(self.args, "dag_id", None)
        if given:
            return str(given)
        return self.dag_of(self.args.name)

    def dag_of(self, name: str) -> str:
        """The DAG recorded by the tracker of ``name``; its name when none is recorded or Redis cannot tell."""
        try:
            return Tracker(name, self.redis.client()).dag_id() or name
        except (SourceError, redis.RedisError):
            return name

    def tracker(self, name: str, *, known: bool = True) -> Tracker:
        """The tracker of ``name``; with ``known``, a CliError unless it has state in Redis."""
        client = self.redis.client()
        tracker = Tracker(name, client)
        if known and not tracker.is_started():
            names = Tracker.names(client)
            raise CliError(f"unknown backfill {name!r} in Redis at {self.redis.where} "
                           f"(known: {', '.join(names) if names else 'none'})")
        return tracker

    def emit(self, data: Any, text: str) -> None:
        print(json.dumps(data, indent=2, default=str) if self.json else text)


def run_status(console: Console) -> int:
    args, now = console.args, datetime.now(timezone.utc)
    if args.name is None:
        if args.dag_id:
            raise CliError("--dag-id needs a backfill NAME", exit_code=2)
        names = Tracker.names(console.redis.client())
        statuses = [status_model.gather(console.tracker(name, known=False), console.airflow, console.dag_of(name),
                                        now, args.window) for name in names]
        statuses = [s for s in statuses if s.progress.started]  # reset since listed: gone
        text = "\n\n".join(cli_status.render(s) for s in statuses)
        console.emit([s.to_dict() for s in statuses], text or f"no backfill in Redis at {console.redis.where}")
        return 0
    tracker = console.tracker(args.name, known=False)
    if not tracker.is_started() and console.airflow.variable(config_variable(console.dag_id)).value is None:
        console.tracker(args.name)  # raises: unknown backfill, listing the known ones
    status = status_model.gather(tracker, console.airflow, console.dag_id, now, args.window)
    console.emit(status.to_dict(), cli_status.render(status))
    return 0


def run_stop(console: Console) -> int:
    name = console.args.name
    tracker = console.tracker(name)
    tracker.stop()
    in_flight = tracker.progress().in_flight
    console.emit({"backfill": name, "stopped": True, "in_flight": in_flight},
                 f"Stopped {name}: nothing more is planned, and batches not yet started hand their ranges back "
                 f"untouched ({in_flight} in flight). Resume with: {PROG} go {name}")
    return 0


def run_go(console: Console) -> int:
    name = console.args.name
    console.tracker(name).go()
    console.emit({"backfill": name, "stopped": False},
                 f"Resumed {name}: a waiting next_cycle task starts the next cycle within seconds, planning the "
                 f"handed-back ranges first. If no run of its DAG is active: airflow dags trigger {console.dag_id}")
    return 0


def run_retry_failed(console: Console) -> int:
    name = console.args.name
    ranges, keys = console.tracker(name).retry_failed_counts()
    count = ranges + keys
    console.emit({"backfill": name, "retried": count, "ranges": ranges, "quarantined_keys": keys},
                 f"{ranges} failed ranges and {keys} quarantined keys of {name} are planned again first at the "
                 "next cycle" + (f"; if its chain has ended: airflow dags trigger {console.dag_id}" if count else ""))
    return 0


def run_reset(console: Console) -> int:
    name = console.args.name
    tracker = console.tracker(name)
    if not console.args.yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise CliError(f"refusing to reset {name} without --yes: no terminal to confirm on")
        answer = input(f"Reset {name}: forget its position, ranges in flight, failed ranges and counters in Redis? "
                       f"The next run starts over from the top of the table. Type the name to confirm: ")
        if answer.strip() != name:
            raise CliError(f"not reset: {answer.strip()!r} is not {name!r}")
    tracker.reset()
    key = checkpoint_variable(console.dag_id)
    deleted = console.airflow.delete_variable(key)
    console.emit({"backfill": name, "reset": True, "checkpoint_deleted": bool(deleted.value)},
                 f"Reset {name}: its state in Redis is gone (the configuration Variable is kept); the next run "
                 "starts over from the top")
    if deleted.problem:  # the plan would refuse to start over while the checkpoint says work was done
        print(f"{PROG}: warning: could not delete the checkpoint Variable {key} ({deleted.problem}): delete it "
              "before the next run, or that run refuses to start over", file=sys.stderr)
    return 0


def run_restore(console: Console) -> int:
    name, key = console.args.name, checkpoint_variable(console.dag_id)
    tracker = console.tracker(name, known=False)
    if tracker.is_started():
        raise CliError(f"{name} still has its state in Redis: nothing to restore ({PROG} status {name})")
    raw = console.airflow.variable(key)
    if raw.problem:
        raise CliError(f"cannot read the checkpoint Variable {key}: {raw.problem}")
    if raw.value is None:
        raise CliError(f"no checkpoint Variable {key}: the backfill never planned a cycle, or --dag-id is not "
                       f"its DAG; triggering the DAG starts it from the top")
    try:
        checkpoint = Checkpoint.from_json(raw.value)
    except (ValueError, TypeError) as error:
        raise CliError(f"the checkpoint Variable {key} is not a checkpoint: {one_line(error)}") from error
    if checkpoint.finished:
        raise CliError(f"{name} finished (checkpoint {checkpoint.at}): nothing to restore; to run it again from "
                       f"the top, delete the Variable {key}")
    checkpoint.restore(tracker)
    top = f"key {key_labels(tracker).key(checkpoint.low_water)!r} down" if checkpoint.text_key \
        else f"id {checkpoint.low_water} down to {checkpoint.min_id}"
    console.emit({"backfill": name, "restored": True, "cursor": checkpoint.low_water, "min_id": checkpoint.min_id,
                  "cursor_label": key_labels(tracker).key(checkpoint.low_water), "checkpoint_at": checkpoint.at},
                 f"Restored {name} from its checkpoint of {checkpoint.at}: the next cycle plans from {top} "
                 f"(ids done after the checkpoint are done again). Trigger it: airflow dags trigger {console.dag_id}")
    return 0


def run_plan(console: Console) -> int:
    args = console.args
    if not args.dry_run:
        raise CliError("plan only previews the next cycle: add --dry-run (the DAG's plan task claims cycles)",
                       exit_code=2)
    tracker = console.tracker(args.name)
    config = console.airflow.config(console.dag_id)
    if config.value is None:
        raise CliError(f"cannot preview without the configuration: {config.problem}")
    cfg, now = config.value, datetime.now(timezone.utc)
    carve = rows_carver(console, tracker, cfg.batch_size) if cfg.batching == "rows" else None
    claim = tracker.preview_cycle(batch_size=cfg.batch_size, per_second=cfg.per_second, duration=cfg.duration,
                                  begin_at=now, after_previous=True, carve=carve)  # as the plan task would claim it
    labels = key_labels(tracker, carve.planned if isinstance(carve, TextCarver) else None)  # nothing is minted
    batches = [{"run_at": b.run_at.isoformat(), "begin_id": b.begin_id, "end_id": b.end_id, "replanned": b.replanned,
                "label": labels.range(b.id_range), "end_label": labels.key(b.end_id)} for b in claim.batches]
    begin_at = claim.begin_at or now
    data = {"backfill": args.name, "begin_at": begin_at.isoformat(), "on_peak": cfg.peak_schedule.is_on_peak(begin_at),
            "per_second": cfg.per_second(begin_at),
            "duration": cfg.duration, "batching": cfg.batching, "stopped": claim.stopped,
            "cursor_before": claim.cursor_before, "cursor_after": claim.cursor_after,
            "cursor_before_label": None if claim.cursor_before is None else labels.key(claim.cursor_before),
            "cursor_after_label": None if claim.cursor_after is None else labels.key(claim.cursor_after),
            "batches": batches}
    console.emit(data, plan_text(data, claim.replanned, status_model.display_zone(cfg)))
    return 0


def rows_carver(console: Console, tracker: Tracker, batch_size: int) -> Carve:
    """``"rows"`` batching reads the boundaries from the table the last plan recorded (a text key's with a
    TextCarver, whose texts are only shown: a preview mints nothing)."""
    source = recorded_source(tracker)
    if source is None:
        raise CliError(f"cannot preview \"rows\" batching of {tracker.name}: no plan has recorded its source table "
                       "yet (the DAG's next plan does)")
    table = SourceTable(source.table, source.key)
    engine = console.airflow.source_engine(source.conn_id)
    return key_carver(RowCarver(engine, table, batch_size), tracker, engine, table)


def plan_text(data: dict[str, Any], replanned: int, zone: tzinfo) -> str:
    unit = "rows read from the key's index" if data["batching"] == "rows" else "ids"
    head = (f"Next cycle of {data['backfill']} if it began now, {'on' if data['on_peak'] else 'off'} peak at "
            f"{data['per_second']:g} batches/s for {data['duration']:g} s, batches of {unit} (nothing is claimed):")
    if data["stopped"]:
        return f"{head}\n  nothing: the backfill is stopped ({PROG} go {data['backfill']})"
    if not data["batches"]:
        return f"{head}\n  nothing left to plan (cursor {data['cursor_before_label']})"
    lines = [head, f"  {len(data['batches'])} batches ({replanned} re-planned), cursor "
                   f"{data['cursor_before_label']} -> {data['cursor_after_label']}"]
    texts = any(is_text_image(batch["end_id"]) for batch in data["batches"])
    lines.append(f"  {'time':<19}  " + ("keys (above..up to)" if texts else f"{'begin_id':>12}  {'end_id':>12}"))
    for batch in data["batches"]:
        at = datetime.fromisoformat(batch["run_at"]).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
        keys = batch["label"] if texts else (f"{key_label(batch['begin_id']):>12}  "
                                            f"{key_label(batch['end_id']):>12}")
        lines.append(f"  {at:<19}  {keys}" + ("  re-planned" if batch["replanned"] else ""))
    return "\n".join(lines)


def run_config(console: Console) -> int:
    args = console.args
    shadow = shadowing_env_var(config_variable(console.dag_id))
    if shadow:
        raise CliError(f"the environment variable {shadow} hides the Variable here: unset it to read or change the "
                       "Variable in Airflow")
    if args.set and args.replace is not None:
        raise CliError("--set and --replace do not go together: --replace writes the whole Variable", exit_code=2)
    if args.replace is not None:
        result = cli_config.replace(console.airflow, console.dag_id, args.replace)
        console.emit(result, cli_config.render_change(result))
        return 0
    if args.set:
        result = cli_config.change(console.airflow, console.dag_id, args.set, args.name)
        console.emit(result, cli_config.render_change(result))
        return 0
    result = cli_config.show(console.airflow, console.dag_id)
    console.emit(result, cli_config.render_show(result))
    if result["problem"]:
        print(f"{PROG}: {result['problem']}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument("--redis-url", default=argparse.SUPPRESS, help="Redis of the trackers (default: $REDIS_URL, "
                        "else the Airflow connection --redis-conn-id)")
    common.add_argument("--redis-conn-id", default=argparse.SUPPRESS, help="Airflow connection (default redis_default)")
    parser = argparse.ArgumentParser(prog=PROG, parents=[common], description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[Console], int], help_text: str, *, name_required: bool = True,
                dag_id: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.add_argument("name", metavar="NAME", nargs=None if name_required else "?", help="backfill name")
        if dag_id:
            sub.add_argument("--dag-id", help="the backfill's DAG, for its Variable and paused state (default NAME)")
        sub.set_defaults(run=run)
        return sub

    status = command("status", run_status, "progress, pace, rate in force, ETA and failures of every backfill "
                     "(or of NAME)", name_required=False, dag_id=True)
    status.add_argument("--window", type=int, default=15, metavar="MINUTES", help="recent pace window (default 15)")
    status.add_argument("--redis-only", action="store_true", help="read Redis alone (no rate in force, ETA or paused "
                        "flag): answers at once, without importing Airflow; with --redis-url or $REDIS_URL")
    command("stop", run_stop, "stop NAME at once: nothing more is planned, unstarted batches hand back their ranges")
    command("go", run_go, "clear the stop flag of NAME", dag_id=True)
    plan = command("plan", run_plan, "show the batches the next cycle would plan (time, begin id, end id)", dag_id=True)
    plan.add_argument("--dry-run", action="store_true", help="preview without claiming (required)")
    command("retry-failed", run_retry_failed, "plan the failed ranges and quarantined keys of NAME again, first",
            dag_id=True)
    reset = command("reset", run_reset, "forget everything Redis holds about NAME and its checkpoint (asks for "
                    "confirmation)", dag_id=True)
    reset.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    command("restore", run_restore, "start NAME again from its Airflow-side checkpoint after Redis lost its state",
            dag_id=True)
    config = command("config", run_config, "show the configuration Variable, or change fields of it", dag_id=True)
    config.add_argument("--set", action="append", metavar="FIELD=VALUE", help="change a field (repeatable); the "
                        "whole configuration is validated before the Variable is written")
    config.add_argument("--replace", metavar="JSON", help="replace the whole Variable with this JSON object (fields "
                        "left out take their defaults), validated first; repairs a Variable whose JSON is broken")
    skip = command("skip", cli_skip.run_skip, "skip the ids of NAME not yet planned from --to (default: the cursor) "
                   "down to --from, counted as skipped", dag_id=True)
    skip.add_argument("--from", dest="begin_id", type=int, required=True, metavar="ID", help="lowest id skipped")
    skip.add_argument("--to", dest="end_id", type=int, metavar="ID", help="highest id skipped: at least the cursor "
                      "(ids above it are already planned and are left alone)")
    redo = command("redo-pending", cli_redo.run_redo_pending, "plan again the ranges where the verification found "
                   "rows pending (the DAG's pending=), then trigger the DAG", dag_id=True)
    redo.add_argument("--no-trigger", action="store_true", help="plan them, trigger nothing")
    command("resume", cli_resume.run_resume, "after a halt (the last plan failed for good): check the Variable, "
            "clear the halt and trigger a new run of the DAG", dag_id=True)
    return parser


#: Airflow 3.1 imports alembic on ``import airflow``, and alembic >= 1.18 then logs its plugin set-up at
#: INFO through Airflow's handlers, on the console's stderr. That logger is of no use to the console.
QUIET_LOGGERS = ("alembic.runtime.plugins",)


def main(argv: Sequence[str] | None = None) -> int:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(Console(args)))
    except SourceError as error:  # CliError too
        message, code = str(error), error.exit_code
    except ConfigError as error:
        message, code = str(error), 2
    except redis.RedisError as error:
        message, code = f"Redis: {one_line(error)}", 1
    except TrackerError as error:
        message, code = one_line(error), 1
    except ValueError as error:  # e.g. an invalid backfill name
        message, code = one_line(error), 2
    except KeyboardInterrupt:
        message, code = "interrupted", 130
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    print(f"{PROG}: {message}", file=sys.stderr)
    return code
