"""Patient and Device search parameters -> registry queries (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from edge_config import ApiSettings
from fhir_mapper.devices import DEVICE_ID_SYSTEM
from fhir_mapper.patients import MRN_SYSTEM
from gateway.api.search.common import (
    COMMON_PARAMETERS,
    FHIR_ID,
    Parameter,
    Parsed,
    SearchError,
    SearchState,
    UnsupportedSearchError,
    apply_parameters,
    decode_cursor,
    intersect,
    single_reference,
    tokens,
    uuids,
)
from gateway.storage import DeviceQuery, PatientQuery


@dataclass(slots=True)
class RegistryState(SearchState):
    ids: frozenset[str] | None = None
    identifiers: frozenset[str] | None = None
    name: str | None = None
    patient: str | None = None


PatientSearch = Parsed[PatientQuery]
DeviceSearch = Parsed[DeviceQuery]


def _ids(state: RegistryState, value: str) -> None:
    ids = frozenset(value.split(","))
    if not all(FHIR_ID.fullmatch(i) for i in ids):
        raise SearchError(f"_id: {value!r} is not a comma-separated list of ids")
    state.ids = intersect(state.ids, ids)


def _identifier_in(system: str, state: RegistryState, value: str) -> None:
    state.identifiers = intersect(state.identifiers, frozenset(t.code for t in tokens(value) if t.in_system(system)))


def _mrn(state: RegistryState, value: str) -> None:
    _identifier_in(MRN_SYSTEM, state, value)


def _device_identifier(state: RegistryState, value: str) -> None:
    _identifier_in(DEVICE_ID_SYSTEM, state, value)


def _name(state: RegistryState, value: str) -> None:
    if not value.strip():
        raise SearchError("name: empty")
    if state.name is not None:
        raise UnsupportedSearchError("name: one name per search")
    state.name = value.strip()


def _patient(state: RegistryState, value: str) -> None:
    state.patient = single_reference(state.patient, "patient", value, "Patient")


def _registry_count(state: RegistryState, value: str) -> None:
    if value == "0":
        raise UnsupportedSearchError("_count=0 (the total only) is supported on Observation only")
    COMMON_PARAMETERS["_count"].apply(state, value)


PATIENT_PARAMETERS: Mapping[str, Parameter[RegistryState]] = MappingProxyType({
    **COMMON_PARAMETERS,
    "_count": Parameter(_registry_count),
    "_id": Parameter(_ids),
    "identifier": Parameter(_mrn),
    "name": Parameter(_name),
})  # fmt: skip
DEVICE_PARAMETERS: Mapping[str, Parameter[RegistryState]] = MappingProxyType({
    **COMMON_PARAMETERS,
    "_count": Parameter(_registry_count),
    "_id": Parameter(_ids),
    "identifier": Parameter(_device_identifier),
    "patient": Parameter(_patient, frozenset({"Patient"})),
})  # fmt: skip


def parse_patient_search(params: Sequence[tuple[str, str]], settings: ApiSettings, *, strict: bool) -> PatientSearch:
    state = RegistryState(settings)
    applied = apply_parameters(params, PATIENT_PARAMETERS, state, strict=strict)
    after = None if state.cursor is None else decode_cursor(state.cursor)
    return Parsed(PatientQuery(state.ids, state.identifiers, state.name, state.count, after), applied)


def parse_device_search(params: Sequence[tuple[str, str]], settings: ApiSettings, *, strict: bool) -> DeviceSearch:
    state = RegistryState(settings)
    applied = apply_parameters(params, DEVICE_PARAMETERS, state, strict=strict)
    after = None if state.cursor is None else decode_cursor(state.cursor)
    resource_ids = None if state.ids is None else uuids(state.ids)
    return Parsed(DeviceQuery(resource_ids, state.identifiers, state.patient, state.count, after), applied)
