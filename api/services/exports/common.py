"""What every export shares: its tables, its title line and file name, its snapshot."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import NotFound
from api.services.changes import data_version
from api.services.findings.scope import Filters
from models import Mission
from models.base import table_of

MISSION = table_of(Mission)


class Kind(StrEnum):
    checklists = "checklists"
    findings = "findings"
    counting = "counting"
    incidents = "incidents"
    critical = "critical"
    stations = "stations"


# Checklist-level exports carry observers' identities and free text: staff only.
STAFF_KINDS = frozenset({Kind.checklists})


class Format(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    geojson = "geojson"


MEDIA_TYPES = {
    Format.csv: "text/csv; charset=utf-8",
    Format.xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    Format.geojson: "application/geo+json",
}


class Versions(StrEnum):
    latest = "latest"  # the newest version of each checklist, whatever its review state
    all = "all"  # every version, with its number and the version it replaces
    counting = "counting"  # what the findings count: latest, not rejected, not quarantined


class Values(StrEnum):
    codes = "codes"
    labels = "labels"


# Column types: how a writer shows a value (the OData feed maps them to EDM types).
TEXT, INT, FLOAT, BOOL, DATETIME, TIME = "text", "int", "float", "bool", "datetime", "time"
FLAG = "flag"  # 0, 1 or empty only (a multi-choice option): written as it is


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str = TEXT
    # Its values are written to CSV as they are: numbers, validated answer codes, or labels
    # made safe once (a hundred answer columns converted cell by cell cost most of a row).
    plain: bool = False


@dataclass(slots=True)
class Table:
    """One sheet: its columns and a generator of rows (tuples in column order)."""

    name: str
    columns: list[Column]
    rows: Iterator[tuple[Any, ...]]


@dataclass(slots=True)
class Export:
    kind: Kind
    mission_id: uuid.UUID
    title: str  # the first line: what this is, its filters and data version
    stem: str  # the file name without extension
    tables: list[Table]
    data_version: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Options:
    """How an export is asked for, besides the findings' filters."""

    versions: Versions = Versions.latest
    values: Values = Values.codes
    language: str | None = None

    def key(self, kind: Kind) -> dict[str, str]:
        if kind != Kind.checklists:
            return {"lang": self.language} if self.language else {}
        out = {"versions": self.versions.value, "values": self.values.value}
        if self.language:
            out["lang"] = self.language
        return out


@dataclass(frozen=True, slots=True)
class MissionInfo:
    id: uuid.UUID
    name: str
    timezone: str
    languages: list[str]
    sampling: str
    settings: dict[str, Any]


def mission_info(session: Session, mission_id: uuid.UUID) -> MissionInfo:
    row = session.execute(
        select(
            MISSION.c.name,
            MISSION.c.timezone,
            MISSION.c.languages,
            MISSION.c.sampling,
            MISSION.c.settings,
        ).where(MISSION.c.id == mission_id)
    ).first()
    if row is None:
        raise NotFound(f"no mission {mission_id}", code="mission_not_found")
    return MissionInfo(
        mission_id, row.name, row.timezone, list(row.languages or ["en"]), row.sampling,
        dict(row.settings or {}),
    )  # fmt: skip


def describe(
    kind: Kind, mission: MissionInfo, filters: Filters, options: Options, version: int
) -> tuple[str, str]:
    """The title line and the file name stem: the same facts in words and in a name."""
    chosen, asked = options.key(kind), filters.key()
    words = ", ".join(f"{k}={v}" for k, v in asked.items()) or "none"
    how = "".join(f"; {k}={v}" for k, v in chosen.items())
    made = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    title = (
        f"Pollcheck {kind.value} export of mission {mission.name} ({mission.id}); "
        f"filters: {words}{how}; data version {version}; made {made}; times in UTC and "
        f"{mission.timezone}"
    )
    parts = [f"{k}-{v}" for k, v in (asked | chosen).items()]
    stem = "_".join(["pollcheck", kind.value, str(mission.id)[:8], f"v{version}", *parts])
    return title, _file_safe(stem)[:180]


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


@contextmanager
def snapshot() -> Iterator[Session]:
    """A read session whose statements all see one snapshot, for an export's whole run
    (PostgreSQL: REPEATABLE READ on the read engine; SQLite: its read transaction)."""
    from api.db import get_read_engine

    engine = get_read_engine()
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    session = Session(engine, autoflush=False, expire_on_commit=False)
    try:
        yield session
        session.rollback()  # read only: nothing to keep
    finally:
        session.close()


def version_of(session: Session, mission_id: uuid.UUID) -> int:
    return data_version(session, mission_id)
