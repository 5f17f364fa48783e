"""Issue 14's last gap under dag.test(): a text key's backfill restored after Redis lost its data does every row
exactly once: the ranges done below the checkpoint's mark before the loss (one of them killed after its commit,
so Redis never heard of it) are skipped by the text ledger, whatever the batch size after the restore."""

from __future__ import annotations

import json

import pytest

from airflow_spreader.core.names import checkpoint_variable
from airflow_spreader.state.checkpoint import Checkpoint
from airflow_spreader.state.text_keys import TextKeyStore
from tests.airflow.conftest import Source
from tests.airflow.test_backfill_dag import run_cycle, run_cycles_until_finished
from tests.airflow.test_done_ledger import kill_the_next_batch_after_its_commit
from tests.airflow.test_text_keys import counters, create_text_keys
from tests.sql.test_text_walk import KEYS

pytestmark = pytest.mark.airflow

#: 4 batches of 10 rows a cycle, each in a task instance of its own (an unmeasured cycle: one per batch/s).
CONFIG = {"batch_size": 10, "duration": 1, "per_second_on_peak": 4, "per_second_off_peak": 4,
          "lease_seconds": 1, "max_tasks_per_cycle": 4, "batching": "rows"}


@pytest.mark.parametrize("source", ["dies"], indirect=True)
@pytest.mark.parametrize("batch_size_after", [10, 7])
def test_a_restored_text_key_backfill_skips_the_ranges_done_below_its_mark(source: Source,
                                                                         batch_size_after: int) -> None:
    from airflow.models.variable import Variable

    keys = KEYS[:80]
    create_text_keys(source, keys)
    source.set_config(**CONFIG)
    assert run_cycle(source) == "success"  # the top 40 rows
    # The checkpoint as the 2nd cycle's plan leaves it; Redis is lost before the 2nd cycle's report writes one.
    saved = Checkpoint(**json.loads(Variable.get(checkpoint_variable(source.dag_id))))
    top_down = sorted(keys, reverse=True)  # SQLite's BINARY order is the code points'
    assert saved.text_key and saved.low_water_text in top_down[39:41], "every row below the mark is left"
    # The 2nd cycle unmeasured too (the 1st cycle's batch times forgotten), so that it also takes one task
    # instance per batch: the killed one takes only its own batch with it.
    source.tracker.redis.delete(source.tracker.keys.sizing_times)
    kill_the_next_batch_after_its_commit()
    assert run_cycle(source) == "failed"  # one task instance died after its commit; the 3 others finished
    assert saved.generation == source.tracker.generation()
    assert counters(source) == dict.fromkeys(keys, 1), "all 80 rows committed once, 40 of them below the mark"
    assert source.tracker.progress().batches_done == 4 + 3, "Redis never heard of the killed batch's commit"

    source.tracker.reset()  # Redis restarted without persistence: the backfill's namespace is gone
    assert TextKeyStore(source.tracker).entries() == {}
    saved.restore(source.tracker)
    assert source.tracker.generation() == saved.generation, "the restore continues the run's done-ledger"
    source.set_config(**{**CONFIG, "batch_size": batch_size_after})  # the new cut below the mark
    run_cycles_until_finished(source, 6)
    assert source.tracker.progress().finished
    redone = sorted(k for k, n in counters(source).items() if n != 1)
    assert redone == [], f"rows done twice (or never) after the restore: {redone}"
