"""Ordered, forward-only SQL migrations shipped with the package."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Literal

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(dialect: Literal["timescale", "sqlite"]) -> list[Migration]:
    """The dialect's migrations in version order; a misnamed file is a packaging bug."""
    folder = resources.files("gateway.storage") / "migrations" / dialect
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.fullmatch(entry.name)
        if match is None:
            msg = f"migration file {entry.name!r} must be named NNNN_name.sql"
            raise RuntimeError(msg)
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        msg = f"duplicate migration versions in {dialect}: {versions}"
        raise RuntimeError(msg)
    return found


def sqlite_statements(script: str) -> list[str]:
    """Split a migration into statements; SQLite's own test keeps a trigger's ``BEGIN … END;`` whole."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines():
        if line.lstrip().startswith("--"):
            continue
        pending += line + "\n"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements
