"""Storage: one port, a TimescaleDB adapter and an embedded SQLite adapter."""

from gateway.storage.port import (
    AssignmentRecord,
    DeviceRecord,
    DeviceRegistration,
    ObservationQuery,
    ObservationStore,
    PatientRecord,
    QuarantineEntry,
    QuarantineRow,
    StoredObservation,
    TimeCondition,
    WriteResult,
    open_store,
)

__all__ = [
    "AssignmentRecord",
    "DeviceRecord",
    "DeviceRegistration",
    "ObservationQuery",
    "ObservationStore",
    "PatientRecord",
    "QuarantineEntry",
    "QuarantineRow",
    "StoredObservation",
    "TimeCondition",
    "WriteResult",
    "open_store",
]
