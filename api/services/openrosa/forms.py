"""Which forms an observer gets, and in which language: the storage side of the form list."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import Principal
from api.services.openrosa import messages, submission, xform
from models import Assignment, ChecklistTemplate, Mission, Observer, Station, TemplateStatus
from models.base import table_of

ASG = table_of(Assignment)
ST = table_of(Station)
TPL = table_of(ChecklistTemplate)
OBS = table_of(Observer)
MIS = table_of(Mission)


@dataclass(frozen=True, slots=True)
class Caller:
    """An observer as the OpenRosa channel serves them: their language and stations."""

    principal: Principal
    language: str
    stations: list[xform.StationChoice]


def caller(session: Session, principal: Principal, stations: bool = True) -> Caller:
    """The observer's language, and (`stations`: for their forms) their stations; a
    submission needs only the language, in one statement."""
    row = session.execute(
        select(OBS.c.language, MIS.c.languages)
        .select_from(OBS.join(MIS, MIS.c.id == OBS.c.mission_id))
        .where(OBS.c.id == principal.observer_id)
    ).first()
    language = messages.language_of(
        row.language if row else None, list(row.languages or []) if row else []
    )
    choices = (
        [
            xform.StationChoice(code, name)
            for code, name in session.execute(
                select(ST.c.code, ST.c.name)
                .select_from(ASG.join(ST, ST.c.id == ASG.c.station_id))
                .where(ASG.c.observer_id == principal.observer_id)
                .order_by(ST.c.code)
            )
        ]
        if stations
        else []
    )
    return Caller(principal, language, choices)


def served(session: Session, who: Caller, form_id: str | None = None) -> list[xform.ServedForm]:
    """The observer's forms, one per published template version (only `form_id` if given)."""
    q = select(TPL.c.id, TPL.c.definition).where(
        TPL.c.mission_id == who.principal.mission_id,
        TPL.c.status == TemplateStatus.published,
    )
    out = []
    for tid, data in session.execute(q.order_by(TPL.c.code, TPL.c.version)):
        definition = submission.definition(tid, data)
        if form_id is None or xform.form_id(definition.code, definition.version) == form_id:
            out.append(xform.build(definition, who.stations, who.language))
    return out
