"""FHIR date search values against an instant (``Observation.effective``, ``meta.lastUpdated``).

A value stands for the whole range of its precision (``2026-11`` is the month); the target is
a point in time, so each prefix of the FHIR R4 search specification becomes conditions on that
instant. Times without an offset are read as UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from gateway.api.search.common import SearchError
from gateway.storage import TimeCondition, TimeSpan

_DATE = re.compile(
    r"(?P<prefix>[a-z]{2})?"
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>\.\d{1,9})?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?",
)
APPROXIMATELY = 0.1
"""``ap``: the range widened by 10% of the gap between now and the value, as the specification recommends."""


@dataclass(frozen=True, slots=True)
class InstantFilter:
    """What one date value asks of an instant: every condition holds and it lies outside ``excluded``."""

    conditions: tuple[TimeCondition, ...] = ()
    excluded: tuple[TimeSpan, ...] = ()


def _eq(span: TimeSpan, _: datetime) -> InstantFilter:
    return InstantFilter((TimeCondition(">=", span.start), TimeCondition("<", span.end)))


def _ne(span: TimeSpan, _: datetime) -> InstantFilter:
    return InstantFilter(excluded=(span,))


def _ge(span: TimeSpan, _: datetime) -> InstantFilter:
    return InstantFilter((TimeCondition(">=", span.start),))


def _le(span: TimeSpan, _: datetime) -> InstantFilter:
    return InstantFilter((TimeCondition("<", span.end),))


def _after(span: TimeSpan, _: datetime) -> InstantFilter:
    # gt and sa: an instant is above the whole range (gt2026-11-22 starts on the 23rd).
    return InstantFilter((TimeCondition(">=", span.end),))


def _before(span: TimeSpan, _: datetime) -> InstantFilter:
    # lt and eb: an instant below the whole range.
    return InstantFilter((TimeCondition("<", span.start),))


def _ap(span: TimeSpan, now: datetime) -> InstantFilter:
    margin = abs(now - span.start) * APPROXIMATELY
    return InstantFilter((TimeCondition(">=", span.start - margin), TimeCondition("<", span.end + margin)))


_PREFIXES = {"eq": _eq, "ne": _ne, "ge": _ge, "le": _le, "gt": _after, "sa": _after, "lt": _before, "eb": _before, "ap": _ap}


def instant_filter(name: str, value: str, now: datetime) -> InstantFilter:
    match = _DATE.fullmatch(value)
    if match is None:
        raise SearchError(f"{name}: {value!r} is not [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][zone]]]]")
    prefix = match["prefix"] or "eq"
    build = _PREFIXES.get(prefix)
    if build is None:
        raise SearchError(f"{name}: {prefix!r} is not a date prefix (eq, ne, gt, lt, ge, le, sa, eb, ap)")
    return build(_span(name, match), now)


def _span(name: str, match: re.Match[str]) -> TimeSpan:
    try:
        year = int(match["year"])
        if match["month"] is None:
            return TimeSpan(datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC))
        month = int(match["month"])
        if match["day"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            return TimeSpan(start, (start + timedelta(days=32)).replace(day=1))
        day = int(match["day"])
        if match["hour"] is None:
            start = datetime(year, month, day, tzinfo=UTC)
            return TimeSpan(start, start + timedelta(days=1))
        second, fraction = match["second"], match["fraction"]
        start = datetime(
            year, month, day, int(match["hour"]), int(match["minute"]), int(second or 0), tzinfo=_zone(match["zone"])
        )
        if second is None:
            return TimeSpan(start, start + timedelta(minutes=1))
        if fraction is None:
            return TimeSpan(start, start + timedelta(seconds=1))
        digits = fraction[1:7]
        start = start.replace(microsecond=int(digits.ljust(6, "0")))
        return TimeSpan(start, start + timedelta(microseconds=10 ** (6 - len(digits))))
    except (ValueError, OverflowError) as exc:
        raise SearchError(f"{name}: {match.string!r} is not a valid date: {exc}") from exc


def _zone(text: str | None) -> timezone:
    if text is None or text == "Z":
        return UTC
    sign = 1 if text[0] == "+" else -1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))
