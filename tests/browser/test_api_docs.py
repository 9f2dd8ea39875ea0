"""/docs and /redoc in headless Chromium with every request off 127.0.0.1 refused: both
pages draw the API from Pollcheck's own files, as on a mission's LAN without internet."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.test_observer_app import chromium  # noqa: F401 (the fixture)
from tests.live_server import live_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with live_server() as url:
        yield url


@pytest.mark.parametrize(
    ("page_path", "title"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")]
)
def test_the_api_docs_draw_with_no_internet(
    chromium: Any,  # noqa: F811 (the fixture)
    server: str,
    page_path: str,
    title: str,
) -> None:
    context = chromium.new_context()
    elsewhere: list[str] = []

    def only_here(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_here)
    page = context.new_page()
    page.goto(server + page_path)
    page.wait_for_selector(f"{title}:has-text('Pollcheck')", timeout=30_000)
    context.close()
    assert elsewhere == []
