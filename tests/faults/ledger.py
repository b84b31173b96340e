"""The exact ledger of reliability.md 0.1, taken from the devices' record, the database and the EHR.

    generated = rejected_at_source + accepted
    accepted  = stored + quarantined(reason) [+ lost, which must be 0 unless a scenario bounds it]
    stored    = pushed + dead + pending
    duplicates in the database = 0, in the EHR = 0, phantom rows = 0

Every figure is counted, none derived: "accepted" is what the broker (or the BLE link) took from
the devices, "stored" is which of those reading keys the database holds, "pushed" is outbox rows
done, and the EHR's Observations are counted on the receiver.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from tests.fhir_receiver import FhirReceiver


@dataclass
class SentLedger:
    """What the devices did: every reading key they generated and what became of each send."""

    generated: set[str] = field(default_factory=set)
    accepted: set[str] = field(default_factory=set)
    """Keys the broker acknowledged (or the BLE link delivered) at least once."""
    rejected: set[str] = field(default_factory=set)
    """Keys whose device saw every attempt fail and gave up (the device knows; nothing is silent)."""
    bad: Counter[str] = field(default_factory=Counter)
    """Deliberately bad inputs sent and accepted, by the quarantine reason they must get."""

    def __or__(self, other: SentLedger) -> SentLedger:
        """Both fleets' sends as one ledger."""
        return SentLedger(
            self.generated | other.generated, self.accepted | other.accepted, self.rejected | other.rejected,
            self.bad + other.bad,
        )  # fmt: skip


@dataclass(frozen=True)
class Ledger:
    scenario: str
    generated: int
    rejected_at_source: int
    accepted: int
    stored: int
    quarantined: dict[str, int]
    lost: int
    phantom: int
    duplicates_db: int
    without_outbox_row: int
    pushed: int | None
    dead: int | None
    pending: int | None
    ehr_observations: int | None
    duplicates_ehr: int | None
    ehr_phantom: int | None

    def lines(self) -> list[str]:
        quarantined = sum(self.quarantined.values())
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.quarantined.items())) or "none"
        out = [
            f"generated {self.generated} = rejected_at_source {self.rejected_at_source} + accepted {self.accepted}",
            f"accepted {self.accepted} = stored {self.stored} + quarantined {quarantined} ({reasons}) + lost {self.lost}",
        ]
        if self.pushed is None:
            out.append(f"stored {self.stored}: no EHR destination in this scenario")
        else:
            out.append(f"stored {self.stored} = pushed {self.pushed} + dead {self.dead} + pending {self.pending}")
        ehr = "n/a" if self.duplicates_ehr is None else f"{self.duplicates_ehr} (EHR holds {self.ehr_observations})"
        out.append(
            f"duplicates in DB {self.duplicates_db}, in EHR {ehr}; phantom rows {self.phantom}; "
            f"readings without an outbox row {self.without_outbox_row}"
        )
        return [f"[ledger {self.scenario}] {line}" for line in out]

    def check(self, *, allowed_loss: int = 0) -> None:
        """Print the ledger, then assert every identity exactly (``allowed_loss``: a bound a scenario states)."""
        print("\n" + "\n".join(self.lines()))
        assert self.generated == self.rejected_at_source + self.accepted
        assert self.accepted == self.stored + sum(self.quarantined.values()) + self.lost
        assert 0 <= self.lost <= allowed_loss, f"{self.lost} accepted readings lost (allowed {allowed_loss})"
        assert self.phantom == 0
        assert self.duplicates_db == 0
        if self.pushed is not None:
            assert self.without_outbox_row == 0
            assert self.stored == self.pushed + (self.dead or 0) + (self.pending or 0)
            assert self.pending == 0
            assert self.duplicates_ehr == 0
            assert self.ehr_phantom == 0
            assert self.ehr_observations == self.pushed


async def take_ledger(
    scenario: str, url: str, sent: SentLedger, receiver: FhirReceiver | None = None, destination: str = "ehr"
) -> Ledger:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT reading_key::text AS key FROM observations")
        quarantine = await connection.fetch("SELECT reason, count(*) AS n FROM quarantine GROUP BY reason")
        outbox = await connection.fetch(
            "SELECT status, count(*) AS n FROM outbox WHERE destination = $1 GROUP BY status", destination
        )
        outbox_keys = {
            r["key"]
            for r in await connection.fetch("SELECT reading_key::text AS key FROM outbox WHERE destination = $1", destination)
        }
    finally:
        await connection.close()
    keys = [row["key"] for row in rows]
    stored_keys = set(keys)
    quarantined = {row["reason"]: row["n"] for row in quarantine}
    assert Counter(quarantined) == sent.bad, f"quarantine {quarantined} != the bad inputs sent {dict(sent.bad)}"
    # A send the device gave up on may still have reached the broker: then it crossed boundary B.
    accepted_keys = sent.accepted | (sent.rejected & stored_keys)
    status = {row["status"]: row["n"] for row in outbox}
    ehr_identifiers: list[str] = []
    if receiver is not None:
        for resource in receiver.observations.values():
            ehr_identifiers += [i["value"].removeprefix("urn:uuid:") for i in resource.get("identifier", [])]
    return Ledger(
        scenario=scenario,
        generated=len(sent.generated) + sent.bad.total(),
        rejected_at_source=len(sent.rejected - stored_keys),
        accepted=len(accepted_keys) + sent.bad.total(),
        stored=len(stored_keys & accepted_keys),
        quarantined=quarantined,
        lost=len(accepted_keys - stored_keys),
        phantom=len(stored_keys - accepted_keys),
        duplicates_db=len(keys) - len(stored_keys),
        without_outbox_row=len(stored_keys - outbox_keys) if receiver is not None else 0,
        pushed=status.get("done", 0) if receiver is not None else None,
        dead=status.get("dead", 0) if receiver is not None else None,
        pending=status.get("pending", 0) if receiver is not None else None,
        ehr_observations=len(receiver.observations) if receiver is not None else None,
        duplicates_ehr=len(ehr_identifiers) - len(set(ehr_identifiers)) if receiver is not None else None,
        ehr_phantom=len(set(ehr_identifiers) - stored_keys) if receiver is not None else None,
    )
