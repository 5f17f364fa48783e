"""``resume``: start the chain of cycles again after a halt, in one command.

A plan that fails for good (an invalid Variable, a missing table or pool, lost state) records a halt
and ends the chain: its batches are upstream_failed and no next cycle is planned. Once the cause is
fixed, ``resume`` checks the Variable, clears the halt and triggers a new run of the backfill's DAG
server side, as ``airflow dags trigger`` does; a run already queued or running is reported instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_spreader.tools.cli_errors import CliError

if TYPE_CHECKING:
    from airflow_spreader.tools.cli import Console

PROG = "airflow-spreader"


def run_resume(console: Console) -> int:
    name, dag_id = console.args.name, console.dag_id
    tracker = console.tracker(name, known=False)
    halt = tracker.halt()
    if halt is None and not tracker.is_started():
        console.tracker(name)  # raises: unknown backfill, listing the known ones
    if tracker.is_stopped():
        raise CliError(f"not resumed: {name} is stopped; clear the stop flag first with {PROG} go {name}")
    config = console.airflow.config(dag_id)
    if config.problem:
        raise CliError(f"not resumed: {config.problem}; fix it with {PROG} config {name} --set FIELD=VALUE "
                       "(or --replace JSON)", exit_code=1 if console.airflow.unreachable else 2)
    active = console.airflow.active_runs(dag_id)
    if active.problem:
        raise CliError(f"not resumed: {active.problem}")
    data = {"backfill": name, "dag_id": dag_id, "halted": halt[0] if halt else None,
            "active_runs": active.value or [], "triggered": None, "paused": console.airflow.is_paused(dag_id).value}
    paused = f"; the DAG {dag_id} is paused: the run starts once it is unpaused" if data["paused"] else ""
    if active.value:  # its plan clears the halt when it succeeds; a second chain would double the rate
        runs = ", ".join(active.value)
        console.emit(data, f"Not triggered: a run of {dag_id} is already queued or running ({runs}); "
                           f"its plan starts the next cycle{paused}. If it ends without planning, run "
                           f"{PROG} resume {name} again")
        return 0
    tracker.clear_halt()
    data["triggered"] = console.airflow.trigger(dag_id)
    was = "cleared the halt, " if halt else ""
    console.emit(data, f"Resumed {name}: {was}triggered the run {data['triggered']} of {dag_id}; its plan starts the "
                       f"next cycle, re-planning the ranges left in flight first{paused}")
    return 0
