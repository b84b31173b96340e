"""Reference ranges the dashboard highlights against, per kind and unit.

Adult ranges as remote-monitoring programmes commonly flag them (a reading outside is shown
highlighted, not judged). A kind without a row is never highlighted; per-patient thresholds are
the alerts' business (``/api/v1/patients/{id}/alert-rules``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ReferenceRange:
    low: float | None
    high: float | None

    def outside(self, value: float) -> bool:
        return (self.low is not None and value < self.low) or (self.high is not None and value > self.high)


REFERENCE_RANGES = MappingProxyType(
    {
        ("heart_rate", "/min"): ReferenceRange(50, 100),
        ("pulse_rate", "/min"): ReferenceRange(50, 100),
        ("respiratory_rate", "/min"): ReferenceRange(12, 20),
        ("spo2", "%"): ReferenceRange(92, None),
        ("body_temperature", "Cel"): ReferenceRange(36.0, 37.9),
        ("blood_pressure.systolic", "mm[Hg]"): ReferenceRange(90, 140),
        ("blood_pressure.diastolic", "mm[Hg]"): ReferenceRange(60, 90),
        ("blood_glucose", "mg/dL"): ReferenceRange(70, 180),
        ("blood_glucose", "mmol/L"): ReferenceRange(3.9, 10.0),
        ("blood_glucose_plasma", "mg/dL"): ReferenceRange(70, 180),
        ("blood_glucose_plasma", "mmol/L"): ReferenceRange(3.9, 10.0),
        ("blood_glucose_whole_blood", "mg/dL"): ReferenceRange(70, 180),
        ("blood_glucose_whole_blood", "mmol/L"): ReferenceRange(3.9, 10.0),
        ("cgm_glucose", "mg/dL"): ReferenceRange(70, 180),
        ("cgm_glucose", "mmol/L"): ReferenceRange(3.9, 10.0),
    }
)


def reference_range(kind: str, unit: str) -> ReferenceRange | None:
    return REFERENCE_RANGES.get((kind, unit))
