"""Bytes a phone spends: the day's work, a checklist, a batch, the web app itself.

    .venv/bin/python -m bench.phone_bytes

Runs the API in-process against a throwaway SQLite database holding the demo mission, and
counts the bytes of each body as it goes over the wire (gzip where the phone asks for it).
Byte counts do not depend on the machine; they change only with the template, the code or
the demo data.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _wire(client: Any, method: str, url: str, **kw: Any) -> tuple[int, bytes, Any]:
    """(compressed bytes on the wire, decoded body, response)."""
    with client.stream(method, url, **kw) as r:
        raw = b"".join(r.iter_raw())
        return len(raw), (gzip.decompress(raw) if r.headers.get("content-encoding") else raw), r


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="pollcheck-bench-"))
    os.environ["POLLCHECK_DATABASE_URL"] = f"sqlite:///{folder / 'bench.db'}"
    os.environ["POLLCHECK_ATTACHMENTS_DIR"] = str(folder / "attachments")
    os.environ["POLLCHECK_RATE_LIMIT_PER_MINUTE"] = "0"
    from fastapi.testclient import TestClient

    from api import migrate
    from api.db import session_scope
    from api.main import create_app
    from api.services import demo
    from tests.factories import checklist_payload

    migrate.upgrade()
    with session_scope() as s:
        tokens = demo.load(s, folder / "credentials.txt")
    token = next(v for k, v in tokens.items() if k.startswith("observer"))
    auth = {"Authorization": f"Bearer {token}"}
    gz = auth | {"Accept-Encoding": "gzip"}
    rows: list[tuple[str, str, str]] = []
    with TestClient(create_app()) as c:
        wire, body, r = _wire(c, "GET", "/sync/day?lang=en", headers=gz)
        day = json.loads(body)
        rows.append(
            (
                "day's work, first download (en)",
                f"{wire:,} B gzip",
                f"{len(body):,} B plain; {len(day['stations'])} stations, "
                f"{sum(len(s['questions']) for s in day['templates'][0]['sections'])} questions",
            )
        )
        etag = r.headers["etag"]
        wire304, _, r304 = _wire(
            c, "GET", "/sync/day?lang=en", headers=gz | {"If-None-Match": etag}
        )
        head = sum(len(k) + len(v) + 4 for k, v in r304.headers.items()) + 17
        rows.append(("day's work, unchanged (304)", f"{head:,} B", "headers only, no body"))
        wire_ru, body_ru, _ = _wire(c, "GET", "/sync/day?lang=ru", headers=gz)
        rows.append(
            ("day's work, first download (ru)", f"{wire_ru:,} B gzip", f"{len(body_ru):,} B plain")
        )

        stations = [s["code"] for s in day["stations"]]
        one = checklist_payload(stations[0], "voting", sent_at=None)
        one.pop("sent_at")
        one_bytes = json.dumps(one, separators=(",", ":")).encode()
        rows.append(
            (
                "one voting checklist, alone",
                f"{len(gzip.compress(one_bytes)):,} B gzip",
                f"{len(one_bytes):,} B plain, {len(one['answers'])} answers",
            )
        )
        batch = [
            checklist_payload(stations[i % len(stations)], ("opening", "voting", "closing")[i % 3])
            for i in range(20)
        ]
        batch_bytes = json.dumps({"items": batch}, separators=(",", ":")).encode()
        batch_gz = gzip.compress(batch_bytes)
        wire_res, res_body, _ = _wire(
            c,
            "POST",
            "/sync/checklists",
            content=batch_bytes,
            headers=gz | {"Content-Type": "application/json"},
        )
        rows.append(
            (
                "batch of 20 checklists (request)",
                f"{len(batch_gz) / 20:,.0f} B per checklist gzip",
                f"{len(batch_gz):,} B gzip as the web app sends it, {len(batch_bytes):,} B plain",
            )
        )
        rows.append(
            (
                "batch of 20 checklists (answer)",
                f"{wire_res / 20:,.0f} B per checklist gzip",
                f"{wire_res:,} B gzip, {len(res_body):,} B plain",
            )
        )

        total_plain = total_wire = 0
        for f in (
            "index.html",
            "style.css",
            "i18n.js",
            "store.js",
            "sha256.js",
            "app.js",
            "sw.js",
            "manifest.webmanifest",
            "icons/icon.svg",
            "icons/icon-192.png",
        ):
            w, b, _ = _wire(c, "GET", f"/app/{f}", headers={"Accept-Encoding": "gzip"})
            total_wire += w
            total_plain += len(b)
        rows.append(
            (
                "web app, first visit (then cached)",
                f"{total_wire:,} B gzip",
                f"{total_plain:,} B plain",
            )
        )

    print("| what | bytes | notes |\n|---|---|---|")
    for what, size, note in rows:
        print(f"| {what} | {size} | {note} |")


if __name__ == "__main__":
    main()
