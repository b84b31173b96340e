"""Pure rule evaluation: frozen values in, findings and the next state out, no I/O.

A :class:`Finding` is a condition the rules decided on: active (open or escalate the alert of its
key) or not (resolve it). Readings are evaluated by the rule kinds of :data:`READING_RULES`, in
the order of the table; the silence sweep by :func:`sweep_findings`. Rules are a patient's
:class:`~edge_config.alert_settings.AlertRuleSet` (frozen).

Bounds are strict: a heart rate alerts above ``high`` 110, not at 110. A threshold's value
must stay beyond a bound for ``sustained_seconds`` by the readings' own times; the first
reading back inside clears the alert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from edge_config.alert_settings import AlertRuleSet, News2RuleSettings, RateSettings, ThresholdSettings
from fhir_mapper.catalogue import CATALOGUE
from gateway.alerts.news2 import News2Inputs, Risk, news2
from gateway.events import ObservationEvent
from gateway.storage.alerts import AlertCandidate, AlertKey, DeviceActivity, JsonValue, Severity

MAX_RATE_POINTS = 256
"""Readings kept per kind for the rate of change (a bound: a chatty device cannot grow the state)."""


@dataclass(frozen=True, slots=True)
class Finding:
    key: AlertKey
    active: bool
    at: datetime
    severity: Severity = "medium"
    summary: str = ""
    detail: Mapping[str, JsonValue] = field(default_factory=dict)

    def candidate(self) -> AlertCandidate:
        return AlertCandidate(self.key, self.severity, self.summary, self.at, self.detail)


@dataclass(frozen=True, slots=True)
class PatientState:
    """What the reading rules remember about one patient between readings."""

    breach_since: Mapping[str, datetime] = field(default_factory=dict)
    """Per measurement, when its values went beyond a threshold bound (and have stayed there)."""
    recent: Mapping[str, tuple[tuple[datetime, Decimal], ...]] = field(default_factory=dict)
    """Per measurement, readings within its rate-of-change window, oldest first."""
    latest: Mapping[str, tuple[datetime, Decimal]] = field(default_factory=dict)
    """Per NEWS2 parameter, its latest reading."""


class RuleError(ValueError):
    """Rules that name no kind the catalogue knows, or a component a kind does not have."""


def measurements(event: ObservationEvent) -> list[tuple[str, Decimal]]:
    """The numbers a reading carries, by rule key: ``heart_rate``, ``blood_pressure.systolic``."""
    found = [(event.kind, event.value)] if event.value is not None else []
    found += [(f"{event.kind}.{name}", value) for name, value in event.components]
    return found


def check_rules(rules: AlertRuleSet) -> None:
    """Every rule key names a kind with a single value, or a component of a compound kind."""
    for key in (*rules.thresholds, *rules.rate_of_change):
        kind_name, _, component = key.partition(".")
        kind = CATALOGUE.get(kind_name)
        if kind is None:
            msg = f"{key!r}: no reading kind {kind_name!r} (see the catalogue)"
            raise RuleError(msg)
        if component and kind.component(component) is None:
            msg = f"{key!r}: {kind_name} has no component {component!r}"
            raise RuleError(msg)
        if not component and kind.compound:
            msg = f"{key!r}: {kind_name} is compound; name a component ({kind_name}.{kind.components[0].name})"
            raise RuleError(msg)


# -- thresholds --------------------------------------------------------------------------------

_LEVELS: tuple[tuple[str, Callable[[Decimal, Decimal], bool], Severity, str], ...] = (
    ("critical_low", lambda value, bound: value < bound, "high", "below"),
    ("critical_high", lambda value, bound: value > bound, "high", "above"),
    ("low", lambda value, bound: value < bound, "medium", "below"),
    ("high", lambda value, bound: value > bound, "medium", "above"),
)
"""The bounds, most severe first: a value beyond a critical bound is high, else medium."""


def threshold_breach(rule: ThresholdSettings, value: Decimal) -> tuple[Severity, str, Decimal] | None:
    for name, beyond, severity, side in _LEVELS:
        bound: Decimal | None = getattr(rule, name)
        if bound is not None and beyond(value, bound):
            return severity, side, bound
    return None


def _thresholds(rules: AlertRuleSet, state: PatientState, event: ObservationEvent) -> tuple[list[Finding], PatientState]:
    findings: list[Finding] = []
    since = dict(state.breach_since)
    for key, value in measurements(event):
        rule = rules.thresholds.get(key)
        if rule is None:
            continue
        alert = AlertKey(event.patient_id, "threshold", key)
        breach = threshold_breach(rule, value)
        if breach is None:
            since.pop(key, None)
            findings.append(Finding(alert, active=False, at=event.time))
            continue
        started = min(since.get(key, event.time), event.time)
        since[key] = started
        if event.time - started >= timedelta(seconds=rule.sustained_seconds):
            severity, side, bound = breach
            summary = f"{key} {value} {event.unit} {side} {bound}"
            if rule.sustained_seconds:
                summary += f" for {int((event.time - started).total_seconds())} s"
            detail: dict[str, JsonValue] = {"value": str(value), "unit": event.unit, "bound": str(bound), "side": side,
                                            "since": started.isoformat(), "reading_key": event.reading_key}  # fmt: skip
            findings.append(Finding(alert, active=True, at=event.time, severity=severity, summary=summary, detail=detail))
    return findings, replace(state, breach_since=since)


# -- rate of change ----------------------------------------------------------------------------


def rate_change(points: Iterable[tuple[datetime, Decimal]], value: Decimal) -> Decimal:
    """The largest move from any earlier point in the window to ``value``, with its sign."""
    return max((value - earlier for _, earlier in points), key=abs, default=Decimal(0))


def _rates(rules: AlertRuleSet, state: PatientState, event: ObservationEvent) -> tuple[list[Finding], PatientState]:
    findings: list[Finding] = []
    recent = dict(state.recent)
    for key, value in measurements(event):
        rule: RateSettings | None = rules.rate_of_change.get(key)
        if rule is None:
            continue
        start = event.time - timedelta(seconds=rule.window_seconds)
        window = [point for point in recent.get(key, ()) if start <= point[0] <= event.time]
        change = rate_change(window, value)
        kept = sorted([*recent.get(key, ()), (event.time, value)])
        recent[key] = tuple(point for point in kept if point[0] >= start)[-MAX_RATE_POINTS:]
        alert = AlertKey(event.patient_id, "rate_of_change", key)
        if abs(change) >= rule.max_change:
            summary = f"{key} changed by {change} {event.unit} within {rule.window_seconds} s"
            detail: dict[str, JsonValue] = {"change": str(change), "unit": event.unit, "window_seconds": rule.window_seconds,
                                            "reading_key": event.reading_key}  # fmt: skip
            findings.append(Finding(alert, active=True, at=event.time, summary=summary, detail=detail))
        else:
            findings.append(Finding(alert, active=False, at=event.time))
    return findings, replace(state, recent=recent)


# -- NEWS2 -------------------------------------------------------------------------------------

NEWS2_SOURCES: Mapping[str, str] = {
    "respiratory_rate": "respiration_rate",
    "spo2": "spo2",
    "blood_pressure.systolic": "systolic",
    "heart_rate": "pulse",
    "pulse_rate": "pulse",
    "body_temperature": "temperature",
}
"""Which measurement feeds which NEWS2 parameter (a watch's heart rate and a cuff's pulse both count)."""
NEWS2_SEVERITY: Mapping[Risk, Severity | None] = {
    Risk.LOW: None,
    Risk.LOW_MEDIUM: "low",
    Risk.MEDIUM: "medium",
    Risk.HIGH: "high",
}


def news2_finding(patient_id: str, latest: Mapping[str, tuple[datetime, Decimal]], settings: News2RuleSettings) -> Finding | None:
    """The NEWS2 alert's state from the latest parameters; None while one is missing or too old."""
    parameters = set(NEWS2_SOURCES.values())
    if not parameters <= set(latest):
        return None
    newest = max(at for at, _ in latest.values())
    if any(newest - at > timedelta(seconds=settings.max_age_seconds) for at, _ in latest.values()):
        return None
    values = {name: value for name, (_, value) in latest.items()}
    score = news2(News2Inputs(values["respiration_rate"], values["spo2"], values["systolic"], values["pulse"],
                              values["temperature"], settings.on_oxygen, settings.consciousness, settings.scale))  # fmt: skip
    key = AlertKey(patient_id, "news2", "news2")
    severity = NEWS2_SEVERITY[score.risk]
    if severity is None:
        return Finding(key, active=False, at=newest)
    detail: dict[str, JsonValue] = {"score": score.total, "risk": score.risk.value}
    detail |= {f"score_{parameter.value}": points for parameter, points in score.scores.items()}
    summary = f"NEWS2 {score.total} ({score.risk.value} clinical risk)"
    return Finding(key, active=True, at=newest, severity=severity, summary=summary, detail=detail)


def _news2(rules: AlertRuleSet, state: PatientState, event: ObservationEvent) -> tuple[list[Finding], PatientState]:
    if not rules.news2.enabled:
        return [], state
    latest = dict(state.latest)
    changed = False
    for key, value in measurements(event):
        parameter = NEWS2_SOURCES.get(key)
        if parameter is not None and (parameter not in latest or latest[parameter][0] <= event.time):
            latest[parameter] = (event.time, value)
            changed = True
    if not changed:
        return [], state
    finding = news2_finding(event.patient_id, latest, rules.news2)
    return ([] if finding is None else [finding]), replace(state, latest=latest)


ReadingRule = Callable[[AlertRuleSet, PatientState, ObservationEvent], tuple[list[Finding], PatientState]]
READING_RULES: Mapping[str, ReadingRule] = {"threshold": _thresholds, "rate_of_change": _rates, "news2": _news2}
"""The rule kinds that look at each stored reading; ``no_data`` and ``low_battery`` are the sweep's."""
SWEEP_RULES = ("no_data", "low_battery")


def evaluate_reading(rules: AlertRuleSet, state: PatientState, event: ObservationEvent) -> tuple[list[Finding], PatientState]:
    findings: list[Finding] = []
    for rule in READING_RULES.values():
        found, state = rule(rules, state, event)
        findings += found
    return findings, state


# -- the sweep: silence and battery --------------------------------------------------------------


def _silence(key: AlertKey, heard: datetime, limit: int | None, now: datetime, who: str) -> Finding | None:
    if limit is None:
        return None
    silent = now - heard
    if silent < timedelta(seconds=limit):
        return Finding(key, active=False, at=now)
    summary = f"no data from {who} for {int(silent.total_seconds())} s (limit {limit} s)"
    return Finding(key, active=True, at=now, summary=summary, detail={"last_heard": heard.isoformat(), "limit_seconds": limit})


def sweep_findings(activity: Sequence[DeviceActivity], rules_of: Callable[[str], AlertRuleSet], now: datetime) -> list[Finding]:
    """No data from a device or a patient for longer than their rules allow; a device's battery below its floor."""
    findings: list[Finding] = []
    heard: dict[str, datetime] = {}
    for device in activity:
        rules = rules_of(device.patient_id)
        last = max(device.last_time, device.watched_from) if device.last_time is not None else device.watched_from
        heard[device.patient_id] = max(heard.get(device.patient_id, last), last)
        key = AlertKey(device.patient_id, "no_data", f"device:{device.device_id}")
        silent = _silence(key, last, rules.device_silence_seconds, now, f"device {device.device_id}")
        findings += [silent] if silent is not None else []
        if rules.low_battery_percent is not None and device.battery is not None:
            key = AlertKey(device.patient_id, "low_battery", f"device:{device.device_id}")
            if device.battery < rules.low_battery_percent:
                summary = f"device {device.device_id} battery at {device.battery} % (below {rules.low_battery_percent} %)"
                findings.append(Finding(key, active=True, at=now, severity="low", summary=summary,
                                        detail={"battery_percent": str(device.battery)}))  # fmt: skip
            else:
                findings.append(Finding(key, active=False, at=now))
    for patient_id, last in heard.items():
        key = AlertKey(patient_id, "no_data", "patient")
        silent = _silence(key, last, rules_of(patient_id).patient_silence_seconds, now, f"any device of Patient/{patient_id}")
        findings += [silent] if silent is not None else []
    return findings
