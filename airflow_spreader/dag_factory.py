"""A backfill DAG in a few lines: plan >> [mapped batches >> report, next cycle]."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, Asset
from airflow.sdk.definitions.param import Param

from airflow_spreader.core.names import asset_uri, config_variable, validate_name
from airflow_spreader.core.split import DEFAULT_MAX_SPLIT_DEPTH, check_max_split_depth
from airflow_spreader.core.timing import missing_work
from airflow_spreader.cycle.verify import DEFAULT_SPAN_BATCHES
from airflow_spreader.hooks.airflow_api import DEFAULT_API_CONN_ID
from airflow_spreader.operators.batch import BatchWork, SpreadBatchOperator
from airflow_spreader.operators.finished import BackfillFinishedOperator
from airflow_spreader.operators.next_cycle import NextCycleOperator
from airflow_spreader.operators.plan import PlanCycleOperator
from airflow_spreader.operators.report import CycleReportOperator
from airflow_spreader.sql.ledger import DEFAULT_LEDGER_TABLE
from airflow_spreader.sql.pending import PendingPredicate

#: A run's task instances allowed to run at once: a full mapping (max_tasks_per_cycle <= 1,024) and the control
#: tasks (plan, next_cycle, report, finished), so that the pool alone limits the batches.
MAX_ACTIVE_TASKS = 1024 + 4


def backfill_dag(
    dag_id: str,
    *,
    table: str,
    source_conn_id: str,
    work: BatchWork | None = None,
    batch_operator: type[SpreadBatchOperator] = SpreadBatchOperator,
    key: str | None = None,
    pool: str | None = None,
    redis_conn_id: str = "redis_default",
    backfill: str | None = None,
    initial_config: Mapping[str, Any] | None = None,
    retries: int = 2,
    control_retries: int = 3,
    retry_delay: timedelta = timedelta(seconds=10),
    check_pool: bool = True,
    ledger_table: str | None = DEFAULT_LEDGER_TABLE,
    api_conn_id: str | None = DEFAULT_API_CONN_ID,
    allow_unindexed_key: bool = False,
    max_split_depth: int = DEFAULT_MAX_SPLIT_DEPTH,
    pending: PendingPredicate | None = None,
    pending_span_batches: int = DEFAULT_SPAN_BATCHES,
    asset: Asset | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the DAG of one backfill: each run is one cycle.

    :param table: the table to walk (``schema.table`` allowed); ``key`` is its key column: an integer, or
        (``"rows"`` batching) a UUID or text (default ``id``; a table whose primary key is composite must
        name it).
    :param source_conn_id: the Airflow connection of the table's database (SQLite, PostgreSQL, MySQL).
    :param work: ``work(connection, begin_id, end_id)``, run in one transaction per batch; or give
        ``batch_operator``, a subclass of :class:`SpreadBatchOperator` overriding ``process``.
    :param pool: the Airflow pool the batches run in (default: the DAG id). Its size is the live
        concurrency knob; it must exist (``airflow pools set NAME SLOTS DESC``).
    :param backfill: the tracker's name in Redis (default: the DAG id).
    :param initial_config: values for the Variable ``spreader__<dag_id>`` when it is first created.
    :param retries: Airflow retries of a batch task; a range failing on every try is split to isolate its
        failing rows (quarantined), or kept as a failed range (``max_split_depth``).
    :param max_split_depth: levels a failed range is split below a range where no row succeeded before that
        range is kept whole as one failed range (a range where every row fails); 0 never splits (default 3).
    :param control_retries: retries of the plan and next-cycle tasks, so that a passing Redis or database
        outage does not end the chain; bad input (configuration, table, pool, lost state) fails at once.
    :param ledger_table: the done-ledger in the source database (created at the first cycle): each batch
        records its range there in its own transaction, so a range whose work committed is never run
        again, even if its worker died before Redis heard of it. ``None``: no table is created, and such
        a range is run again (at least once); use it when the work does not write to the source database.
    :param api_conn_id: an Airflow ``http`` connection whose login and password let the plan read the pool
        through the api-server's REST API when its auth manager asks for a login (its host, if set, is the
        api-server's address; else ``[api] base_url``). Without it the check goes unauthenticated, and a
        refusal (401/403) fails the plan saying so; ``check_pool=False`` skips the check.
    :param allow_unindexed_key: let ``"rows"`` batching read a key that leads no index (each cycle then
        sorts the table); without it such a key fails the first cycle, naming the column.
    :param pending: which rows still need the work, as an SQL ``WHERE`` fragment on the table
        (``"email_normalized IS NULL"``) or a SQLAlchemy boolean clause. Once every range is done the
        backfill counts those rows (``pending_span_batches x batch_size`` ids per count query, at most one
        query per batch slot of a cycle) and is finished only when none remain; otherwise the final run
        fails "incomplete" with the ranges, and ``airflow-spreader redo-pending NAME`` plans them again.
        Leave out of it the rows the work skips on purpose. Checked at every plan: a predicate that does
        not run on the table fails the plan, and nothing is planned.
    :param asset: the Asset the ``finished`` task emits an event for when the backfill finishes (verified,
        with ``pending``), once; default ``backfill_asset(backfill)``, ``airflow-spreader://<backfill>``.
    """
    if work is None and batch_operator is SpreadBatchOperator:
        raise missing_work(f"backfill_dag({dag_id!r})", "a batch_operator subclass")
    name = validate_name(backfill or dag_id)
    check_max_split_depth(max_split_depth)
    if pending_span_batches < 1:
        raise ValueError(f"pending_span_batches must be an integer >= 1, got {pending_span_batches!r}")
    if asset is not None and not isinstance(asset, Asset):
        raise TypeError(f"asset must be an airflow.sdk.Asset, got {type(asset).__name__} {asset!r}")
    pool = pool or dag_id
    dag_kwargs.setdefault("schedule", None)
    dag_kwargs.setdefault("start_date", datetime(2024, 1, 1, tzinfo=timezone.utc))
    dag_kwargs.setdefault("catchup", False)
    # Two: the next cycle's run starts lead_seconds before this one's batches end (cycles tile the time line).
    dag_kwargs.setdefault("max_active_runs", 2)
    # The pool is the concurrency knob: Airflow's default max_active_tasks (16 per run) would silently cap a
    # run's batch task instances below it, and with next_cycle beside them leave one of 16 queued until
    # another ends, its batches seconds late (bench section 7). Room for a full mapping and the control tasks.
    dag_kwargs.setdefault("max_active_tasks", MAX_ACTIVE_TASKS)
    dag_kwargs.setdefault("tags", ["airflow-spreader", "backfill"])
    dag_kwargs.setdefault("doc_md", _doc(name, table, pool, dag_id))
    dag_kwargs.setdefault("params", {"note": Param("", type="string", description="Free text for the run")})
    with DAG(dag_id, **dag_kwargs) as dag:
        plan = PlanCycleOperator(
            task_id="plan", backfill=name, table=table, key=key, source_conn_id=source_conn_id,
            redis_conn_id=redis_conn_id, config_variable=config_variable(dag_id), initial_config=initial_config,
            batch_pool=pool if check_pool else None, ledger_table=ledger_table, api_conn_id=api_conn_id,
            allow_unindexed_key=allow_unindexed_key, retries=control_retries, pending=pending,
            pending_span_batches=pending_span_batches,
            retry_delay=retry_delay,
        )
        batches = batch_operator.partial(
            task_id="batches", backfill=name, source_conn_id=source_conn_id, redis_conn_id=redis_conn_id,
            work=work, ledger_table=ledger_table, pool=pool, retries=retries, retry_delay=retry_delay,
            max_split_depth=max_split_depth,
            priority_weight=10,
            map_index_template="{{ task.id_ranges }}",
        ).expand_kwargs(plan.output)
        chain = NextCycleOperator(task_id="next_cycle", backfill=name, redis_conn_id=redis_conn_id,
                                  config_variable=config_variable(dag_id), trigger_rule="all_done",
                                  retries=control_retries, retry_delay=retry_delay, verify=pending is not None)
        report = CycleReportOperator(task_id="report", trigger_rule="all_done", backfill=name,
                                     config_variable=config_variable(dag_id), redis_conn_id=redis_conn_id)
        finished = BackfillFinishedOperator(task_id="finished", backfill=name, outlets=[asset or backfill_asset(name)],
                                            retries=control_retries, retry_delay=retry_delay)
        plan >> batches >> report
        plan >> chain >> finished
    return dag


def backfill_asset(backfill: str) -> Asset:
    """The default Asset of a backfill, ``airflow-spreader://<backfill>`` (its name and URI): schedule a
    downstream DAG on it (``schedule=[backfill_asset("users_backfill")]``) to run once the table is done."""
    uri = asset_uri(backfill)
    return Asset(name=uri, uri=uri)


def _doc(name: str, table: str, pool: str, dag_id: str) -> str:
    return (
        f"### airflow-spreader backfill `{name}` of `{table}`\n\n"
        f"Each run is one cycle. Tune it in the Variable `{config_variable(dag_id)}` (read every cycle); "
        f"the batches run in the pool `{pool}` (its size is the concurrency). Pause the DAG to stop "
        f"new cycles; `airflow-spreader stop {name}` stops batches at once."
    )
