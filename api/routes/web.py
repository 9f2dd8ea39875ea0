"""The browser clients, plain files with no build step: the observers' app (web/) at /app and
the core team's console (web/console/) at /console."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.config import Settings, get_settings

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
CONSOLE_DIR = WEB_DIR / "console"
# Both clients keep a bearer token in the browser's storage: no script but their own may run.
CSP = (
    "default-src 'self'; img-src 'self' blob: data:{tiles}; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP.format(tiles=""),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class AppFiles(StaticFiles):
    """Static files that browsers always revalidate (ETag → 304), so an update is never stuck
    behind a stale cache; the app's service worker keeps the offline copy."""

    headers = SECURITY_HEADERS

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers.update(self.headers)
        if str(full_path).endswith("sw.js"):
            response.headers["Service-Worker-Allowed"] = "/app/"
        return response


def tile_origin(url: str) -> str:
    """The scheme and host the map's tiles come from ('' for none or the server itself)."""
    if not url or url.startswith("/"):
        return ""
    parts = urlsplit(url.replace("{s}", "*"))  # Leaflet's subdomains a, b, c: any of them
    return f"{parts.scheme}://{parts.netloc}"


class ConsoleFiles(AppFiles):
    """The console's files, plus `settings.json`: what the admin configured for it (the map
    tiles, whose origin the page's policy then lets images come from)."""

    def __init__(self, settings: Settings, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        origin = tile_origin(settings.map_tile_url)
        self.headers = SECURITY_HEADERS | {
            "Content-Security-Policy": CSP.format(tiles=f" {origin}" if origin else "")
        }
        self.settings_body = json.dumps(
            {
                "map_tile_url": settings.map_tile_url,
                "map_tile_attribution": settings.map_tile_attribution,
            }
        ).encode()

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path == "settings.json":
            return Response(
                self.settings_body,
                media_type="application/json",
                headers={"Cache-Control": "no-cache", **self.headers},
            )
        return await super().get_response(path, scope)


def mount(app: FastAPI, directory: Path = WEB_DIR, settings: Settings | None = None) -> None:
    """Serve the app at /app/ and the console at /console/ (and send /app and /console
    there, keeping a #token=… fragment: the browser never sends the fragment)."""
    if (directory / "index.html").exists():

        @app.get("/app", include_in_schema=False)
        def app_root() -> RedirectResponse:
            return RedirectResponse("/app/", status_code=308)

        app.mount("/app/", AppFiles(directory=directory, html=True), name="app")

    console = directory / "console"
    if (console / "index.html").exists():

        @app.get("/console", include_in_schema=False)
        def console_root() -> RedirectResponse:
            return RedirectResponse("/console/", status_code=308)

        app.mount(
            "/console/",
            ConsoleFiles(settings or get_settings(), directory=console, html=True),
            name="console",
        )
