"""The vital-signs catalogue: what each reading kind is in LOINC, IEEE 11073 MDC and UCUM.

Per-kind knowledge lives in this table, never in if-chains. Codes follow
``shared/spec/ble-gatt-health.md`` section 3 (HL7 PHD IG conventions, FHIR R4 vital-signs
profiles). Where no public source confirms a standard code (several body composition fields),
the kind carries only the PulseBridge code system's code rather than a guessed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
PULSEBRIDGE_KINDS = "https://pulsebridge.dev/fhir/CodeSystem/reading-kind"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CATEGORY = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
PROFILE_BASE = "http://hl7.org/fhir/StructureDefinition/"
VITAL_SIGNS_PROFILE = PROFILE_BASE + "vitalsigns"


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str

    def as_fhir(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True, slots=True)
class PlausibleRange:
    """Inclusive bounds in one canonical unit; outside them a reading is ``implausible_value``."""

    unit: str
    low: Decimal
    high: Decimal

    def __post_init__(self) -> None:
        if self.low > self.high:
            msg = f"plausible range {self.low}..{self.high} {self.unit} is empty"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class UnitChoice:
    """A canonical UCUM unit a kind is stored in as sent (other units are converted to the first)."""

    ucum: str
    display: str
    loinc: Coding | None = None
    """For kinds whose LOINC code names the unit's dimension (glucose: mass vs moles)."""


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """One component of a compound observation (the systolic part of a blood pressure)."""

    name: str
    codings: tuple[Coding, ...]
    plausible: PlausibleRange | None = None


@dataclass(frozen=True, slots=True)
class Site:
    """A measurement site: its own MDC code and, where one exists, a site-specific LOINC code."""

    name: str
    mdc: Coding
    loinc: Coding | None = None


@dataclass(frozen=True, slots=True)
class VitalKind:
    """One kind of reading: codes, units, profile, shape and plausible range."""

    name: str
    text: str
    codings: tuple[Coding, ...]
    """``Observation.code.coding`` in order: LOINC (with accepted alternates), then MDC."""
    units: tuple[UnitChoice, ...]
    profile: str | None = None
    vital_sign: bool = False
    plausible: tuple[PlausibleRange, ...] = ()
    components: tuple[ComponentSpec, ...] = ()
    required_components: frozenset[str] = frozenset()
    sites: Mapping[str, Site] = field(default_factory=lambda: MappingProxyType({}))
    about_device: bool = False
    """A reading about the device itself (battery), not a physiological one."""

    def __post_init__(self) -> None:
        if not self.codings or not self.units:
            msg = f"kind {self.name!r} needs at least one coding and one unit"
            raise ValueError(msg)

    @property
    def canonical_unit(self) -> UnitChoice:
        return self.units[0]

    @property
    def compound(self) -> bool:
        return bool(self.components)

    def unit_choice(self, ucum: str) -> UnitChoice | None:
        return next((choice for choice in self.units if choice.ucum == ucum), None)

    def component(self, name: str) -> ComponentSpec | None:
        return next((spec for spec in self.components if spec.name == name), None)

    def plausible_for(self, ucum: str) -> PlausibleRange | None:
        return next((bounds for bounds in self.plausible if bounds.unit == ucum), None)

    @property
    def loinc(self) -> Coding | None:
        return next((coding for coding in self.codings if coding.system == LOINC), None)

    @property
    def primary_code(self) -> str:
        """The code stored in the ``code`` column: LOINC, else MDC, else ours."""
        return self.codings[0].code


def _loinc(code: str, display: str) -> Coding:
    return Coding(LOINC, code, display)


def _mdc(code: int, refid: str) -> Coding:
    return Coding(MDC, str(code), refid)


def _ours(name: str, display: str) -> Coding:
    return Coding(PULSEBRIDGE_KINDS, name, display)


def _range(unit: str, low: str, high: str) -> PlausibleRange:
    return PlausibleRange(unit, Decimal(low), Decimal(high))


def _sites(*sites: Site) -> Mapping[str, Site]:
    return MappingProxyType({site.name: site for site in sites})


PER_MINUTE_BEATS = (UnitChoice("/min", "beats/minute"),)
PERCENT = (UnitChoice("%", "%"),)
KILOGRAMS = (UnitChoice("kg", "kg"),)
MM_HG = "mm[Hg]"


def _glucose(name: str, text: str, mass: Coding, moles: Coding, mdc: Coding) -> VitalKind:
    # LOINC names the specimen and the dimension: the device's unit is kept (no molar-mass
    # conversion) and picks the code, as the HL7 PHD IG and gematik HDDT value sets do.
    return VitalKind(
        name,
        text,
        (mass, mdc),
        (UnitChoice("mg/dL", "mg/dL", mass), UnitChoice("mmol/L", "mmol/L", moles)),
        plausible=(_range("mg/dL", "10", "1000"), _range("mmol/L", "0.5", "55")),
    )


_KINDS: tuple[VitalKind, ...] = (
    VitalKind(
        "heart_rate", "Heart rate", (_loinc("8867-4", "Heart rate"), _mdc(147842, "MDC_ECG_HEART_RATE")), PER_MINUTE_BEATS,
        profile="heartrate", vital_sign=True, plausible=(_range("/min", "20", "300"),),
    ),
    VitalKind(
        "pulse_rate", "Pulse rate", (_loinc("8867-4", "Heart rate"), _mdc(149514, "MDC_PULS_RATE")), PER_MINUTE_BEATS,
        profile="heartrate", vital_sign=True, plausible=(_range("/min", "20", "300"),),
    ),
    VitalKind(
        "rr_interval", "R-R interval", (_mdc(147240, "MDC_ECG_TIME_PD_RR_GL"),), (UnitChoice("ms", "ms"),),
        plausible=(_range("ms", "150", "3000"),),
    ),
    VitalKind(
        "heart_rate_variability", "Heart rate variability (SDNN)",
        (_loinc("80404-7", "R-R interval.standard deviation (Heart rate variability)"),), (UnitChoice("ms", "ms"),),
        plausible=(_range("ms", "0", "1000"),),
    ),
    VitalKind(
        "respiratory_rate", "Respiratory rate", (_loinc("9279-1", "Respiratory rate"), _mdc(151562, "MDC_RESP_RATE")),
        (UnitChoice("/min", "breaths/minute"),), profile="resprate", vital_sign=True, plausible=(_range("/min", "2", "80"),),
    ),
    VitalKind(
        "spo2", "Oxygen saturation",
        (
            _loinc("2708-6", "Oxygen saturation in Arterial blood"),
            _loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
            _mdc(150456, "MDC_PULS_OXIM_SAT_O2"),
        ),
        PERCENT, profile="oxygensat", vital_sign=True, plausible=(_range("%", "50", "100"),),
    ),
    VitalKind(
        "blood_pressure", "Blood pressure panel",
        (_loinc("85354-9", "Blood pressure panel with all children optional"), _mdc(150020, "MDC_PRESS_BLD_NONINV")),
        (UnitChoice(MM_HG, "mmHg"),), profile="bp", vital_sign=True,
        components=(
            ComponentSpec("systolic", (_loinc("8480-6", "Systolic blood pressure"), _mdc(150021, "MDC_PRESS_BLD_NONINV_SYS")),
                          _range(MM_HG, "40", "300")),
            ComponentSpec("diastolic", (_loinc("8462-4", "Diastolic blood pressure"), _mdc(150022, "MDC_PRESS_BLD_NONINV_DIA")),
                          _range(MM_HG, "20", "200")),
            ComponentSpec("mean", (_loinc("8478-0", "Mean blood pressure"), _mdc(150023, "MDC_PRESS_BLD_NONINV_MEAN")),
                          _range(MM_HG, "30", "250")),
        ),
        # The FHIR bp profile requires both systolic and diastolic components.
        required_components=frozenset({"systolic", "diastolic"}),
    ),
    VitalKind(
        "body_temperature", "Body temperature", (_loinc("8310-5", "Body temperature"), _mdc(150364, "MDC_TEMP_BODY")),
        (UnitChoice("Cel", "°C"),), profile="bodytemp", vital_sign=True, plausible=(_range("Cel", "25", "45"),),
        # FHIR's bodytemp profile requires 8310-5; the site goes in as extra codings.
        sites=_sites(
            Site("axillary", _mdc(188452, "MDC_TEMP_AXILLA"), _loinc("8328-7", "Axillary temperature")),
            Site("ear", _mdc(188428, "MDC_TEMP_EAR"), _loinc("76011-6", "Ear temperature")),
            Site("finger", _mdc(188432, "MDC_TEMP_FINGER")),
            Site("gi_tract", _mdc(188456, "MDC_TEMP_GIT")),
            Site("oral", _mdc(188424, "MDC_TEMP_ORAL"), _loinc("8331-1", "Oral temperature")),
            Site("rectal", _mdc(188420, "MDC_TEMP_RECT"), _loinc("8332-9", "Rectal temperature")),
            Site("toe", _mdc(188448, "MDC_TEMP_TOE")),
            Site("tympanic", _mdc(150392, "MDC_TEMP_TYMP")),
        ),
    ),
    VitalKind(
        "body_weight", "Body weight", (_loinc("29463-7", "Body weight"), _mdc(188736, "MDC_MASS_BODY_ACTUAL")), KILOGRAMS,
        profile="bodyweight", vital_sign=True, plausible=(_range("kg", "0.5", "500"),),
    ),
    VitalKind(
        "body_height", "Body height", (_loinc("8302-2", "Body height"), _mdc(188740, "MDC_LEN_BODY_ACTUAL")),
        (UnitChoice("cm", "cm"),), profile="bodyheight", vital_sign=True, plausible=(_range("cm", "30", "260"),),
    ),
    VitalKind(
        "bmi", "Body mass index",
        (_loinc("39156-5", "Body mass index (BMI) [Ratio]"), _mdc(188752, "MDC_RATIO_MASS_BODY_LEN_SQ")),
        (UnitChoice("kg/m2", "kg/m2"),), profile="bmi", vital_sign=True, plausible=(_range("kg/m2", "5", "100"),),
    ),
    VitalKind(
        "body_fat", "Body fat", (_loinc("41982-0", "Percentage of body fat Measured"), _mdc(188748, "MDC_BODY_FAT")), PERCENT,
        plausible=(_range("%", "1", "75"),),
    ),
    VitalKind(
        "fat_free_mass", "Fat-free mass", (_mdc(188756, "MDC_MASS_BODY_FAT_FREE"),), KILOGRAMS,
        plausible=(_range("kg", "1", "300"),),
    ),
    VitalKind(
        "soft_lean_mass", "Soft lean mass", (_mdc(188760, "MDC_MASS_BODY_SOFT_LEAN"),), KILOGRAMS,
        plausible=(_range("kg", "1", "300"),),
    ),
    VitalKind(
        "body_water_mass", "Body water mass", (_mdc(188764, "MDC_BODY_WATER"),), KILOGRAMS,
        plausible=(_range("kg", "1", "300"),),
    ),
    VitalKind(
        "muscle_percentage", "Muscle percentage", (_ours("muscle_percentage", "Muscle percentage"),), PERCENT,
        plausible=(_range("%", "1", "90"),),
    ),
    VitalKind(
        "muscle_mass", "Muscle mass", (_ours("muscle_mass", "Muscle mass"),), KILOGRAMS, plausible=(_range("kg", "1", "300"),),
    ),
    VitalKind(
        "basal_metabolism", "Basal metabolism", (_ours("basal_metabolism", "Basal metabolism"),), (UnitChoice("kJ", "kJ"),),
        plausible=(_range("kJ", "1000", "40000"),),
    ),
    VitalKind(
        "body_impedance", "Body impedance", (_ours("body_impedance", "Body impedance"),), (UnitChoice("Ohm", "Ohm"),),
        plausible=(_range("Ohm", "50", "2000"),),
    ),
    _glucose(
        "blood_glucose", "Blood glucose (capillary whole blood)",
        _loinc("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer"),
        _loinc("14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer"),
        _mdc(160184, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
    ),
    _glucose(
        "blood_glucose_plasma", "Blood glucose (capillary plasma)",
        _loinc("2345-7", "Glucose [Mass/volume] in Serum or Plasma"),
        _loinc("14749-6", "Glucose [Moles/volume] in Serum or Plasma"),
        _mdc(160188, "MDC_CONC_GLU_CAPILLARY_PLASMA"),
    ),
    _glucose(
        "blood_glucose_whole_blood", "Blood glucose (whole blood, sample site undetermined)",
        _loinc("2339-0", "Glucose [Mass/volume] in Blood"),
        _loinc("15074-8", "Glucose [Moles/volume] in Blood"),
        _mdc(160364, "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD"),
    ),
    _glucose(
        "cgm_glucose", "Glucose (interstitial fluid, CGM)",
        _loinc("99504-3", "Glucose [Mass/volume] in Interstitial fluid"),
        _loinc("105272-9", "Glucose [Moles/volume] in Interstitial fluid"),
        _mdc(160212, "MDC_CONC_GLU_ISF"),
    ),
    VitalKind(
        "steps", "Steps", (_loinc("55423-8", "Number of steps in unspecified time Pedometer"),),
        (UnitChoice("{steps}", "steps"),),
        plausible=(_range("{steps}", "0", "200000"),),
    ),
    VitalKind(
        "energy_expended", "Energy expended", (_loinc("41981-2", "Calories burned"),), (UnitChoice("kcal", "kcal"),),
        plausible=(_range("kcal", "0", "20000"),),
    ),
    VitalKind(
        "battery_level", "Battery level", (_mdc(67996, "MDC_ATTR_VAL_BATT_CHARGE"),), PERCENT,
        plausible=(_range("%", "0", "100"),), about_device=True,
    ),
)  # fmt: skip

CATALOGUE: Mapping[str, VitalKind] = MappingProxyType({kind.name: kind for kind in _KINDS})


def kinds_for_token(system: str | None, code: str) -> frozenset[str]:
    """Kinds whose ``Observation.code`` carries ``code`` (in ``system`` when given).

    Serves the FHIR ``code`` token search (``system|`` alone: every kind with a code in that system):
    LOINC 8867-4 names both heart and pulse rate,
    MDC 147842 only the heart rate; a glucose kind answers to both its mass and molar LOINC.
    """
    return frozenset(
        kind.name
        for kind in _KINDS
        for coding in (*kind.codings, *(choice.loinc for choice in kind.units if choice.loinc is not None))
        if _token_matches(coding, system, code)
    )


VITAL_SIGNS_CATEGORY = Coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
PHD_GENERATED_CATEGORY = Coding(PHD_CATEGORY, "phd", "PHD generated")


def kind_categories(kind: VitalKind) -> tuple[Coding, ...]:
    """``Observation.category`` codings: vital-signs for the vital-signs profiles, and the PHD IG's ``phd`` for every kind."""
    return (VITAL_SIGNS_CATEGORY, PHD_GENERATED_CATEGORY) if kind.vital_sign else (PHD_GENERATED_CATEGORY,)


def kinds_for_category(system: str | None, code: str) -> frozenset[str]:
    """Kinds whose Observations carry the category ``code`` (in ``system`` when given): the FHIR ``category`` search."""
    return frozenset(kind.name for kind in _KINDS for coding in kind_categories(kind) if _token_matches(coding, system, code))


def _token_matches(coding: Coding, system: str | None, code: str) -> bool:
    """FHIR token match: ``code``, ``system|code``, or ``system|`` for any code in the system."""
    if system is None:
        return coding.code == code
    return coding.system == system and (coding.code == code or not code)
