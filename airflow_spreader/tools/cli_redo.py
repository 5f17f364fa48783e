"""``redo-pending``: plan again exactly the ranges where the verification found rows still pending.

The verification (the DAG's ``pending`` predicate) counted, after the walk, the rows that still need the
work and kept, span by span, the lowest and highest pending key. Once the work is fixed, this command
cuts those ranges into batches of the configured ``batch_size``, puts them back in flight, due at once
(as ``retry-failed`` does with failed ranges), and triggers the DAG as ``resume`` does: its cycles run them
at the configured rate, then count again; the backfill finishes once nothing is pending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_spreader.state.verification import RedoRefused, Verification
from airflow_spreader.tools.cli_errors import CliError

if TYPE_CHECKING:
    from airflow_spreader.tools.cli import Console

PROG = "airflow-spreader"


def run_redo_pending(console: Console) -> int:
    name, dag_id = console.args.name, console.dag_id
    tracker = console.tracker(name)
    if tracker.is_stopped():
        raise CliError(f"not redone: {name} is stopped; clear the stop flag first with {PROG} go {name}")
    config = console.airflow.config(dag_id)
    if config.value is None:
        raise CliError(f"not redone: the batch size comes from the configuration: {config.problem}")
    verification = Verification(tracker)
    state = verification.state()
    try:
        pieces = verification.redo(config.value.batch_size)
    except RedoRefused as error:
        raise CliError(f"not redone: {error}") from error
    data = {"backfill": name, "dag_id": dag_id, "pending_rows": state.pending_rows,
            "ranges": [p.to_dict() for p in state.pending], "batches": len(pieces), "triggered": None,
            "active_runs": [], "pass": state.passes + 1}
    head = (f"{state.pending_rows} pending rows of {name} in {len(state.pending)} ranges are planned again first, "
            f"in {len(pieces)} batches (pass {state.passes + 1}); the verification counts again after them")
    if getattr(console.args, "no_trigger", False):
        console.emit(data, f"{head}. Trigger it: airflow dags trigger {dag_id}")
        return 0
    active = console.airflow.active_runs(dag_id)
    if active.value:  # a second chain would double the rate
        data["active_runs"] = active.value
        console.emit(data, f"{head}; a run of {dag_id} is already queued or running ({', '.join(active.value)}): "
                           "its next cycle plans them")
        return 0
    if active.problem:
        console.emit(data, f"{head}; could not trigger ({active.problem}): airflow dags trigger {dag_id}")
        return 1
    data["triggered"] = console.airflow.trigger(dag_id)
    console.emit(data, f"{head}; triggered the run {data['triggered']} of {dag_id}")
    return 0
