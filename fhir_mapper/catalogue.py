"""The vital-signs catalogue: what each reading kind is in LOINC, IEEE 11073 MDC and UCUM.

Per-kind knowledge lives in this table, never in if-chains. Codes follow
``shared/spec/ble-gatt-health.md`` section 3 (HL7 PHD IG conventions, FHIR R4 vital-signs
profiles).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
VITAL_SIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/"


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str

    def as_fhir(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """One component of a compound observation (the systolic part of a blood pressure)."""

    name: str
    loinc: Coding | None
    mdc: Coding

    @property
    def codings(self) -> tuple[Coding, ...]:
        return (self.loinc, self.mdc) if self.loinc is not None else (self.mdc,)


@dataclass(frozen=True, slots=True)
class VitalKind:
    """One kind of reading: its codes, canonical unit, profile and shape."""

    name: str
    text: str
    loinc: Coding | None
    mdc: Coding
    unit: str
    """Canonical UCUM code stored and sent; device units are converted to it."""
    unit_display: str
    profile: str | None = None
    vital_sign: bool = True
    components: tuple[ComponentSpec, ...] = field(default=())
    required_components: frozenset[str] = field(default=frozenset())

    @property
    def codings(self) -> tuple[Coding, ...]:
        return (self.loinc, self.mdc) if self.loinc is not None else (self.mdc,)

    @property
    def compound(self) -> bool:
        return bool(self.components)

    def component(self, name: str) -> ComponentSpec | None:
        return next((spec for spec in self.components if spec.name == name), None)


def _loinc(code: str, display: str) -> Coding:
    return Coding(LOINC, code, display)


def _mdc(code: int, refid: str) -> Coding:
    return Coding(MDC, str(code), refid)


_KINDS: tuple[VitalKind, ...] = (
    VitalKind(
        "heart_rate",
        "Heart rate",
        _loinc("8867-4", "Heart rate"),
        _mdc(147842, "MDC_ECG_HEART_RATE"),
        "/min",
        "beats/minute",
        profile="heartrate",
    ),
    VitalKind(
        "pulse_rate",
        "Pulse rate",
        _loinc("8867-4", "Heart rate"),
        _mdc(149514, "MDC_PULS_RATE"),
        "/min",
        "beats/minute",
        profile="heartrate",
    ),
    VitalKind(
        "respiratory_rate",
        "Respiratory rate",
        _loinc("9279-1", "Respiratory rate"),
        _mdc(151562, "MDC_RESP_RATE"),
        "/min",
        "breaths/minute",
        profile="resprate",
    ),
    VitalKind(
        "spo2",
        "Oxygen saturation",
        _loinc("2708-6", "Oxygen saturation in Arterial blood"),
        _mdc(150456, "MDC_PULS_OXIM_SAT_O2"),
        "%",
        "%",
        profile="oxygensat",
    ),
    VitalKind(
        "body_temperature",
        "Body temperature",
        _loinc("8310-5", "Body temperature"),
        _mdc(150364, "MDC_TEMP_BODY"),
        "Cel",
        "°C",
        profile="bodytemp",
    ),
    VitalKind(
        "body_weight",
        "Body weight",
        _loinc("29463-7", "Body weight"),
        _mdc(188736, "MDC_MASS_BODY_ACTUAL"),
        "kg",
        "kg",
        profile="bodyweight",
    ),
    VitalKind(
        "body_height",
        "Body height",
        _loinc("8302-2", "Body height"),
        _mdc(188740, "MDC_LEN_BODY_ACTUAL"),
        "cm",
        "cm",
        profile="bodyheight",
    ),
    VitalKind(
        "bmi",
        "Body mass index",
        _loinc("39156-5", "Body mass index (BMI) [Ratio]"),
        _mdc(188752, "MDC_RATIO_MASS_BODY_LEN_SQ"),
        "kg/m2",
        "kg/m2",
        profile="bmi",
    ),
    VitalKind(
        "body_fat",
        "Body fat",
        _loinc("41982-0", "Percentage of body fat Measured"),
        _mdc(188748, "MDC_BODY_FAT"),
        "%",
        "%",
        vital_sign=False,
    ),
    VitalKind(
        "blood_pressure",
        "Blood pressure panel",
        _loinc("85354-9", "Blood pressure panel with all children optional"),
        _mdc(150020, "MDC_PRESS_BLD_NONINV"),
        "mm[Hg]",
        "mmHg",
        profile="bp",
        components=(
            ComponentSpec("systolic", _loinc("8480-6", "Systolic blood pressure"), _mdc(150021, "MDC_PRESS_BLD_NONINV_SYS")),
            ComponentSpec("diastolic", _loinc("8462-4", "Diastolic blood pressure"), _mdc(150022, "MDC_PRESS_BLD_NONINV_DIA")),
            ComponentSpec("mean", _loinc("8478-0", "Mean blood pressure"), _mdc(150023, "MDC_PRESS_BLD_NONINV_MEAN")),
        ),
        # The FHIR bp profile requires both systolic and diastolic components.
        required_components=frozenset({"systolic", "diastolic"}),
    ),
)

CATALOGUE: Mapping[str, VitalKind] = MappingProxyType({kind.name: kind for kind in _KINDS})


def kinds_for_token(system: str | None, code: str) -> frozenset[str]:
    """Kinds whose ``Observation.code`` carries ``code`` (in ``system`` when given).

    Serves the FHIR ``code`` token search: LOINC 8867-4 names both heart and pulse rate,
    MDC 147842 only the heart rate.
    """
    return frozenset(
        kind.name
        for kind in _KINDS
        for coding in kind.codings
        if coding.code == code and (system is None or coding.system == system)
    )
