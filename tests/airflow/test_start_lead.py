"""The first cycle's start lead: a number of seconds >= 0, from the operator or the environment, else refused."""

from __future__ import annotations

import pytest

from airflow_spreader.operators.plan import START_LEAD_ENV, check_start_lead, env_start_lead


@pytest.mark.parametrize("value", [0, 0.5, "6", 12])
def test_a_start_lead_is_a_number_of_seconds(value: object) -> None:
    assert check_start_lead(value) == float(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, "soon", float("nan"), float("inf"), True, None])
def test_a_bad_start_lead_is_refused_naming_it(value: object) -> None:
    with pytest.raises(ValueError, match=r"start_lead must be a number of seconds >= 0"):
        check_start_lead(value)


def test_the_environment_variable_is_read_and_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(START_LEAD_ENV, " 4 ")
    assert env_start_lead() == 4.0
    monkeypatch.setenv(START_LEAD_ENV, "")
    assert env_start_lead() is None
    monkeypatch.setenv(START_LEAD_ENV, "-3")
    with pytest.raises(ValueError, match=rf"\${START_LEAD_ENV} must be a number of seconds >= 0.*'-3'"):
        env_start_lead()
