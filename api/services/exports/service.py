"""One entry for every export: build it, write it in a format, record it in the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.orm import Session

from api.config import Settings
from api.errors import Invalid, NotFound
from api.services import audit
from api.services.exports import checklists, findings, stations, writers
from api.services.exports.common import Export, Format, Kind, Options
from api.services.findings import views
from api.services.findings.scope import Filters

GEOJSON_KINDS = frozenset({Kind.stations})


def check_format(kind: Kind, fmt: Format) -> None:
    if fmt == Format.geojson and kind not in GEOJSON_KINDS:
        raise Invalid(
            f"the {kind.value} export has no GeoJSON; use csv or xlsx",
            code="invalid_request",
            errors=[
                {"path": ["query", "format"], "code": "no_geojson",
                 "message": "GeoJSON is for stations only"}
            ],
        )  # fmt: skip


def build(
    session: Session,
    settings: Settings,
    kind: Kind,
    mission_id: uuid.UUID,
    filters: Filters,
    options: Options,
) -> Export:
    """The export, its rows not yet read (an unknown place or team is a 404 here)."""
    if kind == Kind.checklists:
        return checklists.export(session, mission_id, filters, options)
    # The rest read the folded tallies and critical answers: folded up to now where the
    # findings views would fold too.
    views.ensure_fresh(session, settings)
    if kind == Kind.stations:
        return stations.export(session, mission_id, filters, options)
    return findings.export(session, settings, kind, mission_id, filters, options)


def chunks(
    export: Export,
    fmt: Format,
    sheet: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export's bytes in a format, as its rows come."""
    if fmt == Format.xlsx:
        return writers.xlsx_chunks(export, progress)
    if fmt == Format.geojson:
        return writers.geojson_chunks(export, progress)
    table = export.tables[0]
    if sheet is not None:
        found = next((t for t in export.tables if t.name == sheet), None)
        if found is None:
            names = ", ".join(t.name for t in export.tables)
            raise NotFound(f"no sheet {sheet!r} in this export; it has {names}",
                           code="sheet_not_found")  # fmt: skip
        table = found
    return writers.csv_chunks(export, table, progress)


def record(
    session: Session,
    actor: audit.Actor,
    export: Export,
    fmt: Format,
    target: str,
    filters: Filters,
    options: Options,
) -> None:
    """The export in the audit trail: who took what, with which filters, of which data."""
    after: dict[str, Any] = {
        "format": fmt.value,
        "filters": filters.key(),
        "options": options.key(export.kind),
        "data_version": export.data_version,
    }
    audit.write(session, actor, [{"action": f"export.{export.kind.value}", "target": target,
                                  "after": after}])  # fmt: skip
