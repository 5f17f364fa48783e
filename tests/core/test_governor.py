"""The governor's configuration and decisions: pure, no Airflow, no Redis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_spreader.core.config import ConfigError, SpreadConfig
from airflow_spreader.core.governor import Reading, Verdict, decide, judge, number_text
from airflow_spreader.core.governor_config import GovernorConfig, Signal

REQUIRED = {"batch_size": 10, "duration": 30, "per_second_on_peak": 2, "per_second_off_peak": 4}
LAG = {"kind": "replica_lag", "conn_id": "replica", "hold_above": 2, "stop_above": 30}


def problems_of(governor: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        SpreadConfig.from_dict({**REQUIRED, "governor": governor})
    return caught.value.problems


def test_a_governor_in_the_variable_round_trips() -> None:
    governor = {"health_interval": 5, "signals": [
        LAG, {"kind": "active_sessions", "conn_id": "db", "hold_above": 20},
        {"kind": "probe_latency", "conn_id": "db", "hold_above": 50, "samples": 5, "name": "hot lookup",
         "query": "SELECT id FROM accounts WHERE id = 1"},
        {"kind": "probe_latency", "conn_id": "db", "hold_above": 20, "commit": True,
         "query": "UPDATE heartbeat SET beat = beat + 1"},
        {"kind": "sql", "conn_id": "db", "hold_above": 1e6, "query": "SELECT count(*) FROM queue"},
        {"kind": "callable", "callable": "mypackage.health:lag", "hold_above": 3}]}
    config = SpreadConfig.from_dict({**REQUIRED, "governor": governor})
    assert config.governor is not None and config.governor.health_interval == 5
    assert [s.label for s in config.governor.signals] == ["replica lag", "active sessions", "hot lookup",
                                                           "probe latency", "sql", "callable"]
    assert [s.commit for s in config.governor.signals] == [False, False, False, True, False, False]
    assert SpreadConfig.from_dict(config.to_dict()) == config
    assert SpreadConfig.from_json(config.to_json()) == config
    assert "governor" not in SpreadConfig.from_dict(REQUIRED).to_dict()


def test_probe_latency_defaults_to_three_samples_of_select_1() -> None:
    config = GovernorConfig.from_dict({"signals": [{"kind": "probe_latency", "conn_id": "db", "hold_above": 10}]})
    assert (config.health_interval, config.signals[0].query, config.signals[0].samples) == (10.0, "SELECT 1", 3)


@pytest.mark.parametrize(("governor", "field", "says"), [
    ({"signals": [{"kind": "cpu", "hold_above": 1}]}, "governor.signals[0].kind", "must be one of replica_lag"),
    ({"signals": [{**LAG, "hold_above": -1}]}, "governor.signals[0].hold_above", "finite number >= 0"),
    ({"signals": [{**LAG, "stop_above": -3}]}, "governor.signals[0].stop_above", "finite number >= 0"),
    ({"signals": [{**LAG, "stop_above": 1}]}, "governor.signals[0].stop_above", "at least hold_above"),
    ({"signals": [{"kind": "replica_lag", "hold_above": 1}]}, "governor.signals[0].conn_id", "(required)"),
    ({"signals": [{"kind": "sql", "conn_id": "db", "hold_above": 1}]}, "governor.signals[0].query",
     "one number"),
    ({"signals": [{"kind": "callable", "callable": "not a path", "hold_above": 1}]},
     "governor.signals[0].callable", "dotted path"),
    ({"signals": [{**LAG, "samples": 3}]}, "governor.signals[0].samples", "probe_latency only"),
    ({"signals": [{**LAG, "commit": True}]}, "governor.signals[0].commit", "probe_latency only"),
    ({"signals": [{"kind": "probe_latency", "conn_id": "db", "hold_above": 1, "commit": "yes"}]},
     "governor.signals[0].commit", "true or false"),
    ({"signals": [{**LAG, "colour": "red"}]}, "governor.signals[0].colour", "unknown field"),
    ({"health_interval": 0, "signals": []}, "governor.health_interval", "> 0"),
    ({"health_interval": 5}, "governor.signals", "(required)"),
    ({"signals": [], "every": 3}, "governor.every", "unknown field"),
    ("on", "governor", "must be an object"),
])
def test_each_bad_governor_field_is_named_with_what_is_allowed(governor: object, field: str, says: str) -> None:
    problems = problems_of(governor)
    assert list(problems) == [field] and says in problems[field]


def test_every_bad_field_is_reported_at_once_beside_the_flat_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        SpreadConfig.from_dict({**REQUIRED, "batch_size": 0, "governor": {
            "signals": [{**LAG, "hold_above": -1}, {"kind": "nope", "hold_above": 1}]}})
    assert set(caught.value.problems) == {"batch_size", "governor.signals[0].hold_above", "governor.signals[1].kind"}
    assert "governor.signals[0].hold_above: must be a finite number >= 0" in str(caught.value)


LAG_SIGNAL = Signal("replica_lag", hold_above=2, stop_above=30, conn_id="replica")
SESSIONS = Signal("active_sessions", hold_above=10, conn_id="db")


def test_the_worst_signal_decides_and_says_why() -> None:
    assert decide([LAG_SIGNAL, SESSIONS], [Reading(1.0), Reading(3)]) == Verdict("ok")
    held = decide([LAG_SIGNAL, SESSIONS], [Reading(4.2), Reading(3)])
    assert (held.decision, held.reason) == ("hold", "replica lag 4.2 s > 2 s")
    stopped = decide([LAG_SIGNAL, SESSIONS], [Reading(31), Reading(50)])
    assert (stopped.decision, stopped.reason) == ("stop", "replica lag 31 s > 30 s")
    further = decide([LAG_SIGNAL, SESSIONS], [Reading(2.5), Reading(50)])
    assert further.reason == "active sessions 50 > 10"  # 5x its threshold beats 1.25x


def test_a_failed_check_holds_never_passes_nor_stops() -> None:
    verdict = decide([LAG_SIGNAL], [Reading(None, "OperationalError: connection refused")])
    assert verdict.decision == "hold"
    assert verdict.reason == "replica lag: check failed (OperationalError: connection refused)"


def test_verdicts_round_trip_through_json() -> None:
    verdict = judge(LAG_SIGNAL, Reading(4.2))
    assert Verdict.from_dict(verdict.to_dict()) == verdict
    assert [number_text(v) for v in (1250.4, 2.0, 0.25, 2.041, 31.0)] == ["1,250", "2", "0.25", "2.04", "31"]


thresholds = st.floats(min_value=0, max_value=1e6, allow_nan=False)
values = st.one_of(st.none(), st.floats(min_value=0, max_value=2e6, allow_nan=False))


@given(st.lists(st.tuples(thresholds, st.one_of(st.none(), thresholds), values), min_size=1, max_size=6))
def test_decide_holds_iff_some_signal_is_above_hold_or_failed_and_stops_iff_above_stop(
        cases: list[tuple[float, float | None, float | None]]) -> None:
    signals = [Signal("sql", hold_above=hold, stop_above=None if extra is None else hold + extra,
                      conn_id="db", query="SELECT 1", name=f"s{i}") for i, (hold, extra, _) in enumerate(cases)]
    readings = [Reading(value) for _, _, value in cases]
    verdict = decide(signals, readings)
    stops = any(r.value is not None and s.stop_above is not None and r.value > s.stop_above
                for s, r in zip(signals, readings, strict=True))
    unhealthy = any(r.value is None or r.value > s.hold_above for s, r in zip(signals, readings, strict=True))
    assert verdict.decision == ("stop" if stops else "hold" if unhealthy else "ok")
    if verdict.decision != "ok":  # the signal named is one that decided it
        chosen = next(s for s in signals if s.label == verdict.signal)
        assert judge(chosen, readings[signals.index(chosen)]).decision == verdict.decision
