"""Pure alert rules: sustained thresholds, rate of change, NEWS2 from the latest readings, silence and battery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from edge_config.alert_settings import AlertRuleSet, News2RuleSettings, RateSettings, ThresholdSettings
from gateway.alerts.rules import (
    Finding,
    PatientState,
    RuleError,
    check_rules,
    evaluate_reading,
    news2_finding,
    sweep_findings,
)
from gateway.events import ObservationEvent
from gateway.storage.alerts import AlertKey, DeviceActivity

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HR = ThresholdSettings(critical_low=Decimal(40), low=Decimal(50), high=Decimal(110), critical_high=Decimal(130),
                       sustained_seconds=120)  # fmt: skip
RULES = AlertRuleSet(
    thresholds={"heart_rate": HR, "blood_pressure.systolic": ThresholdSettings(high=Decimal(180))},
    rate_of_change={"body_weight": RateSettings(max_change=Decimal(2), window_seconds=86_400)},
    news2=News2RuleSettings(enabled=False),
)


def _hr(seconds: int, value: int) -> ObservationEvent:
    return ObservationEvent("ada", "heart_rate", f"k{seconds}", T0 + timedelta(seconds=seconds), Decimal(value), "/min")


def _run(events: list[ObservationEvent], rules: AlertRuleSet = RULES) -> list[list[Finding]]:
    state, found = PatientState(), []
    for event in events:
        findings, state = evaluate_reading(rules, state, event)
        found.append(findings)
    return found


def _summary(findings: list[Finding]) -> list[tuple[str, bool, str]]:
    return [(f.key.kind, f.active, f.severity if f.active else "-") for f in findings]


def test_a_threshold_opens_only_once_sustained_escalates_and_clears_on_the_first_normal_reading() -> None:
    found = _run([_hr(0, 115), _hr(60, 118), _hr(120, 135), _hr(180, 112), _hr(240, 90), _hr(300, 120)])
    assert [_summary(f) for f in found] == [
        [],  # beyond 110, not yet for 120 s
        [],
        [("heart_rate", True, "high")],  # 120 s beyond a bound; now beyond the critical one
        [("heart_rate", True, "medium")],
        [("heart_rate", False, "-")],
        [],  # a new breach starts its own clock
    ]
    assert found[2][0].summary == "heart_rate 135 /min above 130 for 120 s"
    assert found[2][0].detail["since"] == T0.isoformat()


def test_bounds_are_strict_and_low_side_works_too() -> None:
    rules = AlertRuleSet(
        thresholds={"heart_rate": HR.model_copy(update={"sustained_seconds": 0})}, news2=News2RuleSettings(enabled=False)
    )
    found = _run([_hr(0, 110), _hr(1, 50), _hr(2, 49), _hr(3, 39)], rules)
    assert [_summary(f) for f in found] == [
        [("heart_rate", False, "-")], [("heart_rate", False, "-")], [("heart_rate", True, "medium")], [("heart_rate", True, "high")],
    ]  # fmt: skip


def test_components_have_their_own_thresholds() -> None:
    event = ObservationEvent("ada", "blood_pressure", "bp", T0, None, "mm[Hg]", components=(("systolic", Decimal(190)),))
    (findings,) = _run([event])
    assert _summary(findings) == [("blood_pressure.systolic", True, "medium")]


def test_rate_of_change_within_the_window() -> None:
    def weight(hours: int, kg: str) -> ObservationEvent:
        return ObservationEvent("ada", "body_weight", f"w{hours}", T0 + timedelta(hours=hours), Decimal(kg), "kg")

    found = _run([weight(0, "80.0"), weight(12, "81.5"), weight(20, "82.1"), weight(50, "82.0"), weight(60, "79.9")])
    assert [_summary(f) for f in found] == [
        [("body_weight", False, "-")],
        [("body_weight", False, "-")],
        [("body_weight", True, "medium")],  # +2.1 kg within a day
        [("body_weight", False, "-")],  # the earlier readings left the window
        [("body_weight", True, "medium")],  # -2.1 kg
    ]
    assert found[2][0].detail["change"] == "2.1"


def _vitals(seconds: int, *, rr: int, spo2: int, systolic: int, pulse: int, temp: str) -> list[ObservationEvent]:
    at = T0 + timedelta(seconds=seconds)
    return [
        ObservationEvent("ada", "respiratory_rate", "rr", at, Decimal(rr), "/min"),
        ObservationEvent("ada", "spo2", "s", at, Decimal(spo2), "%"),
        ObservationEvent("ada", "blood_pressure", "bp", at, None, "mm[Hg]", components=(("systolic", Decimal(systolic)),)),
        ObservationEvent("ada", "pulse_rate", "p", at, Decimal(pulse), "/min"),
        ObservationEvent("ada", "body_temperature", "t", at, Decimal(temp), "Cel"),
    ]


def test_news2_is_scored_once_every_parameter_is_in_and_follows_the_latest_values() -> None:
    rules = AlertRuleSet()
    found = _run(
        [
            *_vitals(0, rr=25, spo2=93, systolic=120, pulse=115, temp="37.0"),
            *_vitals(60, rr=16, spo2=97, systolic=120, pulse=70, temp="37.0"),
        ],
        rules,
    )
    news = [[f for f in findings if f.key.rule == "news2"] for findings in found]
    assert news[:4] == [[], [], [], []]  # a parameter still missing
    assert news[4][0].active
    assert (news[4][0].severity, news[4][0].detail["score"], news[4][0].detail["risk"]) == ("high", 7, "high")
    assert news[4][0].summary == "NEWS2 7 (high clinical risk)"
    assert news[-1] == [Finding(AlertKey("ada", "news2", "news2"), active=False, at=T0 + timedelta(seconds=60))]


def test_news2_ignores_stale_parameters_and_applies_the_patients_oxygen_and_scale() -> None:
    latest = {
        "respiration_rate": (T0, Decimal(16)), "spo2": (T0, Decimal(90)), "systolic": (T0, Decimal(120)),
        "pulse": (T0, Decimal(70)), "temperature": (T0 - timedelta(hours=2), Decimal("37.0")),
    }  # fmt: skip
    assert news2_finding("ada", latest, News2RuleSettings()) is None
    latest["temperature"] = (T0, Decimal("37.0"))
    on_air = news2_finding("ada", latest, News2RuleSettings())
    assert on_air is not None
    assert (on_air.active, on_air.severity, on_air.detail["risk"]) == (True, "low", "low-medium")  # SpO2 90 scores 3
    scale_2 = news2_finding("ada", latest, News2RuleSettings(scale=2))
    assert scale_2 is not None
    assert not scale_2.active
    oxygen = news2_finding("ada", latest, News2RuleSettings(scale=2, on_oxygen=True, consciousness="cvpo"))
    assert oxygen is not None
    assert (oxygen.detail["score"], oxygen.severity) == (5, "medium")


def test_sweep_finds_silent_devices_and_patients_and_low_batteries() -> None:
    rules = AlertRuleSet(device_silence_seconds=600, patient_silence_seconds=3600, low_battery_percent=Decimal(15))
    activity = [
        DeviceActivity("watch-1", "ada", T0 - timedelta(days=3), T0 - timedelta(minutes=5), Decimal(10)),
        DeviceActivity("cuff-1", "ada", T0 - timedelta(days=3), T0 - timedelta(minutes=20), Decimal(80)),
        DeviceActivity("scale-1", "bob", T0 - timedelta(hours=2), None, None),
    ]
    findings = sweep_findings(activity, lambda _: rules, T0)
    assert [(f.key.patient_id, f.key.rule, f.key.kind, f.active) for f in findings] == [
        ("ada", "no_data", "device:watch-1", False),
        ("ada", "low_battery", "device:watch-1", True),
        ("ada", "no_data", "device:cuff-1", True),
        ("ada", "low_battery", "device:cuff-1", False),
        ("bob", "no_data", "device:scale-1", True),
        ("ada", "no_data", "patient", False),
        ("bob", "no_data", "patient", True),  # nothing since its device was assigned 2 h ago
    ]
    assert findings[2].summary == "no data from device cuff-1 for 1200 s (limit 600 s)"
    assert findings[1].severity == "low"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (AlertRuleSet(thresholds={"hart_rate": HR}), "no reading kind 'hart_rate'"),
        (AlertRuleSet(thresholds={"blood_pressure": HR}), "blood_pressure is compound; name a component"),
        (AlertRuleSet(rate_of_change={"heart_rate.systolic": RateSettings(max_change=Decimal(1), window_seconds=60)}),
         "heart_rate has no component 'systolic'"),
    ],
)  # fmt: skip
def test_rules_naming_unknown_kinds_or_components_are_refused(rules: AlertRuleSet, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        check_rules(rules)
    check_rules(AlertRuleSet())


def test_threshold_bounds_must_increase() -> None:
    with pytest.raises(ValueError, match="bounds must increase"):
        ThresholdSettings(low=Decimal(60), high=Decimal(50))
    with pytest.raises(ValueError, match="at least one of"):
        ThresholdSettings()
