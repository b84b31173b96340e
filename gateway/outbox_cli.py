"""The ``outbox`` commands: what waits for each EHR, what it refused, and sending refused readings again."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime

from edge_config import GatewaySettings, load_settings
from gateway.cli_support import UsageError, config_argument, with_store

DEAD_LETTER_PAGE = 1000


def add_outbox_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = commands.add_parser("outbox", help="readings waiting to be pushed to EHRs").add_subparsers(
        dest="action", required=True
    )
    config_argument(outbox.add_parser("status", help="rows per destination and state, the oldest due and the oldest queued"))
    letters = outbox.add_parser("dead-letters", help="readings an EHR refused for good, with its reason")
    letters.add_argument("--destination", help="only this destination")
    letters.add_argument("--after", type=int, default=0, help="rows after this id (paging)")
    letters.add_argument("--limit", type=int, default=100, help="at most this many rows (1-1000)")
    config_argument(letters)
    replay = outbox.add_parser("replay", help="queue dead letters again, after the cause was fixed")
    replay.add_argument("row_ids", type=int, nargs="*", help="dead-letter row ids")
    replay.add_argument("--all", action="store_true", help="every dead letter (of --destination, if given)")
    replay.add_argument("--destination", help="only this destination")
    config_argument(replay)


def run_outbox(args: argparse.Namespace) -> None:
    _COMMANDS[args.action](load_settings(args.config), args)


def _status(settings: GatewaySettings, _: argparse.Namespace) -> None:
    counts = with_store(settings, lambda store: store.outbox_status())
    if not counts:
        print("the outbox is empty")
    for count in counts:
        due = f", oldest due {count.oldest_due.isoformat()}" if count.oldest_due else ""
        queued = f", oldest queued {count.oldest_created.isoformat()}" if count.oldest_created else ""
        print(f"{count.destination}\t{count.status}\t{count.count}{due}{queued}")


def _dead_letters(settings: GatewaySettings, args: argparse.Namespace) -> None:
    if not 1 <= args.limit <= DEAD_LETTER_PAGE:
        raise UsageError(f"--limit must be between 1 and {DEAD_LETTER_PAGE}")
    letters = with_store(settings, lambda store: store.dead_letters(args.destination, args.after, args.limit))
    if not letters:
        print("no dead letters")
    for letter in letters:
        status = "-" if letter.http_status is None else str(letter.http_status)
        print(f"{letter.id}\t{letter.destination}\t{letter.reading_key}\t{letter.time.isoformat()}\t"
              f"attempts {letter.attempts}\t{status}\t{letter.error or ''}")  # fmt: skip


def _replay(settings: GatewaySettings, args: argparse.Namespace) -> None:
    if bool(args.row_ids) == args.all:
        raise UsageError("name dead-letter row ids, or --all (not both)")
    ids = None if args.all else list(args.row_ids)
    count = with_store(settings, lambda store: store.replay_dead_letters(ids, args.destination, datetime.now(UTC)))
    if ids is not None and count < len(ids):
        print(f"{len(ids) - count} of the rows named are not dead letters (already replayed, or unknown)")
    print(f"queued again: {count}")


_COMMANDS: dict[str, Callable[[GatewaySettings, argparse.Namespace], None]] = {
    "status": _status,
    "dead-letters": _dead_letters,
    "replay": _replay,
}
