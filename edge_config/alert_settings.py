"""The ``alerts:`` section: default rules for every patient, the engine's pace, webhooks.

A patient's own rules (``PUT /api/v1/patients/{id}/alert-rules``) are an :class:`AlertRuleSet`
too, and replace the defaults for that patient as a whole.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RULE_KEY = r"^[a-z0-9_]{1,64}(\.[a-z0-9_]{1,32})?$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdSettings(_Section):
    """Alert below ``low`` / above ``high`` (medium), below ``critical_low`` / above ``critical_high`` (high).

    The value must stay beyond the bound for ``sustained_seconds`` (by the readings' own times)
    before the alert opens; the first reading back inside the bounds clears it.
    """

    low: Decimal | None = None
    high: Decimal | None = None
    critical_low: Decimal | None = None
    critical_high: Decimal | None = None
    sustained_seconds: int = Field(default=0, ge=0, le=7 * 86_400)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdSettings:
        bounds = [bound for bound in (self.critical_low, self.low, self.high, self.critical_high) if bound is not None]
        if not bounds:
            msg = "a threshold needs at least one of low, high, critical_low, critical_high"
            raise ValueError(msg)
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            msg = "bounds must increase: critical_low < low < high < critical_high"
            raise ValueError(msg)
        return self


class RateSettings(_Section):
    """Alert when the value moves by ``max_change`` or more (either way) within ``window_seconds``."""

    max_change: Decimal = Field(gt=0)
    window_seconds: int = Field(ge=1, le=7 * 86_400)


class News2RuleSettings(_Section):
    """NEWS2 from the latest readings; what a device cannot measure has a stated default."""

    enabled: bool = True
    scale: Literal[1, 2] = Field(default=1, description="scale 2: hypercapnic respiratory failure, set by a clinician")
    on_oxygen: bool = Field(default=False, description="supplemental oxygen (2 points; scale 2 bands)")
    consciousness: Literal["alert", "cvpo"] = Field(default="alert", description="a device cannot observe CVPO")
    max_age_seconds: int = Field(default=3600, ge=60, le=7 * 86_400, description="readings older than this are not scored")


class AlertRuleSet(_Section):
    thresholds: dict[str, ThresholdSettings] = Field(
        default_factory=dict, description="per kind, or kind.component (blood_pressure.systolic)"
    )
    rate_of_change: dict[str, RateSettings] = Field(default_factory=dict, description="per kind, or kind.component")
    device_silence_seconds: int | None = Field(
        default=86_400, ge=1, le=30 * 86_400, description="alert when a patient's device sends nothing this long (null: off)"
    )
    patient_silence_seconds: int | None = Field(
        default=None, ge=1, le=30 * 86_400, description="alert when none of a patient's devices sends anything this long"
    )
    low_battery_percent: Decimal | None = Field(default=Decimal(15), ge=0, le=100, description="alert below this (null: off)")
    news2: News2RuleSettings = News2RuleSettings()

    @model_validator(mode="after")
    def _keys(self) -> AlertRuleSet:
        for key in (*self.thresholds, *self.rate_of_change):
            if re.fullmatch(RULE_KEY, key) is None:
                msg = f"{key!r} is not a kind or kind.component"
                raise ValueError(msg)
        return self


def _default_rules() -> AlertRuleSet:
    def threshold(*bounds: str | None, sustained: int = 120) -> ThresholdSettings:
        names = ("critical_low", "low", "high", "critical_high")
        values = {name: Decimal(bound) for name, bound in zip(names, bounds, strict=True) if bound is not None}
        return ThresholdSettings(sustained_seconds=sustained, **values)

    return AlertRuleSet(
        thresholds={
            "heart_rate": threshold("40", "50", "110", "130"),
            "pulse_rate": threshold("40", "50", "110", "130"),
            "respiratory_rate": threshold("8", "12", "20", "24"),
            "spo2": threshold("91", "94", None, None),
            "body_temperature": threshold("35.0", "36.0", "38.0", "39.0", sustained=0),
            "blood_pressure.systolic": threshold("90", "100", "180", "219", sustained=0),
        },
    )


class WebhookSettings(_Section):
    """Where alert changes are POSTed, signed with HMAC-SHA256 (see gateway/alerts/webhook.py)."""

    urls: list[str] = Field(default_factory=list, description="receivers; each gets every alert change")
    secret_file: Path | None = Field(default=None, description="file holding the shared signing secret (required with urls)")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_max_seconds: float = Field(default=300.0, gt=0, le=86_400)
    queue_size: int = Field(default=1000, ge=1, le=100_000, description="changes waiting per receiver; the oldest go first")

    @model_validator(mode="after")
    def _secret(self) -> WebhookSettings:
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                msg = f"webhook url {url!r} must start with http:// or https://"
                raise ValueError(msg)
        if self.urls and self.secret_file is None:
            msg = "webhook urls need a secret_file to sign with"
            raise ValueError(msg)
        return self


class AlertSettings(_Section):
    enabled: bool = Field(default=True, description="run the alert engine and the silence sweep inside `serve`")
    defaults: AlertRuleSet = Field(default_factory=_default_rules, description="rules of every patient without their own")
    sweep_interval_seconds: float = Field(default=60.0, gt=0, le=3600, description="silence, battery, snooze checks")
    queue_size: int = Field(default=10_000, ge=1, le=1_000_000, description="events the engine may fall behind by")
    activity_lookback_days: int = Field(default=7, ge=1, le=365, description="how far back to look for a last reading")
    webhooks: WebhookSettings = WebhookSettings()
