"""WHERE clauses for the search queries, written once for both SQL dialects.

The adapters differ only in how a value is bound (``$n`` and arrays in PostgreSQL, ``?`` in
SQLite) and how instants and keys are stored (timestamptz and uuid, or integers and text); a
:class:`Dialect` says that, and the clauses below are the same text for both.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gateway.storage.corrections import ENTERED_IN_ERROR
from gateway.storage.port import (
    DEVICE_INFORMATION_FIELDS,
    DeviceQuery,
    LastNQuery,
    ObservationQuery,
    PatientQuery,
    TimeCondition,
    TimeSpan,
)

SqlType = Literal["text", "uuid"]
DEVICE_COLUMNS = ", ".join(
    f"d.{name}" for name in ("resource_id", "device_id", "kind", "display_name", *DEVICE_INFORMATION_FIELDS)
)
"""What :func:`gateway.storage.port.device_entry` reads, from ``devices d``."""


@dataclass(frozen=True, slots=True)
class Dialect:
    placeholder: Callable[[int], str]
    """1-based position -> placeholder text."""
    instant: Callable[[datetime], object]
    key: Callable[[uuid.UUID], object]
    arrays: bool
    """Bind a collection as one array (``= ANY($n::text[])``) rather than one placeholder per value."""


@dataclass(slots=True)
class Where:
    """Clauses ANDed together and the values they bind, in order."""

    dialect: Dialect
    clauses: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def bind(self, value: object) -> str:
        self.args.append(value)
        return self.dialect.placeholder(len(self.args))

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def one_of(self, column: str, values: Collection[object], sql_type: SqlType) -> None:
        if not values:
            self.add("1 = 0")  # an empty set matches nothing (a code no kind carries)
        elif self.dialect.arrays:
            self.add(f"{column} = ANY({self.bind(sorted(values, key=str))}::{sql_type}[])")
        else:
            self.add(f"{column} IN ({', '.join(self.bind(value) for value in sorted(values, key=str))})")

    def instants(self, column: str, conditions: Collection[TimeCondition], excluded: Collection[TimeSpan]) -> None:
        for condition in conditions:
            self.add(f"{column} {condition.op} {self.bind(self.dialect.instant(condition.instant))}")
        for span in excluded:
            start, end = self.bind(self.dialect.instant(span.start)), self.bind(self.dialect.instant(span.end))
            self.add(f"({column} < {start} OR {column} >= {end})")

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self.clauses)}" if self.clauses else ""


def observation_where(query: ObservationQuery, dialect: Dialect, *, paged: bool) -> Where:
    """The query's filters; with ``paged``, also its keyset cursor."""
    where = Where(dialect)
    if query.patient_id is not None:
        where.add(f"patient_id = {where.bind(query.patient_id)}")
    if query.kinds is not None:
        where.one_of("kind", query.kinds, "text")
    if query.device_ids is not None:
        where.one_of("device_resource_id", [dialect.key(key) for key in query.device_ids], "uuid")
    if query.reading_keys is not None:
        where.one_of("reading_key", [dialect.key(key) for key in query.reading_keys], "uuid")
    where.instants("time", query.time, query.time_excluded)
    where.instants("received_at", query.received, query.received_excluded)
    if paged and query.after is not None:
        op = "<" if query.newest_first else ">"
        time, key = where.bind(dialect.instant(query.after[0])), where.bind(dialect.key(query.after[1]))
        where.add(f"(time, reading_key) {op} ({time}, {key})")
    return where


def observation_order(query: ObservationQuery) -> str:
    order = "DESC" if query.newest_first else "ASC"
    return f"ORDER BY time {order}, reading_key {order}"


def last_n_where(query: LastNQuery, dialect: Dialect, kind_column: str) -> Where:
    """One kind's filters; the kind itself is ``kind_column`` (a lateral column or a placeholder)."""
    where = Where(dialect)
    where.add(f"patient_id = {where.bind(query.patient_id)}")
    where.add(f"kind = {kind_column}")
    where.add(f"status <> '{ENTERED_IN_ERROR}'")  # the latest readings that stand (an amended one, with its new value)
    where.instants("time", query.time, query.time_excluded)
    return where


def _like_escaped(text: str) -> str:
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def patient_where(query: PatientQuery, dialect: Dialect) -> Where:
    where = Where(dialect)
    if query.ids is not None:
        where.one_of("id", query.ids, "text")
    if query.mrns is not None:
        where.one_of("mrn", query.mrns, "text")
    if query.name is not None:
        # FHIR string search: case-insensitive, matching the start of the name or of any word in it.
        name = _like_escaped(query.name)
        whole, word = where.bind(f"{name}%"), where.bind(f"% {name}%")
        where.add(f"(lower(name) LIKE {whole} ESCAPE '\\' OR lower(name) LIKE {word} ESCAPE '\\')")
    if query.after is not None:
        where.add(f"id > {where.bind(query.after)}")
    return where


def device_where(query: DeviceQuery, dialect: Dialect) -> Where:
    """Over ``devices d LEFT JOIN`` the open assignment ``a``."""
    where = Where(dialect)
    if query.resource_ids is not None:
        where.one_of("d.resource_id", [dialect.key(key) for key in query.resource_ids], "uuid")
    if query.device_ids is not None:
        where.one_of("d.device_id", query.device_ids, "text")
    if query.patient_id is not None:
        where.add(f"a.patient_id = {where.bind(query.patient_id)}")
    if query.after is not None:
        where.add(f"d.device_id > {where.bind(query.after)}")
    return where
