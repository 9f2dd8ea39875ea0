"""The API documentation pages, /docs (Swagger UI) and /redoc, served with their scripts
from Pollcheck itself (web/apidocs/, listed in its VENDORED.md): FastAPI's default pages load
them from a CDN, which leaves a blank page on a mission's LAN without internet."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).resolve().parents[2] / "web" / "apidocs"
PREFIX = "/apidocs"
SWAGGER_UI = f"{PREFIX}/swagger-ui-dist-5.35.0"
REDOC = f"{PREFIX}/redoc-2.5.4"
# Nothing from elsewhere, even what the libraries ask for themselves (ReDoc shows a logo
# from cdn.redoc.ly): the pages behave the same with and without internet. Both pages start
# their library from an inline script; ReDoc searches in a worker made from a blob.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


def mount(app: FastAPI) -> None:
    """Serve /docs, /redoc and their files (the app is made with docs_url=redoc_url=None)."""
    app.mount(PREFIX, StaticFiles(directory=ASSETS_DIR), name="apidocs")

    def at(request: Request, path: str) -> str:
        """`path` on this server, behind a proxy's root path too."""
        return str(request.scope.get("root_path", "")) + path

    spec = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=at(request, spec),
            title=f"{app.title} API",
            swagger_js_url=at(request, f"{SWAGGER_UI}/swagger-ui-bundle.js"),
            swagger_css_url=at(request, f"{SWAGGER_UI}/swagger-ui.css"),
            swagger_favicon_url=at(request, f"{SWAGGER_UI}/favicon-32x32.png"),
            # No badge from validator.swagger.io: it is a request to the internet.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _local_only(page)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=at(request, spec),
            title=f"{app.title} API",
            redoc_js_url=at(request, f"{REDOC}/redoc.standalone.js"),
            redoc_favicon_url=at(request, f"{SWAGGER_UI}/favicon-32x32.png"),
            with_google_fonts=False,
        )
        return _local_only(page)
