"""NEWS2 against the RCP 2017 chart: every band boundary from both sides, each parameter, and risk."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.alerts.news2 import News2Inputs, Parameter, Risk, news2, parameter_score

# Transcribed from the RCP NEWS2 chart 1 (2017), one row per band edge: the last value of a
# band and the first of the next, with their printed scores.
RESPIRATION = [("8", 3), ("9", 1), ("11", 1), ("12", 0), ("20", 0), ("21", 2), ("24", 2), ("25", 3), ("4", 3), ("40", 3)]
SPO2_SCALE_1 = [("91", 3), ("92", 2), ("93", 2), ("94", 1), ("95", 1), ("96", 0), ("100", 0), ("70", 3)]
SYSTOLIC = [("90", 3), ("91", 2), ("100", 2), ("101", 1), ("110", 1), ("111", 0), ("219", 0), ("220", 3), ("60", 3)]
PULSE = [("40", 3), ("41", 1), ("50", 1), ("51", 0), ("90", 0), ("91", 1), ("110", 1), ("111", 2), ("130", 2), ("131", 3)]
TEMPERATURE = [("35.0", 3), ("35.1", 1), ("36.0", 1), ("36.1", 0), ("38.0", 0), ("38.1", 1), ("39.0", 1), ("39.1", 2),
               ("34.0", 3), ("41.0", 2)]  # fmt: skip
# Scale 2: 88-92 % scores 0 whatever the breathing; 93 % and above scores 0 on air and 1/2/3 on oxygen.
SPO2_SCALE_2 = [("83", False, 3), ("84", False, 2), ("85", False, 2), ("86", False, 1), ("87", False, 1), ("88", False, 0),
                ("92", False, 0), ("93", False, 0), ("97", False, 0), ("100", False, 0),
                ("83", True, 3), ("84", True, 2), ("86", True, 1), ("87", True, 1), ("88", True, 0), ("92", True, 0),
                ("93", True, 1), ("94", True, 1), ("95", True, 2), ("96", True, 2), ("97", True, 3), ("100", True, 3)]  # fmt: skip


@pytest.mark.parametrize(
    ("parameter", "value", "score"),
    [(Parameter.RESPIRATION_RATE, v, s) for v, s in RESPIRATION]
    + [(Parameter.SPO2, v, s) for v, s in SPO2_SCALE_1]
    + [(Parameter.SYSTOLIC, v, s) for v, s in SYSTOLIC]
    + [(Parameter.PULSE, v, s) for v, s in PULSE]
    + [(Parameter.TEMPERATURE, v, s) for v, s in TEMPERATURE],
)
def test_each_band_edge_of_the_chart(parameter: Parameter, value: str, score: int) -> None:
    assert parameter_score(parameter, Decimal(value)) == score


@pytest.mark.parametrize(("value", "oxygen", "score"), SPO2_SCALE_2)
def test_spo2_scale_2_on_air_and_on_oxygen(value: str, oxygen: bool, score: int) -> None:  # noqa: FBT001 - parametrized
    assert parameter_score(Parameter.SPO2, Decimal(value), scale=2, on_oxygen=oxygen) == score


@pytest.mark.parametrize(("value", "score"), [("35.04", 3), ("35.05", 1), ("20.4", 0), ("20.5", 2), ("90.5", 2)])
def test_values_are_rounded_half_up_to_the_charts_precision_first(value: str, score: int) -> None:
    parameter = Parameter.TEMPERATURE if value.startswith("35") else Parameter.RESPIRATION_RATE
    if value == "90.5":
        parameter = Parameter.SYSTOLIC
    assert parameter_score(parameter, Decimal(value)) == score


NORMAL = News2Inputs(Decimal(16), Decimal(97), Decimal(120), Decimal(70), Decimal("37.0"))


def _with(**changes: object) -> News2Inputs:
    fields = {name: getattr(NORMAL, name) for name in News2Inputs.__slots__}
    fields.update(changes)
    return News2Inputs(**fields)


@pytest.mark.parametrize(
    ("inputs", "total", "risk"),
    [
        (NORMAL, 0, Risk.LOW),
        (_with(consciousness="cvpo"), 3, Risk.LOW_MEDIUM),  # consciousness: CVPO scores 3
        (_with(on_oxygen=True), 2, Risk.LOW),  # air or oxygen: oxygen scores 2
        (_with(pulse=Decimal(95), temperature=Decimal("38.5"), respiration_rate=Decimal(22)), 4, Risk.LOW),
        (_with(respiration_rate=Decimal(25)), 3, Risk.LOW_MEDIUM),  # a single red parameter
        (_with(respiration_rate=Decimal(22), pulse=Decimal(115), temperature=Decimal("38.5")), 5, Risk.MEDIUM),
        (_with(respiration_rate=Decimal(25), spo2=Decimal(93), pulse=Decimal(95)), 6, Risk.MEDIUM),
        (_with(respiration_rate=Decimal(25), spo2=Decimal(93), pulse=Decimal(115)), 7, Risk.HIGH),
        (
            _with(
                respiration_rate=Decimal(25),
                spo2=Decimal(85),
                systolic=Decimal(85),
                pulse=Decimal(135),
                temperature=Decimal("34.5"),
                on_oxygen=True,
                consciousness="cvpo",
            ),
            20,
            Risk.HIGH,
        ),
    ],
)
def test_aggregate_score_and_clinical_risk(inputs: News2Inputs, total: int, risk: Risk) -> None:
    score = news2(inputs)
    assert (score.total, score.risk) == (total, risk)
    assert sum(score.scores.values()) == total
    assert set(score.scores) == set(Parameter)


def test_defaults_are_alert_and_air_on_scale_1() -> None:
    score = news2(NORMAL)
    assert (score.scores[Parameter.CONSCIOUSNESS], score.scores[Parameter.AIR_OR_OXYGEN]) == (0, 0)
    assert news2(_with(spo2=Decimal(90))).scores[Parameter.SPO2] == 3
    assert news2(_with(spo2=Decimal(90), scale=2)).scores[Parameter.SPO2] == 0
