"""Stations and the location tree; CSV import with upsert by code and a dry run."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from api.errors import Invalid, NotFound
from api.sanitize import CsvReader
from api.services.findings import plans
from api.services.findings.fold import bump_versions, moving_stations
from api.services.sql import insert_ignore, upsert
from models import Location, LocationKind, Station
from models.base import new_id, table_of, utcnow
from models.station import ImportProblem, ImportReport, StationCreate, StationPublic

LOC = table_of(Location)
ST = table_of(Station)
CSV_COLUMNS = (
    "code",
    "name",
    "region",
    "district",
    "city",
    "country",
    "post",
    "address",
    "registered_voters",
    "latitude",
    "longitude",
)
STATION_FIELDS = ("name", "address", "registered_voters", "latitude", "longitude")


@dataclass(frozen=True)
class _Place:
    """The place columns of a row as given, so a row with bad fields is still placed."""

    region: str | None = None
    district: str | None = None
    city: str | None = None
    country: str | None = None
    post: str | None = None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> _Place:
        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) and value else None

        return cls(*(text(k) for k in ("region", "district", "city", "country", "post")))


def row_problems(raw: dict[str, Any]) -> tuple[StationCreate | None, list[str]]:
    """The row as a station, or every problem it has: its fields' and its place's together."""
    problems: list[str] = []
    station: StationCreate | None = None
    try:
        station = StationCreate.model_validate(raw)
    except ValidationError as exc:
        problems += [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
    try:
        location_chain(station or _Place.of(raw))
    except ValueError as exc:
        problems.append(str(exc))
    return (None if problems else station), problems


def location_chain(s: StationCreate | _Place) -> list[tuple[LocationKind, str]]:
    """The path from the top of the tree to the station's place, or raise ValueError."""
    if s.country and (s.region or s.district or s.city):
        raise ValueError("give either region (in-country) or country (abroad), not both")
    if s.country:
        chain = [(LocationKind.country, s.country)]
        if s.post:
            chain.append((LocationKind.post, s.post))
        return chain
    if s.post:
        raise ValueError("post (embassy/consulate) is only for stations abroad; add country")
    if not s.region:
        raise ValueError("region is required for in-country stations (or country for abroad)")
    if s.district and s.city:
        raise ValueError("give district or city, not both")
    chain = [(LocationKind.region, s.region)]
    if s.district:
        chain.append((LocationKind.district, s.district))
    elif s.city:
        chain.append((LocationKind.city, s.city))
    return chain


def _clean(name: str) -> str:
    return " ".join(name.replace("/", "-").split())


@dataclass
class LocationTree:
    """The mission's locations by path, creating missing ones in bulk."""

    mission_id: uuid.UUID
    by_path: dict[str, uuid.UUID] = field(default_factory=dict)
    new_rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, session: Session, mission_id: uuid.UUID) -> LocationTree:
        rows = session.execute(select(LOC.c.path, LOC.c.id).where(LOC.c.mission_id == mission_id))
        return cls(mission_id, {r.path: r.id for r in rows})

    def ensure(self, chain: list[tuple[LocationKind, str]]) -> tuple[uuid.UUID, uuid.UUID, str]:
        """Return (leaf id, top id, leaf path)."""
        parent: uuid.UUID | None = None
        path = ""
        top: uuid.UUID | None = None
        abroad = chain[0][0] == LocationKind.country
        for kind, name in chain:
            name = _clean(name)
            path = f"{path}/{name}" if path else name
            loc_id = self.by_path.get(path)
            if loc_id is None:
                loc_id = new_id()
                self.by_path[path] = loc_id
                self.new_rows.append(
                    {
                        "id": loc_id,
                        "mission_id": self.mission_id,
                        "parent_id": parent,
                        "kind": kind.value,
                        "name": name,
                        "path": path,
                        "abroad": abroad,
                        "created_at": utcnow(),
                    }
                )
            top = top or loc_id
            parent = loc_id
        assert parent is not None and top is not None
        return parent, top, path

    def flush(self, session: Session) -> None:
        insert_ignore(session, LOC, self.new_rows, ["mission_id", "path"])
        self.new_rows = []


def upsert_stations(
    session: Session,
    mission_id: uuid.UUID,
    stations: Iterable[tuple[int, dict[str, Any]]],
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Check every row, then (unless a dry run or any row is bad) write them all at once."""
    tree = LocationTree.load(session, mission_id)
    existing = {
        r.code: r
        for r in session.execute(
            select(ST.c.id, ST.c.code, ST.c.location_id, *[ST.c[f] for f in STATION_FIELDS]).where(
                ST.c.mission_id == mission_id
            )
        )
    }
    problems: list[ImportProblem] = []
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    created = updated = unchanged = total = 0
    moved: list[uuid.UUID] = []  # stations given another place
    now = utcnow()
    for line, raw in stations:
        total += 1
        if progress and total % 500 == 0:
            progress(500)
        s, reasons = row_problems(raw)
        code = raw.get("code")
        if isinstance(code, str) and code in seen:
            reasons.append(f"station {code} already given on line {seen[code]}")
        elif isinstance(code, str):
            seen[code] = line
        if s is None or reasons:
            problems.append(ImportProblem(line=line, reason="; ".join(reasons)))
            continue
        chain = location_chain(s)
        leaf, top, _ = tree.ensure(chain)
        values = {f: getattr(s, f) for f in STATION_FIELDS}
        old = existing.get(s.code)
        if old is None:
            created += 1
        elif old.location_id == leaf and all(getattr(old, f) == values[f] for f in STATION_FIELDS):
            unchanged += 1
            continue
        else:
            updated += 1
            if old.location_id != leaf:
                moved.append(old.id)
        rows.append(
            {
                "id": new_id(),
                "mission_id": mission_id,
                "code": s.code,
                "location_id": leaf,
                "region_id": top,
                "abroad": chain[0][0] == LocationKind.country,
                "created_at": now,
                "updated_at": now,
                **values,
            }
        )
    if progress:
        progress(total % 500)
    report = ImportReport(
        dry_run=dry_run,
        rows=total,
        created=created,
        updated=updated,
        unchanged=unchanged,
        problems=problems,
    )
    if dry_run or problems:
        return report
    tree.flush(session)
    with moving_stations(session, mission_id, moved):
        for i in range(0, len(rows), 1000):
            upsert(
                session,
                ST,
                rows[i : i + 1000],
                ["mission_id", "code"],
                ["location_id", "region_id", "abroad", "updated_at", *STATION_FIELDS],
            )
    if rows:  # the deployment plan changed: coverage and the statement are due again
        plans.stations_changed(session, mission_id)
        bump_versions(session, [mission_id])
    return report


def parse_csv(text: str) -> Iterable[tuple[int, dict[str, Any]]]:
    """Rows of a stations CSV with their line numbers; empty cells become missing values."""
    reader = CsvReader(text)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    missing = [h for h in ("code", "name") if h not in header]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise Invalid(
            f"line 1 (header): {'; '.join(parts)}; the columns are {', '.join(CSV_COLUMNS)}",
            code="csv_header",
            errors=[{"path": ["csv", 1], "code": "csv_header", "message": "; ".join(parts)}],
        )
    reader.fieldnames = header
    for row in reader:
        if None in row:
            yield reader.line_num, {"__extra__": row[None]}
            continue
        yield reader.line_num, {k: v.strip() for k, v in row.items() if v and v.strip()}


def import_csv(
    session: Session,
    mission_id: uuid.UUID,
    text: str,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    return upsert_stations(session, mission_id, parse_csv(text), dry_run, progress)


def _public_query(mission_id: uuid.UUID) -> Select[Station, str]:
    return (
        select(Station, col(Location.path))
        .join(Location, col(Location.id) == col(Station.location_id))
        .where(col(Station.mission_id) == mission_id)
    )


def _public(station: Station, path: str) -> StationPublic:
    return StationPublic(**station.model_dump(), location_path=path)


def list_stations(
    session: Session, mission_id: uuid.UUID, location: str | None, offset: int, limit: int
) -> tuple[list[StationPublic], int]:
    q = _public_query(mission_id)
    if location:
        path = col(Location.path)
        q = q.where(or_(path == location, path.startswith(location + "/", autoescape=True)))
    count = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.execute(q.order_by(col(Station.code)).offset(offset).limit(limit)).all()
    return [_public(s, p) for s, p in rows], count


def get_station(session: Session, mission_id: uuid.UUID, code: str) -> StationPublic:
    row = session.execute(_public_query(mission_id).where(col(Station.code) == code)).first()
    if row is None:
        raise NotFound(f"no station {code!r} in this mission", code="station_not_found")
    return _public(*row)


def put_station(session: Session, mission_id: uuid.UUID, body: StationCreate) -> StationPublic:
    report = upsert_stations(session, mission_id, [(1, body.model_dump(exclude_none=True))])
    if report.problems:
        raise Invalid(
            report.problems[0].reason,
            code="invalid_station",
            errors=[
                {"path": ["body"], "code": "invalid_station", "message": report.problems[0].reason}
            ],
        )
    return get_station(session, mission_id, body.code)
