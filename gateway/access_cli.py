"""The access commands: ``audit verify``, ``account add``, ``set-password``, ``care-team …``, ``delegate``, ``consent …``."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from edge_config import DestinationSettings, GatewaySettings, load_settings
from gateway.auth.audit import GENESIS_HASH, AuditRecord, verify_chain
from gateway.auth.passwords import PasswordError, hash_password
from gateway.cli_support import UsageError, config_argument, with_store
from gateway.storage import ObservationStore
from gateway.storage.consent import ConsentRecord, ConsentStatus, allows
from gateway.storage.port import ACCOUNT_ROLES

ACCESS_COMMANDS = frozenset({"audit", "account", "care-team", "delegate", "consent"})
AUDIT_PAGE = 1000
_ID = re.compile(r"[A-Za-z0-9\-._@]{1,128}")


def add_access_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="the audit trail").add_subparsers(dest="action", required=True)
    config_argument(audit.add_parser("verify", help="check the hash chain of every audit event; exit 1 if it is broken"))

    account = commands.add_parser("account", help="who signs in").add_subparsers(dest="action", required=True)
    add_account = account.add_parser("add", help="register an account")
    add_account.add_argument("account_id")
    add_account.add_argument("--role", required=True, choices=sorted(ACCOUNT_ROLES))
    add_account.add_argument("--patient", help="the patient's own id (patient accounts only)")
    add_account.add_argument("--name", help="display name")
    config_argument(add_account)
    password = account.add_parser("set-password", help="set the password the account signs in to the dashboard with")
    password.add_argument("account_id")
    password.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (scripts) instead of asking"
    )
    config_argument(password)

    team = commands.add_parser("care-team", help="care teams and their patients").add_subparsers(dest="action", required=True)
    add_team = team.add_parser("add", help="register a care team")
    add_team.add_argument("team_id")
    add_team.add_argument("name")
    config_argument(add_team)
    member = team.add_parser("member", help="add an account to a care team")
    member.add_argument("team_id")
    member.add_argument("account_id")
    config_argument(member)
    patient = team.add_parser("patient", help="put a patient in a care team's care")
    patient.add_argument("team_id")
    patient.add_argument("patient_id")
    config_argument(patient)

    delegate = commands.add_parser("delegate", help="make an account a caregiver of a patient")
    delegate.add_argument("patient_id")
    delegate.add_argument("account_id")
    config_argument(delegate)

    consent = commands.add_parser("consent", help="a patient's consent to push their readings to each EHR").add_subparsers(
        dest="action", required=True
    )
    list_consent = consent.add_parser("list", help="each configured destination: its rule, the decision, whether it is pushed to")
    list_consent.add_argument("patient_id")
    list_consent.add_argument("--history", action="store_true", help="also every change, oldest first")
    config_argument(list_consent)
    for action, text in (("grant", "push the patient's readings to a destination"),
                         ("revoke", "stop pushing them, including readings already queued")):  # fmt: skip
        decide = consent.add_parser(action, help=text)
        decide.add_argument("patient_id")
        decide.add_argument("destination")
        decide.add_argument("--by", help="who decided, as recorded (default: cli/<your user name>)")
        config_argument(decide)


def run_access(args: argparse.Namespace) -> None:
    command = _COMMANDS[args.command, getattr(args, "action", None)]
    command(load_settings(args.config), args)


async def walk_audit_chain(store: ObservationStore, page: int = AUDIT_PAGE) -> tuple[int, AuditRecord | None]:
    """How many events link up before the first that breaks the chain (None: intact), read a page at a time."""
    after, previous, checked = 0, GENESIS_HASH, 0
    while rows := await store.audit_chain(after, page):
        broken = verify_chain((row for _, row in rows), previous)
        if broken is not None:
            return checked + [row.record for _, row in rows].index(broken), broken
        checked += len(rows)
        after, previous = rows[-1][0], rows[-1][1].hash
    return checked, None


def _verify(settings: GatewaySettings, _: argparse.Namespace) -> None:
    checked, broken = with_store(settings, walk_audit_chain)
    if broken is None:
        print(f"audit chain intact: {checked} events")
        return
    print(f"audit chain broken at event {broken.id} (recorded {broken.recorded_at.isoformat()})")
    sys.exit(1)


def _checked_id(what: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise UsageError(f"{what} id {value!r}: use 1 to 128 letters, digits, '-', '.', '_' or '@'")
    return value


def _add_account(settings: GatewaySettings, args: argparse.Namespace) -> None:
    account_id = _checked_id("account", args.account_id)
    account = with_store(settings, lambda store: store.add_account(account_id, args.role, args.name, args.patient))
    patient = f"\tPatient/{account.patient_id}" if account.patient_id else ""
    print(f"{account.id}\t{account.role}{patient}")


def _set_password(settings: GatewaySettings, args: argparse.Namespace) -> None:
    account_id = _checked_id("account", args.account_id)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the two passwords differ")
    try:
        password_hash = hash_password(password)
    except PasswordError as exc:
        raise UsageError(str(exc)) from exc
    with_store(settings, lambda store: store.set_account_password(account_id, password_hash))
    print(f"{account_id}\tpassword set")


def _add_team(settings: GatewaySettings, args: argparse.Namespace) -> None:
    team_id = _checked_id("care team", args.team_id)
    with_store(settings, lambda store: store.add_care_team(team_id, args.name))
    print(team_id)


def _add_member(settings: GatewaySettings, args: argparse.Namespace) -> None:
    with_store(settings, lambda store: store.add_care_team_member(args.team_id, args.account_id))
    print(f"{args.account_id} -> care team {args.team_id}")


def _add_team_patient(settings: GatewaySettings, args: argparse.Namespace) -> None:
    with_store(settings, lambda store: store.add_care_team_patient(args.team_id, args.patient_id))
    print(f"Patient/{args.patient_id} -> care team {args.team_id}")


def _delegate(settings: GatewaySettings, args: argparse.Namespace) -> None:
    with_store(settings, lambda store: store.delegate(args.patient_id, args.account_id))
    print(f"Patient/{args.patient_id} -> caregiver {args.account_id}")


def _consent_line(record: ConsentRecord) -> str:
    return f"{record.destination}\t{record.status}\t{record.recorded_by}\t{record.recorded_at.isoformat()}"


def _list_consent(settings: GatewaySettings, args: argparse.Namespace) -> None:
    async def read(store: ObservationStore) -> tuple[list[ConsentRecord], list[ConsentRecord]]:
        history = await store.consent_history(args.patient_id) if args.history else []
        return await store.consents(args.patient_id), history

    current, history = with_store(settings, read)
    decided = {record.destination: record for record in current}
    if not settings.destinations:
        print("no EHR destinations are configured")
    for destination in settings.destinations:
        record = decided.get(destination.name)
        pushed = "pushed" if allows(None if record is None else record.status, destination.consent) else "not pushed"
        decision = (
            "no decision" if record is None else f"{record.status} by {record.recorded_by} at {record.recorded_at.isoformat()}"
        )
        print(f"{destination.name}\t{destination.consent}\t{pushed}\t{decision}")
    for record in history:
        print(f"history\t{_consent_line(record)}")


def _destination(settings: GatewaySettings, name: str) -> DestinationSettings:
    found = next((destination for destination in settings.destinations if destination.name == name), None)
    if found is None:
        known = ", ".join(destination.name for destination in settings.destinations) or "none"
        raise UsageError(f"no destination {name!r} is configured (configured: {known})")
    return found


def _operator() -> str:
    try:
        return f"cli/{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "cli/unknown"


def _decide(status: ConsentStatus) -> Callable[[GatewaySettings, argparse.Namespace], None]:
    def decide(settings: GatewaySettings, args: argparse.Namespace) -> None:
        destination = _destination(settings, args.destination)
        by = args.by or _operator()
        if not _BY.fullmatch(by):
            raise UsageError(f"--by {by!r}: use 1 to 128 printable characters")
        record = with_store(
            settings, lambda store: store.set_consent(args.patient_id, destination.name, status, by, datetime.now(UTC))
        )
        pushed = "pushed" if allows(record.status, destination.consent) else "not pushed"
        print(f"Patient/{args.patient_id} -> {destination.name}: {record.status} ({pushed}; recorded by {record.recorded_by} "
              f"at {record.recorded_at.isoformat()})")  # fmt: skip

    return decide


_BY = re.compile(r"[^\x00-\x1f\x7f]{1,128}")

_COMMANDS: dict[tuple[str, str | None], Callable[[GatewaySettings, argparse.Namespace], None]] = {
    ("audit", "verify"): _verify,
    ("account", "add"): _add_account,
    ("account", "set-password"): _set_password,
    ("care-team", "add"): _add_team,
    ("care-team", "member"): _add_member,
    ("care-team", "patient"): _add_team_patient,
    ("delegate", None): _delegate,
    ("consent", "list"): _list_consent,
    ("consent", "grant"): _decide("granted"),
    ("consent", "revoke"): _decide("revoked"),
}
