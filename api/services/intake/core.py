"""The intake's one entry point, `intake`, for every channel.

A channel (the JSON route, the phone's batch, OpenRosa) parses what it received into a
`ChecklistSubmit`, calls `intake`, and translates the `Outcome` or the `Refused` into its
own answer. `intake` looks up what the rules need (`storage`), applies them (`rules`),
and has a writer store the version; the operation writes its own audit record: a version
row is its own record (who, when, which credential), and a correction adds one with the
answers it changed.

Transactions stay the caller's: `intake` only flushes, except for the one case that
commits on its own (see `intake`'s docstring), and with `savepoint` one checklist that
fails leaves the rest of the caller's transaction as it was.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from api.checklist_schema import AnswerRow
from api.config import Settings
from api.deps import Principal
from api.services import attachments as attachment_service
from api.services import audit, changes, review
from api.services import templates as template_service
from api.services.intake import group, rules, storage
from api.services.intake.rules import Refused
from models import Role
from models.base import utcnow
from models.checklist import ChecklistPublic, ChecklistSubmit


@dataclass(slots=True)
class Outcome:
    checklist: ChecklistPublic
    created: bool  # False: the same checklist was already stored (a replay)


@dataclass(slots=True)
class _Content:
    """What the checks of the content found: the template, the typed answers, the clock."""

    template_id: uuid.UUID | None
    answers: list[AnswerRow]
    skew_s: int | None
    problems: list[rules.FieldProblem]


def intake(
    session: Session,
    principal: Principal,
    body: ChecklistSubmit,
    item: Any,
    raw: str,
    settings: Settings,
    *,
    savepoint: bool = False,
    writer: storage.Writer | None = None,
) -> Outcome:
    """Store one checklist exactly once, or raise `Refused` with every problem found.

    `item` is the checklist as sent (its content hash decides replay or conflict), `raw` the
    text kept as its payload. `writer` picks the writer (tests compare them); by default the
    database's own.

    On PostgreSQL, when `session` has no transaction open yet and `savepoint` is false, an
    observer's new checklist is committed by its own statement at once: the caller must
    write nothing else that should commit or roll back with it (the intake route writes
    nothing else; a batch passes `savepoint`)."""
    dialect = session.get_bind().dialect.name
    writer = writer or storage.writer_for(dialect)
    if writer == storage.STATEMENT and dialect != "postgresql":
        raise ValueError(f"the one-statement writer needs PostgreSQL, not {dialect}")
    # Whatever this stores is in the trail already (see `audit.recorded_by_operation`).
    audit.recorded_by_operation(session)
    digest = rules.content_hash(rules.sent_content(item))
    checked: tuple[datetime, _Content] | None = None
    if (
        writer == storage.STATEMENT
        and principal.role == Role.observer
        and body.replaces is None
        and not body.attachments
    ):
        # Nearly every checklist is an observer's new one: checked, then stored in one round
        # trip by a statement that finds the station and the assignment itself. When that
        # statement stores nothing (an unknown or unassigned station, a resend) or a check
        # failed, the full path below looks everything up and says what is wrong or replays.
        received_at = utcnow()
        content = _check_content(session, principal.mission_id, body, settings, received_at)
        checked = (received_at, content)
        if not content.problems:
            assert principal.observer_id is not None and content.template_id is not None
            row = storage.checklist_row(
                body,
                principal,
                principal.observer_id,
                None,
                content.template_id,
                content.answers,
                rules.chain(body.id, None),
                content.skew_s,
                received_at,
                raw,
                digest,
                settings,
            )
            new = storage.NewVersion(row, content.answers, body.station, None)
            if _store_new(session, new, settings, savepoint):
                changes.announce(session)
                return Outcome(storage.public_of_new(row, body), created=True)
    outcome = _intake_checked(
        session, principal, body, raw, digest, settings, savepoint, writer, checked
    )
    if outcome.created:
        changes.announce(session)  # PostgreSQL's statement wrote the outbox rows itself
    return outcome


def _store_new(
    session: Session, new: storage.NewVersion, settings: Settings, savepoint: bool
) -> bool:
    """An observer's new checklist by the one-statement writer: whether it was stored."""
    nested = session.begin_nested() if savepoint else None
    try:
        bind = session.get_bind()
        if nested is None and not session.in_transaction() and isinstance(bind, Engine):
            # Nothing else of this request writes (a new checklist is its own audit record),
            # so the statement commits on its own: no BEGIN and no COMMIT, two round trips
            # fewer. Durable all the same before the answer leaves.
            if settings.intake_group > 1:
                return group.writer(
                    bind, settings.intake_group, settings.intake_group_writers
                ).store(new)
            return storage.write_statement_committed(bind, new)
        written = storage.write_statement(session, new, settings, must_be_assigned=True)
    except IntegrityError:
        if nested:  # a batch goes on with its other checklists
            nested.rollback()
        raise
    if nested:
        nested.commit()
    return written.stored


def _intake_checked(
    session: Session,
    principal: Principal,
    body: ChecklistSubmit,
    raw: str,
    digest: str,
    settings: Settings,
    savepoint: bool,
    writer: storage.Writer,
    checked: tuple[datetime, _Content] | None,
) -> Outcome:
    """Every case: the station, a resend, a correction's version chain, then the content
    (`checked`: the content's checks where `intake` already made them, and when)."""
    mission_id = principal.mission_id
    station = storage.station_and_resend(
        session, mission_id, body.station, principal.observer_id, body.id
    )
    if station is None or station.already:
        replayed = _replay(session, principal, body.id, digest)
        if replayed is not None:
            return replayed

    received_at = checked[0] if checked else utcnow()
    problems: list[rules.FieldProblem] = []
    replaced: rules.Replaced | None = None
    if body.replaces is not None:
        replaced, bad = rules.correction_target(
            principal, body.replaces, storage.replaced(session, body.replaces)
        )
    else:
        bad = rules.role_problem(principal, body.replaces)
    # In the order the phone's form shows them: the station, the version chain, whose it is.
    if station is None:
        problems.append(rules.unknown_station(body.station))
    if bad is not None:
        problems.append(bad)
    if station is not None:
        unassigned = rules.assignment_problem(principal, body.station, station.assigned)
        if unassigned is not None:
            problems.append(unassigned)
    content = (
        checked[1] if checked else _check_content(session, mission_id, body, settings, received_at)
    )
    problems.extend(content.problems)
    if problems:
        raise rules.invalid(problems)
    assert station is not None and content.template_id is not None
    observer_id = rules.owner(principal, replaced)
    assert observer_id is not None

    row = storage.checklist_row(
        body,
        principal,
        observer_id,
        station.id,
        content.template_id,
        content.answers,
        rules.chain(body.id, replaced),
        content.skew_s,
        received_at,
        raw,
        digest,
        settings,
    )
    new = storage.NewVersion(row, content.answers, body.station, body.attachments)
    nested = session.begin_nested() if savepoint else None
    try:
        if writer == storage.STATEMENT:
            # The station was checked above; the statement finds it again by its code.
            written = storage.write_statement(session, new, settings, must_be_assigned=False)
        else:
            written = storage.write_portable(session, new, settings)
        if not written.stored:
            _rollback(nested)
            replayed = _replay(session, principal, body.id, digest)
            if replayed is None:
                raise rules.corrected_meanwhile(body.replaces)
            return replayed
        if replaced is not None and written.flipped != 1:
            raise rules.corrected_meanwhile(replaced.id)
        if nested:
            nested.commit()
    except IntegrityError as exc:
        _rollback(nested)
        raise rules.corrected_meanwhile(None) from exc
    except Refused:
        _rollback(nested)
        raise
    if replaced is not None:
        actor = audit.Actor(principal.mission_id, principal.credential_id, principal.role.value)
        audit.record_correction(session, actor, replaced.id, body.id, body.answers)
        if row["hold"] is not None:
            review.record_hold(
                session, principal, body.id, replaced.version, row["hold"], row["quarantined"]
            )
    return Outcome(storage.public_of_new(row, body), created=True)


def _rollback(nested: SessionTransaction | None) -> None:
    if nested is not None and nested.is_active:
        nested.rollback()


def _replay(
    session: Session, principal: Principal, checklist_id: uuid.UUID, digest: str
) -> Outcome | None:
    """The stored checklist if this one is a resend of it (raises if the id is taken by
    other content or someone else's checklist); None if the id is not stored."""
    stored = storage.already_stored(session, checklist_id)
    if stored is None:
        return None
    rules.check_replay(
        principal,
        stored.mission_id,
        stored.checklist.observer_id,
        stored.digest,
        checklist_id,
        digest,
    )
    return Outcome(stored.checklist, created=False)


def _check_content(
    session: Session,
    mission_id: uuid.UUID,
    body: ChecklistSubmit,
    settings: Settings,
    received_at: datetime,
) -> _Content:
    """The checks that need neither the station nor the version chain: the template and the
    answers, the phone's clock, the declared attachments."""
    problems: list[rules.FieldProblem] = []
    tpl = template_service.for_intake(session, mission_id, body.template, body.template_version)
    answers: list[AnswerRow] = []
    bad = rules.template_problem(
        body.template,
        body.template_version,
        tpl is not None,
        tpl is not None and tpl.compiled is not None,
    )
    if bad is not None:
        problems.append(bad)
    elif tpl is not None and tpl.compiled is not None:
        answers, answer_errors = tpl.compiled.validate(body.phase.value, body.answers)
        problems.extend(e.as_dict() for e in answer_errors)
    skew_s, clock_problems = rules.clock(
        received_at, body.sent_at, body.observed_at, settings.future_tolerance_s
    )
    problems.extend(clock_problems)
    problems.extend(attachment_service.check_declared(body.attachments, settings))
    return _Content(tpl.id if tpl is not None else None, answers, skew_s, problems)
