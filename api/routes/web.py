"""The observers' web app (web/), served at /app: plain files, no build step."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
# The app keeps a bearer token in the phone's storage: no script but its own may run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class AppFiles(StaticFiles):
    """Static files that phones always revalidate (ETag → 304), so an update is never stuck
    behind a stale cache; the service worker keeps the offline copy."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers.update(SECURITY_HEADERS)
        if str(full_path).endswith("sw.js"):
            response.headers["Service-Worker-Allowed"] = "/app/"
        return response


def mount(app: FastAPI, directory: Path = WEB_DIR) -> None:
    """Serve the app at /app/ (and send /app there, keeping a #token=… fragment)."""
    if not (directory / "index.html").exists():
        return

    @app.get("/app", include_in_schema=False)
    def app_root() -> RedirectResponse:
        return RedirectResponse("/app/", status_code=308)

    app.mount("/app/", AppFiles(directory=directory, html=True), name="app")
