"""Which Patient of the EHR a reading belongs to, per destination.

The gateway's patient id means nothing to an EHR. The patient is named by an identifier the EHR
knows (its MRN), taken from the registry, and turned into a reference the way the destination
is configured (:class:`edge_config.destinations.PatientMatchSettings`). A patient that cannot be
named is a terminal problem for the reading (dead letter with the reason, replayable once the
registry or the EHR is fixed); a search that fails is transient (the rows are retried).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from edge_config.destinations import PatientMatchSettings
from gateway.push.client import FhirDestinationClient
from gateway.push.entries import conditional_patient_reference
from gateway.storage import ObservationStore

SEARCHES_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class PatientReference:
    """``reference`` to use as the subject (None: keep the gateway's own), or the ``problem`` that prevents it."""

    reference: str | None = None
    problem: str | None = None


KEEP_SUBJECT = PatientReference()


class PatientDirectory:
    """Resolves and caches the EHR's Patient references of one destination."""

    def __init__(
        self,
        match: PatientMatchSettings | None,
        store: ObservationStore,
        client: FhirDestinationClient,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._match = match
        self._store = store
        self._client = client
        self._monotonic = monotonic
        self._found: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # Senders that miss the cache together wait for one search instead of each asking the EHR.
        self._searching = asyncio.Lock()

    async def references(self, patient_ids: Collection[str]) -> dict[str, PatientReference]:
        """A reference or a problem for every patient; raises PushError when the EHR could not be asked."""
        match = self._match
        if match is None:
            return dict.fromkeys(patient_ids, KEEP_SUBJECT)
        resolved: dict[str, PatientReference] = {}
        wanted = [patient for patient in patient_ids if not self._cached(patient, resolved)]
        if not wanted:
            return resolved
        identifiers = await self._store.identifiers_of(wanted)
        for patient in wanted:
            value = next((v for system, v in identifiers.get(patient, []) if system == match.identifier_system), None)
            if value is None:
                resolved[patient] = PatientReference(problem=f"patient has no identifier in {match.identifier_system}")
            elif match.match == "stored_id":
                resolved[patient] = PatientReference(f"Patient/{value}")
            elif match.match == "conditional_reference":
                resolved[patient] = PatientReference(conditional_patient_reference(match.identifier_system, value))
            else:
                async with self._searching:
                    if not self._cached(patient, resolved):
                        resolved[patient] = await self._search(patient, match, value)
        return resolved

    def _cached(self, patient: str, resolved: dict[str, PatientReference]) -> bool:
        found = self._found.get(patient)
        if found is None or found[1] <= self._monotonic():
            return False
        resolved[patient] = PatientReference(found[0])
        return True

    async def _search(self, patient: str, match: PatientMatchSettings, value: str) -> PatientReference:
        ids = await self._client.find_patients(match.identifier_system, value)
        if len(ids) != 1:
            # Only a single match is safe: a reading filed under the wrong patient is worse than a late one.
            what = "no Patient" if not ids else f"{len(ids)} Patients"
            return PatientReference(problem=f"{what} in the EHR with this patient's identifier in {match.identifier_system}")
        reference = f"Patient/{ids[0]}"
        if match.cache_seconds > 0:
            self._found[patient] = (reference, self._monotonic() + match.cache_seconds)
            self._found.move_to_end(patient)
            while len(self._found) > SEARCHES_KEPT:
                self._found.popitem(last=False)
        return PatientReference(reference)
