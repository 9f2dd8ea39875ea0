"""A real ODK engine fills a form Pollcheck serves: ODK Web Forms (`@getodk/web-forms`, the
form engine and UI of ODK Central) in headless Chromium, on a small test page bundled at test
time with Node (npm and esbuild; Node is never needed to run Pollcheck). The page posts
Web Forms' instance to the observer's OpenRosa `/submission`, and the stored checklist must
equal what was filled."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_observer_app import CHROMIUM, CHROMIUM_ARGS, chromium  # noqa: F401
from tests.factories import auth, make_mission, make_observer, make_station
from tests.live_server import live_server

HERE = Path(__file__).parent / "odk_web_forms"
PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'></head><body><div id='app'></div>"
    "<script type='module' src='/odk-test/bundle.js'></script></body></html>"
)

pytestmark = pytest.mark.browser


def _need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        reason = f"no {tool}: the ODK Web Forms test did not run (apt-get install nodejs npm)"
        if os.environ.get("POLLCHECK_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and POLLCHECK_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The test page's script: Web Forms and Vue in one file, built from the pinned lock."""
    npm = _need("npm")
    work = tmp_path_factory.mktemp("odk-web-forms")
    for name in ("package.json", "package-lock.json", "main.js"):
        shutil.copy(HERE / name, work / name)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=work,
        check=True,
        timeout=600,
    )
    out = work / "bundle.js"
    subprocess.run(
        [str(work / "node_modules/.bin/esbuild"), "main.js", "--bundle", "--format=esm",
         f"--outfile={out}", "--log-level=warning", "--define:__VUE_OPTIONS_API__=true",
         "--define:__VUE_PROD_DEVTOOLS__=false",
         "--define:__VUE_PROD_HYDRATION_MISMATCH_DETAILS__=false"],
        cwd=work,
        check=True,
        timeout=300,
    )  # fmt: skip
    return out.read_bytes()


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with live_server() as url:
        yield url


def test_odk_web_forms_fills_a_served_form_and_the_checklist_is_stored_as_filled(
    chromium: Any,  # noqa: F811
    bundle: bytes,
    server: str,
    session: Any,
    client: Any,
) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1", name="School 12")
    _, token = make_observer(session, mission.id, ["S-1"], name="Dana")
    page = chromium.new_page()
    # The page is served as if from Pollcheck's own address, so it reaches the key path
    # as a same-origin page would (no CORS in the way).
    page.route("**/odk-test/page.html?*", lambda r: r.fulfill(body=PAGE, content_type="text/html"))
    page.route(
        "**/odk-test/bundle.js", lambda r: r.fulfill(body=bundle, content_type="text/javascript")
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server}/odk-test/page.html?key={token}&form=default-v1")
    try:
        page.wait_for_function("window.started || window.failed", timeout=10_000)
    except Exception:
        raise AssertionError(errors) from None
    assert page.evaluate("window.failed || null") is None, errors
    page.get_by_text("Incident", exact=True).first.click()
    page.get_by_text("Vote buying", exact=True).click()
    page.get_by_text("Observed by me", exact=True).click()
    question = page.locator(".question-container")
    time_input = question.filter(has_text="Time of the incident").locator("input")
    # The time picker takes no typing: its buttons set a time from the clock of now.
    time_input.click()
    page.get_by_role("button", name="Next Hour").click()
    page.get_by_role("button", name="Next Minute").click()
    shown = time_input.input_value()  # e.g. "09:20 am"
    time_input.press("Escape")
    picked = datetime.strptime(shown.upper(), "%I:%M %p").strftime("%H:%M")
    description = question.filter(has_text="Description").locator("input, textarea")
    description.fill("Money offered at the entrance")
    page.get_by_role("button", name="Send").click()
    try:
        page.wait_for_function("window.submitted", timeout=15_000)
    except Exception:
        raise AssertionError(errors) from None
    sent = page.evaluate("window.submitted")
    assert sent["status"] == 201, sent
    assert "Checklist received" in sent["body"]
    (stored,) = client.get("/me/checklists", headers=auth(token)).json()["data"]
    detail = client.get(f"/checklists/{stored['id']}", headers=auth(token)).json()
    assert (detail["station"], detail["phase"], detail["template"]) == (
        "S-1",
        "incident",
        "default",
    )
    assert detail["answers"] == {
        "G1": "vote_buying",
        "G2": "observed",
        "G3": picked,
        "G4": "Money offered at the entrance",
    }
    assert errors == [], errors
