"""Attachments: files a checklist declares, uploaded afterwards, resumable, content-addressed.

A checklist names each file with its SHA-256, size and type; the phone then uploads the
bytes with `PUT`, in one piece or in ranges, and may resume after a dropped connection from
the offset the server reports. The bytes go to disk, never to the database:

    <attachments_dir>/<mission id>/partial/<sha256>   bytes received so far
    <attachments_dir>/<mission id>/blobs/<aa>/<sha256> the checked file

A file is stored once per mission whatever the number of checklists (or corrections) that
declare it. Concurrent uploads of one file are kept apart by an advisory lock on the
partial file, so two API processes on one machine never interleave their writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.config import Settings
from api.deps import Principal
from api.errors import Conflict, Invalid, NotFound
from models import Attachment, Checklist
from models.attachment import AttachmentDeclared, AttachmentsStatus, AttachmentStatus
from models.base import table_of, utcnow

AT = table_of(Attachment)
CL = table_of(Checklist)
RANGE_RE = re.compile(r"bytes (\d{1,15})-(\d{1,15})/(\d{1,15})")


def check_declared(
    declared: list[AttachmentDeclared] | None, settings: Settings
) -> list[dict[str, Any]]:
    """Every problem with the files a checklist declares, as field errors."""
    errors: list[dict[str, Any]] = []
    if not declared:
        return errors
    if len(declared) > settings.attachments_per_checklist:
        errors.append(
            _err(
                ["attachments"],
                "too_many_attachments",
                f"{len(declared)} files declared; at most "
                f"{settings.attachments_per_checklist} per checklist",
            )
        )
    seen: set[str] = set()
    for i, a in enumerate(declared):
        if a.name in seen:
            errors.append(
                _err(["attachments", i, "name"], "repeated_name", f"{a.name!r} is declared twice")
            )
        seen.add(a.name)
        if a.size > settings.attachment_max_bytes:
            errors.append(
                _err(
                    ["attachments", i, "size"],
                    "file_too_large",
                    f"{a.name} has {a.size} bytes; the limit is "
                    f"{settings.attachment_max_bytes} bytes",
                )
            )
    return errors


def record_declared(
    session: Session,
    settings: Settings,
    mission_id: uuid.UUID,
    checklist_id: uuid.UUID,
    declared: list[AttachmentDeclared] | None,
) -> None:
    """Rows for the declared files; a file the mission already holds counts as uploaded."""
    if not declared:
        return
    now = utcnow()
    session.execute(
        AT.insert(),
        [
            {
                "id": uuid.uuid4(),
                "checklist_id": checklist_id,
                "mission_id": mission_id,
                "name": a.name,
                "sha256": a.sha256,
                "size": a.size,
                "content_type": a.content_type,
                "declared_at": now,
                "stored_at": now if _blob_size(settings, mission_id, a.sha256) == a.size else None,
            }
            for a in declared
        ],
    )


@dataclass(frozen=True, slots=True)
class Target:
    """A declared file as an upload or download needs it."""

    mission_id: uuid.UUID
    checklist_id: uuid.UUID
    name: str
    sha256: str
    size: int
    content_type: str
    stored: bool

    def status(self, received: int, complete: bool) -> AttachmentStatus:
        return AttachmentStatus(
            name=self.name,
            sha256=self.sha256,
            size=self.size,
            content_type=self.content_type,
            received=received,
            complete=complete,
        )


def find(session: Session, principal: Principal, checklist_id: uuid.UUID, name: str) -> Target:
    """The declared file `name` of a checklist the caller may read, or 404."""
    row = session.execute(
        select(
            AT.c.mission_id,
            AT.c.sha256,
            AT.c.size,
            AT.c.content_type,
            AT.c.stored_at,
        )
        .select_from(AT.join(CL, CL.c.id == AT.c.checklist_id))
        .where(
            AT.c.checklist_id == checklist_id,
            AT.c.name == name,
            _visible(principal),
        )
    ).first()
    if row is None:
        _visible_checklist(session, principal, checklist_id)
        raise NotFound(
            f"checklist {checklist_id} declares no file {name!r}; declare it in the checklist's "
            "`attachments` first",
            code="attachment_not_declared",
        )
    return Target(
        row.mission_id,
        checklist_id,
        name,
        row.sha256,
        row.size,
        row.content_type,
        row.stored_at is not None,
    )


def status(
    session: Session, principal: Principal, checklist_id: uuid.UUID, settings: Settings
) -> AttachmentsStatus:
    """The files a checklist declares, how much of each has arrived, and which are missing."""
    _visible_checklist(session, principal, checklist_id)
    rows = session.execute(
        select(AT).where(AT.c.checklist_id == checklist_id).order_by(AT.c.name)
    ).all()
    data = []
    for r in rows:
        complete = r.stored_at is not None
        received = r.size if complete else _partial_size(settings, r.mission_id, r.sha256)
        data.append(
            AttachmentStatus(
                name=r.name,
                sha256=r.sha256,
                size=r.size,
                content_type=r.content_type,
                received=received,
                complete=complete,
            )
        )
    return AttachmentsStatus(
        checklist_id=checklist_id,
        data=data,
        missing=[a.name for a in data if not a.complete],
    )


def missing_by_checklist(
    session: Session, checklist_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """Names of the files not yet uploaded, per checklist (only checklists with some)."""
    ids = list(checklist_ids)
    out: dict[uuid.UUID, list[str]] = {}
    if not ids:
        return out
    rows = session.execute(
        select(AT.c.checklist_id, AT.c.name)
        .where(AT.c.checklist_id.in_(ids), AT.c.stored_at.is_(None))
        .order_by(AT.c.checklist_id, AT.c.name)
    )
    for cid, name in rows:
        out.setdefault(cid, []).append(name)
    return out


def mark_stored(session: Session, mission_id: uuid.UUID, sha256: str) -> None:
    """Every declaration of this content in the mission is now complete."""
    session.execute(
        update(AT)
        .where(AT.c.mission_id == mission_id, AT.c.sha256 == sha256, AT.c.stored_at.is_(None))
        .values(stored_at=utcnow())
    )


# --- the bytes on disk ------------------------------------------------------------------


def blob_path(settings: Settings, mission_id: uuid.UUID, sha256: str) -> Path:
    return settings.attachments_dir / str(mission_id) / "blobs" / sha256[:2] / sha256


def partial_path(settings: Settings, mission_id: uuid.UUID, sha256: str) -> Path:
    return settings.attachments_dir / str(mission_id) / "partial" / sha256


def _blob_size(settings: Settings, mission_id: uuid.UUID, sha256: str) -> int | None:
    try:
        return blob_path(settings, mission_id, sha256).stat().st_size
    except FileNotFoundError:
        return None


def _partial_size(settings: Settings, mission_id: uuid.UUID, sha256: str) -> int:
    try:
        return partial_path(settings, mission_id, sha256).stat().st_size
    except FileNotFoundError:
        return 0


def parse_range(header: str | None, size: int) -> tuple[int, int | None]:
    """(first byte, length or None) from `Content-Range: bytes a-b/total`; no header = whole."""
    if header is None:
        return 0, None
    m = RANGE_RE.fullmatch(header.strip())
    problem = None
    if m is None:
        problem = "expected `bytes <first>-<last>/<total>`"
    else:
        first, last, total = (int(g) for g in m.groups())
        if total != size:
            problem = f"the total {total} is not the declared size {size}"
        elif first > last or last >= size:
            problem = f"the range {first}-{last} is not inside 0-{size - 1}"
        else:
            return first, last - first + 1
    raise invalid(
        f"bad Content-Range: {problem}", "bad_content_range", ["header", "content-range"], problem
    )


def check_type(target: Target, content_type: str | None) -> None:
    """The upload's Content-Type must be the declared one (or say nothing in particular)."""
    sent = (content_type or "").split(";")[0].strip().lower()
    if sent not in ("", "application/octet-stream", target.content_type):
        raise invalid(
            f"{target.name} was declared as {target.content_type}, not {sent}",
            "content_type_mismatch",
            ["header", "content-type"],
            f"send {target.content_type} or application/octet-stream",
        )


def check_length(length: int | None, written: int) -> None:
    if length is not None and written != length:
        raise invalid(
            f"Content-Range announced {length} bytes, the body had {written}",
            "range_length_mismatch",
            ["header", "content-range"],
            f"the body had {written} bytes",
        )


def on_disk(settings: Settings, target: Target) -> bool:
    return _blob_size(settings, target.mission_id, target.sha256) == target.size


class Upload:
    """One write into a partial file, under an exclusive lock, from a given offset."""

    def __init__(self, settings: Settings, target: Target, first: int) -> None:
        self.target = target
        self.path = partial_path(settings, target.mission_id, target.sha256)
        self.blob = blob_path(settings, target.mission_id, target.sha256)
        self.first = first
        self.written = 0
        self._file: Any = None

    @contextlib.contextmanager
    def open(self) -> Iterator[Upload]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise Conflict(
                    f"{self.target.name} is being uploaded by another request; retry shortly",
                    code="upload_in_progress",
                    headers={"Retry-After": "2"},
                ) from exc
            held = os.fstat(fd).st_size
            if self.first > held:
                raise Conflict(
                    f"the server holds {held} bytes of {self.target.name}; resume from byte {held}",
                    code="wrong_offset",
                    headers={"Upload-Offset": str(held)},
                )
            self._file = os.fdopen(fd, "r+b", closefd=False)
            self._file.seek(self.first)
            yield self
        finally:
            if self._file is not None:
                self._file.flush()
                os.fsync(fd)
                self._file.close()
            os.close(fd)  # also releases the lock

    def write(self, chunk: bytes) -> None:
        if self.first + self.written + len(chunk) > self.target.size:
            self._file.truncate(self.first + self.written)
            raise invalid(
                f"{self.target.name} was declared with {self.target.size} bytes; more were sent",
                "larger_than_declared",
                ["body"],
                f"at most {self.target.size - self.first} bytes from byte {self.first}",
            )
        self._file.write(chunk)
        self.written += len(chunk)

    def held(self) -> int:
        self._file.flush()
        return int(os.fstat(self._file.fileno()).st_size)

    def finish(self) -> bool:
        """When every byte is here: check the hash and keep the file. True if now complete."""
        if self.held() < self.target.size:
            return False
        self._file.flush()
        self._file.seek(0)
        digest = hashlib.sha256()
        for block in iter(lambda: self._file.read(1 << 20), b""):
            digest.update(block)
        if digest.hexdigest() != self.target.sha256:
            self._file.truncate(0)
            raise invalid(
                f"the bytes received for {self.target.name} do not match its declared SHA-256; "
                "they were discarded, upload the file again from byte 0",
                "hash_mismatch",
                ["body"],
                f"got sha256 {digest.hexdigest()}",
            )
        self.blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, self.blob)
        dir_fd = os.open(self.blob.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True


def _visible_checklist(session: Session, principal: Principal, checklist_id: uuid.UUID) -> None:
    found = session.scalar(select(CL.c.id).where(CL.c.id == checklist_id, _visible(principal)))
    if found is None:
        raise NotFound(f"no checklist {checklist_id} that you may read", code="checklist_not_found")


def _visible(principal: Principal) -> Any:
    # Imported here: the intake (which records declared files with this module) is imported
    # by `checklists`, and this module is imported by the intake.
    from api.services.checklists import _visible as visible

    return visible(principal)


def _err(path: list[str | int], code: str, message: str) -> dict[str, Any]:
    return {"path": path, "code": code, "message": message}


def invalid(detail: str, code: str, path: list[str | int], message: str) -> Invalid:
    """A 422 naming the one field (header, body) at fault."""
    return Invalid(detail, code=code, errors=[_err(path, code, message)])
