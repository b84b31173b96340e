"""FHIR search parameters for Observation -> an ObservationQuery (pure, no I/O)."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

from device_adapters.errors import PulseBridgeError
from edge_config import ApiSettings
from fhir_mapper.catalogue import kinds_for_token
from fhir_mapper.resources import Issue
from gateway.storage import ObservationQuery, TimeCondition

_DATE = re.compile(
    r"(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>\.\d{1,9})?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?",
)
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class SearchError(PulseBridgeError):
    """A search the server cannot run as asked: HTTP 400 with an OperationOutcome."""


@dataclass(frozen=True, slots=True)
class ParsedSearch:
    query: ObservationQuery
    warnings: tuple[Issue, ...]


@dataclass(slots=True)
class _Search:
    """Accumulates one search's parameters; each handler below takes one parameter."""

    settings: ApiSettings
    patient: str | None = None
    kinds: frozenset[str] | None = None
    conditions: list[TimeCondition] = field(default_factory=list)
    count: int = 0
    newest_first: bool = True
    after: tuple[datetime, uuid.UUID] | None = None
    warnings: list[Issue] = field(default_factory=list)

    def patient_param(self, name: str, value: str) -> None:
        reference = _patient_reference(name, value)
        if self.patient is not None and self.patient != reference:
            raise SearchError(f"{name}: one patient per search")
        self.patient = reference

    def code_param(self, _: str, value: str) -> None:
        matched = frozenset().union(*(_code_kinds(token) for token in value.split(",")))
        self.kinds = matched if self.kinds is None else self.kinds & matched

    def date_param(self, _: str, value: str) -> None:
        self.conditions.extend(date_conditions(value))

    def count_param(self, _: str, value: str) -> None:
        self.count = _count(value, self.settings, self.warnings)

    def sort_param(self, _: str, value: str) -> None:
        self.newest_first = _sort(value)

    def cursor_param(self, _: str, value: str) -> None:
        self.after = decode_cursor(value)

    def ignore_param(self, _: str, __: str) -> None:
        return


_HANDLERS: Mapping[str, Callable[[_Search, str, str], None]] = MappingProxyType(
    {
        "patient": _Search.patient_param,
        "subject": _Search.patient_param,
        "code": _Search.code_param,
        "date": _Search.date_param,
        "_count": _Search.count_param,
        "_sort": _Search.sort_param,
        "_cursor": _Search.cursor_param,
        "_format": _Search.ignore_param,
        "_pretty": _Search.ignore_param,
    }
)


def parse_observation_search(params: Sequence[tuple[str, str]], settings: ApiSettings, *, strict: bool) -> ParsedSearch:
    """Query parameters -> the store query; unknown ones are ignored with a warning, or refused under strict handling."""
    search = _Search(settings, count=settings.default_count)
    for name, value in params:
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(search, name, value)
            continue
        base, _, modifier = name.partition(":")
        if modifier and base in _HANDLERS:
            # Ignoring a modifier would widen the search (patient:missing=…): refuse it instead.
            raise SearchError(f"{name}: the :{modifier} modifier is not supported")
        message = f"unknown or unsupported search parameter {name!r}"
        if strict:
            raise SearchError(message)
        search.warnings.append(Issue("warning", "not-supported", f"{message} was ignored"))
    query = ObservationQuery(
        patient_id=search.patient,
        kinds=search.kinds,
        time=tuple(search.conditions),
        count=search.count,
        newest_first=search.newest_first,
        after=search.after,
    )
    return ParsedSearch(query, tuple(search.warnings))


def _patient_reference(name: str, value: str) -> str:
    reference = value.removeprefix("Patient/")
    if not _FHIR_ID.fullmatch(reference):
        raise SearchError(f"{name}: {value!r} is not a Patient id or Patient/id reference")
    return reference


def _code_kinds(token: str) -> frozenset[str]:
    if "|" in token:
        system, code = token.split("|", 1)
        return kinds_for_token(system or None, code)
    return kinds_for_token(None, token)


def _count(value: str, settings: ApiSettings, warnings: list[Issue]) -> int:
    if not value.isdigit():
        raise SearchError(f"_count: {value!r} is not a non-negative whole number")
    count = int(value)
    if count > settings.max_count:
        warnings.append(Issue("information", "informational", f"_count {count} reduced to the maximum of {settings.max_count}"))
        return settings.max_count
    return count


def _sort(value: str) -> bool:
    match value:
        case "-date":
            return True
        case "date":
            return False
        case _:
            raise SearchError(f"_sort: only 'date' and '-date' are supported, got {value!r}")


def date_conditions(value: str) -> list[TimeCondition]:
    """FHIR date search value -> conditions on the effective instant.

    The value stands for the whole range of its precision (``2026-11`` is the month); an
    Observation's effective time is an instant, so ``ge`` starts at the range's low end and
    ``le`` ends at its high end. Times without an offset are read as UTC.
    """
    match = _DATE.fullmatch(value)
    if match is None:
        raise SearchError(f"date: {value!r} is not [prefix]YYYY[-MM[-DD[Thh:mm[:ss][zone]]]]")
    prefix = match["prefix"] or "eq"
    low, high = _range(match)
    match prefix:
        case "eq":
            return [TimeCondition(">=", low), TimeCondition("<", high)]
        case "ge":
            return [TimeCondition(">=", low)]
        case "le":
            return [TimeCondition("<", high)]
        case "gt" | "sa":
            return [TimeCondition(">=", high)]
        case "lt" | "eb":
            return [TimeCondition("<", low)]
        case _:
            raise SearchError(f"date: the {prefix!r} prefix is not supported (use eq, gt, lt, ge, le, sa, eb)")


def _range(match: re.Match[str]) -> tuple[datetime, datetime]:
    try:
        year = int(match["year"])
        if match["month"] is None:
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        month = int(match["month"])
        if match["day"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            return start, (start + timedelta(days=32)).replace(day=1)
        day = int(match["day"])
        if match["hour"] is None:
            start = datetime(year, month, day, tzinfo=UTC)
            return start, start + timedelta(days=1)
        zone = _zone(match["zone"])
        second = match["second"]
        fraction = match["fraction"]
        start = datetime(year, month, day, int(match["hour"]), int(match["minute"]), int(second or 0), tzinfo=zone)
        if second is None:
            return start, start + timedelta(minutes=1)
        if fraction is None:
            return start, start + timedelta(seconds=1)
        digits = fraction[1:7]
        start = start.replace(microsecond=int(digits.ljust(6, "0")))
        return start, start + timedelta(microseconds=10 ** (6 - len(digits)))
    except (ValueError, OverflowError) as exc:
        raise SearchError(f"date: {match.string!r} is not a valid date: {exc}") from exc


def _zone(text: str | None) -> timezone:
    if text is None or text == "Z":
        return UTC
    sign = 1 if text[0] == "+" else -1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


def encode_cursor(instant: datetime, reading_key: uuid.UUID) -> str:
    micros = (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}:{reading_key}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, uuid.UUID]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        micros, key = text.split(":", 1)
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros)), uuid.UUID(key)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise SearchError("_cursor: not a cursor this server issued") from exc
