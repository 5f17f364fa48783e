"""``skip``: pass over a key range by hand (an empty stretch of a sparse key, rows known not to need the work).

The ids are counted as skipped, not done, so ``status`` shows them apart and the progress, state and ETA
agree (``Tracker.set_cursor`` alone made ``status`` say ``done`` next to 22.5%). Only ids not yet planned
can be skipped: from the cursor down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_spreader.state.skip import SkipError, skip_range
from airflow_spreader.tools.cli_errors import CliError

if TYPE_CHECKING:
    from airflow_spreader.tools.cli import Console


def run_skip(console: Console) -> int:
    args = console.args
    tracker = console.tracker(args.name)
    try:
        skipped = skip_range(tracker, args.begin_id, args.end_id)
    except SkipError as error:
        raise CliError(str(error), exit_code=2) from error
    span = skipped.span
    data = {"backfill": args.name, "skipped_begin_id": None if span is None else span.begin_id,
            "skipped_end_id": None if span is None else span.end_id, "ids_skipped": 0 if span is None else span.size,
            "cursor_before": skipped.cursor_before, "cursor_after": skipped.cursor_after}
    if span is None:
        text = f"Nothing to skip: every id of {args.name} is already planned (cursor {skipped.cursor_before})"
    else:
        text = (f"Skipped ids {span.begin_id}..{span.end_id} of {args.name} ({span.size:,} ids, counted as skipped); "
                f"the next cycle plans from {skipped.cursor_after} down")
    console.emit(data, text)
    return 0
