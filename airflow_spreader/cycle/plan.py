"""What the plan task decides: start a backfill from its table's bounds, then claim the next cycle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from airflow_spreader.core.adapt import Pace
from airflow_spreader.core.carving import Carve, id_carver
from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.grouping import TaskSizing, group_batches
from airflow_spreader.core.keys import is_text_image, is_uuid_image
from airflow_spreader.core.rules import ConfigError
from airflow_spreader.cycle.model import BatchGroup, CycleSummary
from airflow_spreader.sql.boundaries import RowCarver, check_key_indexed
from airflow_spreader.sql.table import SourceTable, TableBounds, TableError
from airflow_spreader.state.passes import LookOutcome, Passes
from airflow_spreader.state.records import CycleClaim
from airflow_spreader.state.text_keys import TextCarver, TextKeys, TextKeyStore
from airflow_spreader.state.tracker import Tracker


@dataclass(frozen=True, slots=True)
class CyclePlan:
    """One claimed cycle: its summary for the chain and the report, its batches grouped for the task instances."""

    claim: CycleClaim
    summary: CycleSummary
    groups: tuple[BatchGroup, ...]

    def expand_kwargs(self) -> list[dict[str, object]]:
        """The plan task's return value: one entry of operator arguments per batch task instance."""
        return [group.to_xcom() for group in self.groups]


def start_backfill(tracker: Tracker, bounds: TableBounds) -> None:
    """Capture the table's bounds at the first cycle; an empty table is started finished. A text key's top
    row is minted first (state/text_keys.py), so that a started tracker always has its cursor's text."""
    if bounds.is_empty or bounds.max_id is None or bounds.min_id is None:
        tracker.start(max_id=0, min_id=1)
    elif bounds.top_text is not None:
        max_id, min_id = TextKeyStore(tracker).begin(bounds.top_text)
        tracker.start(max_id=max_id, min_id=min_id)
    else:
        tracker.start(max_id=bounds.max_id, min_id=bounds.min_id)


def look_for_new_rows(tracker: Tracker, config: SpreadConfig,
                      read_max: Callable[[], int | None] | None) -> LookOutcome | None:
    """With ``follow_new_rows``, at the bottom of a pass: start a pass over the ids added above the top
    (state/passes.py), or record that the passes end. None when the configuration does not follow."""
    if not config.follow_new_rows or read_max is None:
        return None
    return Passes(tracker).look(read_max, max_passes=config.max_passes)


def carver_for(config: SpreadConfig, bind: sa.Engine, table: SourceTable, *,
               allow_unindexed_key: bool = False, batch_size: int | None = None) -> Carve:
    """How this cycle cuts its new ranges, read from the configuration at each cycle (a live field).

    ``"rows"`` first checks that the key leads an index (TableError naming the column otherwise, before
    anything is claimed), unless ``allow_unindexed_key``: without one each cycle would sort the table.
    """
    size = config.batch_size if batch_size is None else batch_size  # the governor's (cycle/pace.py)
    if config.batching == "ids":
        return id_carver(size)
    if not allow_unindexed_key:
        check_key_indexed(bind, table)
    return RowCarver(bind, table, size)


def key_carver(carve: Carve, tracker: Tracker, bind: sa.Engine, table: SourceTable) -> Carve:
    """``carve`` for a started backfill's key: a text key's handles (its bound tells) need a TextCarver
    where ``"rows"`` batching gave a RowCarver."""
    max_id = tracker.progress().max_id
    if isinstance(carve, RowCarver) and max_id is not None and is_text_image(max_id):
        return TextCarver(TextKeys(TextKeyStore(tracker), bind, table), carve.batch_size)
    return carve


#: The tracker adds id spans as signed 64-bit integers: in "rows" batching one range may span the whole key.
MAX_ROWS_SPAN = 2**63 - 1


def check_rows_span(config: SpreadConfig, table: SourceTable, min_id: int | None, max_id: int | None, *,
                    verifying: bool = False) -> None:
    """Refuse ``"rows"`` batching of an integer key whose bounds lie more than 2^63 - 1 ids apart (TableError):
    one range between two rows could then span more ids than the tracker's counters hold. A UUID key
    (its ranges count no ids, core/keys.py) needs ``"rows"`` and cannot follow new rows or be verified."""
    if max_id is not None and is_uuid_image(max_id):
        check_uuid_key(config, table, max_id, verifying=verifying)
        return
    if config.batching == "rows" and min_id is not None and max_id is not None and max_id - min_id + 1 > MAX_ROWS_SPAN:
        raise TableError(f"key column {table.key!r} of table {table.name!r} spans {min_id}..{max_id}, more than "
                         f"2^63 - 1 ids: \"rows\" batching needs a span the tracker's signed 64-bit counters hold; "
                         f"use batching \"ids\"")


def check_uuid_key(config: SpreadConfig, table: SourceTable, max_id: int, *, verifying: bool) -> None:
    """ConfigError for what a UUID or text key cannot do: id arithmetic (2^128 ids, almost all empty; text has
    no arithmetic at all), passes over new rows above MAX (new keys land anywhere in the key), verification
    spans cut in ids."""
    kind = "text" if is_text_image(max_id) else "UUIDs"
    where = f"key column {table.key!r} of table {table.name!r} holds {kind}"
    if config.batching != "rows":
        raise ConfigError({"batching": f"{where}: id arithmetic cannot cut them; set \"rows\" (batches of "
                                       f"batch_size real rows, read from the key's index)"})
    if config.follow_new_rows:
        raise ConfigError({"follow_new_rows": f"{where}: new keys are not added above the key's MAX, so a pass "
                                              f"over new rows cannot find them; set false"})
    if verifying:
        raise ConfigError({"pending": f"{where}: the verification counts pending rows in spans of ids, which a "
                                      f"{kind} key cannot cut; leave pending unset for this table"})


def plan_next_cycle(tracker: Tracker, config: SpreadConfig, now: datetime, *,
                    claim_id: str | None = None, read_max: Callable[[], int | None] | None = None,
                    carve: Carve | None = None, pace: Pace | None = None, sizing: TaskSizing | None = None,
                    start_lead: float = 0.0) -> CyclePlan:
    """Claim the next cycle at the configured rate; a second call with the same ``claim_id`` (a retried plan
    task of the same DAG run) gets the same cycle back and advances nothing. ``read_max`` reads the key's
    MAX now: with ``follow_new_rows``, a plan at the bottom of a pass first looks for new rows with it.

    The previous cycle's run starts this one a little before its planned end (``lead_seconds``): the
    cycle begins where that one ends, so that cycles tile the time line without a gap or an overlap, at
    the rate in force at that begin (the claim calls ``config.per_second`` with it). ``carve`` cuts the
    new ranges (``carver_for``; default: ``batch_size`` ids each). ``pace`` (cycle/pace.py) is the
    governor's rate factor and batch size; default: the configuration's.

    ``sizing`` picks how many task instances the batches are grouped into (core/grouping.py; default:
    ``max_tasks_per_cycle``). ``start_lead``: a first cycle (none claimed before) begins that many seconds
    after ``now``, the time its task instances take to be up, so that its first batches are not late and
    then run back to back; a plan later than the previous planned end still begins at once (no gap added).
    """
    pace = pace or Pace(1.0, config.batch_size)
    rate = pace.rate(config.per_second)
    batch_size = pace.batch_size or config.batch_size
    look = look_for_new_rows(tracker, config, read_max)
    claim = tracker.claim_cycle(batch_size=batch_size, per_second=rate,
                                duration=config.duration, begin_at=now, start_lead=start_lead,
                                lease_seconds=config.lease_seconds, after_previous=True, claim_id=claim_id,
                                carve=carve)
    if isinstance(carve, TextCarver):
        carve.mint_planned()  # the texts of the ranges just claimed (a replayed claim carved nothing)
    begin_at = claim.begin_at or now
    per_second = claim.per_second if claim.per_second is not None else rate(begin_at)
    length = (claim.end_at - begin_at).total_seconds() if claim.end_at else float(config.duration)
    progress = tracker.progress()
    measure = config.governor is not None and config.governor.sizes_batches
    tasks = config.max_tasks_per_cycle if sizing is None else sizing.task_count(float(per_second),
                                                                                 config.max_tasks_per_cycle)
    groups = tuple(BatchGroup(tuple(group), measure) for group in group_batches(claim.batches, tasks))
    summary = CycleSummary(
        begin_at=begin_at, duration=length, lead_seconds=float(config.lead_seconds), per_second=float(per_second),
        on_peak=config.peak_schedule.is_on_peak(begin_at), batches=len(claim.batches), replanned=claim.replanned,
        task_instances=len(groups), cursor_before=claim.cursor_before, cursor_after=claim.cursor_after,
        stopped=claim.stopped, finished=progress.finished, follow_new_rows=config.follow_new_rows,
        passes=progress.passes, look=None if look is None else look.value, rate_factor=pace.factor,
        batch_size=batch_size,
    )
    return CyclePlan(claim, summary, groups)
