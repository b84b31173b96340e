"""What every FHIR search here shares (pure, no I/O).

The parameter loop with lenient or strict handling, tokens, references, ``_count``, cursors.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Generic, Literal, TypeVar

from device_adapters.errors import PulseBridgeError
from edge_config import ApiSettings
from fhir_mapper.resources import Issue

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
TotalMode = Literal["none", "estimate", "accurate"]


class SearchError(PulseBridgeError):
    """A search the server cannot run as asked: HTTP 400 with an OperationOutcome."""


class UnsupportedSearchError(SearchError):
    """A parameter or value the server does not support: ignored with a warning, or 400 under strict handling."""


class UnsupportedModifierError(SearchError):
    """A modifier the server does not support: always 400, as FHIR asks.

    Ignoring a modifier changes the question (``code:not=…`` would return what it excludes),
    so the search is refused whatever the handling preference.
    """


@dataclass(slots=True)
class SearchState:
    """What every search collects; each resource type's state adds its own filters."""

    settings: ApiSettings
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    count: int = 0
    summary_count: bool = False
    total: TotalMode = "estimate"
    cursor: str | None = None
    notes: list[Issue] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.count = self.settings.default_count


S = TypeVar("S", bound=SearchState)
T = TypeVar("T")
Q = TypeVar("Q")
S_contra = TypeVar("S_contra", bound=SearchState, contravariant=True)


@dataclass(frozen=True, slots=True)
class Parameter(Generic[S_contra]):
    """One row of a resource type's parameter table (a row for any search serves every search)."""

    apply: Callable[[S_contra, str], None]
    """Raises SearchError for a bad value, UnsupportedSearchError for one understood but not supported."""
    modifiers: frozenset[str] = frozenset()
    """Modifiers that change nothing here (``patient:Patient``); any other is unsupported."""


@dataclass(frozen=True, slots=True)
class Applied:
    """The parameters a search used (its self link) and the warnings about the others."""

    params: tuple[tuple[str, str], ...]
    warnings: tuple[Issue, ...]


def apply_parameters(params: Sequence[tuple[str, str]], table: Mapping[str, Parameter[S]], state: S, *, strict: bool) -> Applied:
    """Run each parameter through its table row; unknown or unsupported ones are ignored with a warning unless strict."""
    used: list[tuple[str, str]] = []
    warnings: list[Issue] = []
    for name, value in params:
        base, _, modifier = name.partition(":")
        try:
            _apply(table.get(base), name, modifier, state, value)
        except UnsupportedSearchError as exc:
            if strict:
                raise
            warnings.append(Issue("warning", "not-supported", f"{exc}; the parameter was ignored"))
            continue
        if base != "_cursor":
            used.append((name, value))
    return Applied(tuple(used), (*state.notes, *warnings))


def _apply(row: Parameter[S] | None, name: str, modifier: str, state: S, value: str) -> None:
    if row is None:
        raise UnsupportedSearchError(f"unknown or unsupported search parameter {name!r}")
    if modifier and modifier not in row.modifiers:
        raise UnsupportedModifierError(f"{name}: the :{modifier} modifier is not supported")
    row.apply(state, value)


# -- parameters every search takes ------------------------------------------------------------


def count_param(state: SearchState, value: str) -> None:
    if not value.isdigit():
        raise SearchError(f"_count: {value!r} is not a non-negative whole number")
    count = int(value)
    if count == 0:
        # FHIR: _count=0 asks for the total only, like _summary=count.
        state.summary_count = True
        return
    if count > state.settings.max_count:
        state.notes.append(
            Issue("information", "informational", f"_count {count} reduced to the maximum of {state.settings.max_count}")
        )
        count = state.settings.max_count
    state.count = count


def choice(name: str, value: str, table: Mapping[str, T]) -> T:
    """A value from a parameter's table of supported values; any other is unsupported."""
    if value not in table:
        raise UnsupportedSearchError(f"{name}: only {', '.join(repr(v) for v in table)} supported, got {value!r}")
    return table[value]


_SUMMARIES: Mapping[str, bool] = MappingProxyType({"count": True, "false": False})


def summary_param(state: SearchState, value: str) -> None:
    state.summary_count = choice("_summary", value, _SUMMARIES)


_TOTALS: Mapping[str, TotalMode] = MappingProxyType({"none": "none", "estimate": "estimate", "accurate": "accurate"})


def total_param(state: SearchState, value: str) -> None:
    mode = _TOTALS.get(value)
    if mode is None:
        raise SearchError(f"_total: {value!r} is not none, estimate or accurate")
    state.total = mode


def cursor_param(state: SearchState, value: str) -> None:
    state.cursor = value


def ignore_param(_: SearchState, __: str) -> None:
    """``_format`` and ``_pretty``: the answer is always JSON."""


COMMON_PARAMETERS: Mapping[str, Parameter[SearchState]] = MappingProxyType({
    "_count": Parameter(count_param),
    "_cursor": Parameter(cursor_param),
    "_format": Parameter(ignore_param),
    "_pretty": Parameter(ignore_param),
})  # fmt: skip
TOTAL_PARAMETERS: Mapping[str, Parameter[SearchState]] = MappingProxyType({
    "_summary": Parameter(summary_param),
    "_total": Parameter(total_param),
})  # fmt: skip


# -- value syntax ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """A token search value: ``code``, ``system|code`` or ``|code`` (system "" means no system)."""

    system: str | None
    code: str

    def in_system(self, system: str) -> bool:
        return self.system is None or self.system == system


def tokens(value: str) -> list[Token]:
    """Comma-separated token values (OR-ed)."""
    found = []
    for part in value.split(","):
        if "|" in part:
            system, code = part.split("|", 1)
            found.append(Token(system, code))
        else:
            found.append(Token(None, part))
    return found


def reference_id(name: str, value: str, resource_type: str) -> str:
    """``id`` or ``Type/id`` -> id; anything else is a bad value."""
    reference = value.removeprefix(f"{resource_type}/")
    if not FHIR_ID.fullmatch(reference):
        raise SearchError(f"{name}: {value!r} is not a {resource_type} id or {resource_type}/id reference")
    return reference


def single_reference(current: str | None, name: str, value: str, resource_type: str) -> str:
    """A reference parameter that may be repeated only with the same value."""
    reference = reference_id(name, value, resource_type)
    if current is not None and current != reference:
        raise SearchError(f"{name}: one {resource_type} per search")
    return reference


def intersect(current: frozenset[T] | None, matched: frozenset[T]) -> frozenset[T]:
    """Repeated parameters are ANDed; comma-separated values within one are ORed."""
    return matched if current is None else current & matched


def as_uuid(text: str) -> uuid.UUID | None:
    """Our Devices and Observations have UUID ids: any other id names none of them."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def uuids(texts: Iterable[str]) -> frozenset[uuid.UUID]:
    """The UUIDs among ``texts``."""
    return frozenset(key for key in map(as_uuid, texts) if key is not None)


@dataclass(frozen=True, slots=True)
class Parsed(Generic[Q]):
    """A store query and what the search applied and ignored."""

    query: Q
    applied: Applied


def encode_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise SearchError("_cursor: not a cursor this server issued") from exc
