"""A plan that fails for good records a halt in the tracker; the next plan that succeeds clears it (dag.test())."""

from __future__ import annotations

import json

import pytest

from tests.airflow.conftest import Source
from tests.airflow.test_backfill_dag import run_cycle
from tests.airflow.test_bad_input import GOOD

pytestmark = pytest.mark.airflow


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_an_invalid_variable_records_the_halt_and_a_valid_next_plan_clears_it(source: Source) -> None:
    source.create(1000)
    source.set_config(**GOOD)
    assert run_cycle(source) == "success"
    assert source.tracker.halt() is None
    done = source.tracker.progress().ids_done
    assert 0 < done < 1000

    source.set_raw_config(json.dumps({**GOOD, "batch_size": 0}))
    assert run_cycle(source) == "failed"
    halt = source.tracker.halt()
    assert halt is not None
    assert halt[0] == ("ConfigError: invalid spreader configuration: batch_size=0: must be an integer >= 1")
    assert halt[1] is not None
    assert source.tracker.progress().ids_done == done  # nothing advanced

    source.set_raw_config("{batch_size: 10")  # broken JSON: the latest failure is the one recorded
    assert run_cycle(source) == "failed"
    assert (source.tracker.halt() or ("",))[0].startswith("ConfigError: invalid spreader configuration: not valid JSON")

    source.set_config(**GOOD)
    assert run_cycle(source) == "success"
    assert source.tracker.halt() is None
    assert source.tracker.progress().ids_done > done


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_a_first_plan_that_fails_records_the_halt_without_starting(source: Source) -> None:
    source.create(20)
    source.set_raw_config("{batch_size: 10")
    assert run_cycle(source) == "failed"
    assert not source.tracker.is_started()
    assert (source.tracker.halt() or ("",))[0].startswith("ConfigError: ")
