"""NEWS2, the Royal College of Physicians' National Early Warning Score 2 (RCP, December 2017).

Pure: the chart is a typed table of bands per parameter, and the score is the sum of the
parameter scores. A value is first rounded, half up, to the precision the chart is printed in
(whole numbers; temperature to 0.1 °C), as a nurse filling in the chart would; a band is then
found by its upper bound (``None``: no upper bound).

Home devices measure five of the seven parameters. The other two have documented defaults,
overridable per patient (``alerts`` rules, ``news2``):

- consciousness: **alert** (0 points). A device cannot observe new confusion, voice, pain or
  unresponsiveness (CVPO, 3 points); a care team that knows better sets ``cvpo``.
- breathing: **air** (0 points). Supplemental oxygen adds 2 points and, on SpO2 scale 2,
  changes the SpO2 bands; a patient on home oxygen gets ``on_oxygen: true``.
- SpO2 scale 1, unless the patient's rules say scale 2 (hypercapnic respiratory failure, set by
  a clinician: the RCP chart's own condition).

Clinical risk (RCP 2017, chart 2): aggregate 0-4 is low, unless a single parameter scores 3
(low-medium); 5-6 is medium; 7 or more is high.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal


class Parameter(enum.StrEnum):
    RESPIRATION_RATE = "respiration_rate"
    SPO2 = "spo2"
    AIR_OR_OXYGEN = "air_or_oxygen"
    SYSTOLIC = "systolic"
    PULSE = "pulse"
    CONSCIOUSNESS = "consciousness"
    TEMPERATURE = "temperature"


class Risk(enum.StrEnum):
    LOW = "low"
    LOW_MEDIUM = "low-medium"
    MEDIUM = "medium"
    HIGH = "high"


Consciousness = Literal["alert", "cvpo"]
SpO2Scale = Literal[1, 2]


@dataclass(frozen=True, slots=True)
class Band:
    """Values up to and including ``upper`` (None: any higher value) score ``score``."""

    upper: Decimal | None
    score: int


def _bands(*pairs: tuple[str | None, int]) -> tuple[Band, ...]:
    return tuple(Band(None if upper is None else Decimal(upper), score) for upper, score in pairs)


WHOLE = Decimal(1)
TENTH = Decimal("0.1")

BANDS: Mapping[Parameter, tuple[Band, ...]] = {
    Parameter.RESPIRATION_RATE: _bands(("8", 3), ("11", 1), ("20", 0), ("24", 2), (None, 3)),
    Parameter.SPO2: _bands(("91", 3), ("93", 2), ("95", 1), (None, 0)),
    Parameter.SYSTOLIC: _bands(("90", 3), ("100", 2), ("110", 1), ("219", 0), (None, 3)),
    Parameter.PULSE: _bands(("40", 3), ("50", 1), ("90", 0), ("110", 1), ("130", 2), (None, 3)),
    Parameter.TEMPERATURE: _bands(("35.0", 3), ("36.0", 1), ("38.0", 0), ("39.0", 1), (None, 2)),
}
"""The chart's measured parameters (SpO2 on scale 1)."""

SPO2_SCALE_2: Mapping[bool, tuple[Band, ...]] = {
    False: _bands(("83", 3), ("85", 2), ("87", 1), (None, 0)),  # on air: 88 and above score 0
    True: _bands(("83", 3), ("85", 2), ("87", 1), ("92", 0), ("94", 1), ("96", 2), (None, 3)),
}
"""SpO2 scale 2 (target 88-92 %): above 92 % scores only on oxygen."""

PRECISION: Mapping[Parameter, Decimal] = {
    Parameter.RESPIRATION_RATE: WHOLE, Parameter.SPO2: WHOLE, Parameter.SYSTOLIC: WHOLE, Parameter.PULSE: WHOLE,
    Parameter.TEMPERATURE: TENTH,
}  # fmt: skip
OXYGEN_SCORE: Mapping[bool, int] = {False: 0, True: 2}
CONSCIOUSNESS_SCORE: Mapping[Consciousness, int] = {"alert": 0, "cvpo": 3}


def band_score(bands: tuple[Band, ...], value: Decimal) -> int:
    return next(band.score for band in bands if band.upper is None or value <= band.upper)


def parameter_score(parameter: Parameter, value: Decimal, *, scale: SpO2Scale = 1, on_oxygen: bool = False) -> int:
    """One measured parameter's score on the chart."""
    rounded = value.quantize(PRECISION[parameter], rounding=ROUND_HALF_UP)
    if parameter is Parameter.SPO2 and scale == 2:  # noqa: PLR2004 - the chart's scale number
        return band_score(SPO2_SCALE_2[on_oxygen], rounded)
    return band_score(BANDS[parameter], rounded)


@dataclass(frozen=True, slots=True)
class News2Inputs:
    """The latest of each measured parameter, and what a device cannot measure."""

    respiration_rate: Decimal
    spo2: Decimal
    systolic: Decimal
    pulse: Decimal
    temperature: Decimal
    on_oxygen: bool = False
    consciousness: Consciousness = "alert"
    scale: SpO2Scale = 1


@dataclass(frozen=True, slots=True)
class News2Score:
    total: int
    scores: Mapping[Parameter, int]
    risk: Risk


def risk_of(total: int, scores: Mapping[Parameter, int]) -> Risk:
    if total >= 7:  # noqa: PLR2004 - RCP 2017 chart 2
        return Risk.HIGH
    if total >= 5:  # noqa: PLR2004 - RCP 2017 chart 2
        return Risk.MEDIUM
    return Risk.LOW_MEDIUM if any(score == 3 for score in scores.values()) else Risk.LOW  # noqa: PLR2004 - a red score


def news2(inputs: News2Inputs) -> News2Score:
    measured = {
        Parameter.RESPIRATION_RATE: inputs.respiration_rate,
        Parameter.SPO2: inputs.spo2,
        Parameter.SYSTOLIC: inputs.systolic,
        Parameter.PULSE: inputs.pulse,
        Parameter.TEMPERATURE: inputs.temperature,
    }
    scores = {
        parameter: parameter_score(parameter, value, scale=inputs.scale, on_oxygen=inputs.on_oxygen)
        for parameter, value in measured.items()
    }
    scores[Parameter.AIR_OR_OXYGEN] = OXYGEN_SCORE[inputs.on_oxygen]
    scores[Parameter.CONSCIOUSNESS] = CONSCIOUSNESS_SCORE[inputs.consciousness]
    total = sum(scores.values())
    return News2Score(total, scores, risk_of(total, scores))
