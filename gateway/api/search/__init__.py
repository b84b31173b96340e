"""FHIR search parameters -> store queries (pure, no I/O): Observation, ``$lastn``, Patient, Device."""

from gateway.api.search.common import SearchError, UnsupportedModifierError, UnsupportedSearchError
from gateway.api.search.dates import InstantFilter, instant_filter
from gateway.api.search.observation import (
    LastNSearch,
    ObservationSearch,
    decode_observation_cursor,
    encode_observation_cursor,
    parse_last_n,
    parse_observation_search,
)
from gateway.api.search.registry import DeviceSearch, PatientSearch, parse_device_search, parse_patient_search

__all__ = [
    "DeviceSearch",
    "InstantFilter",
    "LastNSearch",
    "ObservationSearch",
    "PatientSearch",
    "SearchError",
    "UnsupportedModifierError",
    "UnsupportedSearchError",
    "decode_observation_cursor",
    "encode_observation_cursor",
    "instant_filter",
    "parse_device_search",
    "parse_last_n",
    "parse_observation_search",
    "parse_patient_search",
]
