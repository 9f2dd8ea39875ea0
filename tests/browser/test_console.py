"""The core team's console in headless Chromium against a real server: an analyst watches a
checklist arrive without a reload, opens it from the critical feed and rejects it, and the
findings follow; a viewer gets no review controls; the statement's evidence opens the
checklists behind it; nothing is loaded from outside the server; axe-core finds no serious
accessibility problem.

Set POLLCHECK_SCREENSHOTS=<folder> to keep a screenshot of each page at 1366×768 and
1024×768 (a tablet)."""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from models import Role
from tests.browser import test_observer_app as observer_app
from tests.factories import (
    answers_for,
    auth,
    checklist_payload,
    make_mission,
    make_observer,
    make_station,
    make_token,
)
from tests.findings_factories import GOOD_COUNT
from tests.live_server import live_server

chromium = observer_app.chromium  # the same headless Chromium fixture

pytestmark = pytest.mark.browser

LAPTOP = {"viewport": {"width": 1366, "height": 768}}
TABLET = {"viewport": {"width": 1024, "height": 768}, "has_touch": True}
AXE = Path(__file__).parent / "vendor" / "axe-core-4.10.2" / "axe.min.js"
PAGES = [
    "overview",
    "findings",
    "critical",
    "incidents",
    "counting",
    "queue",
    "statement",
    "sms",
    "exports",
]
SHOTS = os.environ.get("POLLCHECK_SCREENSHOTS")


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with live_server() as url:
        yield url


@pytest.fixture
def field(session: Any) -> dict[str, Any]:
    """A mission with three stations in the capital (with coordinates) and one abroad, an
    observer for all of them, an analyst and a viewer."""
    mission, admin = make_mission(session)
    for i in range(1, 4):
        make_station(session, mission.id, f"AST-00{i}", latitude=51.10 + i / 100, longitude=71.40)
    make_station(session, mission.id, "X-001", country="Turkey", post="Embassy in Ankara")
    _, observer = make_observer(session, mission.id, ["AST-001", "AST-002", "AST-003", "X-001"])
    return {
        "mission": mission,
        "admin": admin,
        "observer": observer,
        "analyst": make_token(session, mission.id, Role.analyst),
        "viewer": make_token(session, mission.id, Role.viewer),
    }


def _post(
    server: str,
    token: str,
    station: str,
    phase: str,
    photo: bytes | None = None,
    replaces: str | None = None,
    **answers: Any,
) -> str:
    body = checklist_payload(station, phase, answers_for(phase, answers))
    if replaces:
        body["replaces"] = replaces
    if photo is not None:
        digest = hashlib.sha256(photo).hexdigest()
        body["attachments"] = [
            {"name": "photo.png", "sha256": digest, "size": len(photo), "content_type": "image/png"}
        ]
    r = httpx.post(f"{server}/checklists", json=body, headers=auth(token))
    assert r.status_code == 201, r.text
    if photo is not None:
        up = httpx.put(
            f"{server}/checklists/{body['id']}/attachments/photo.png",
            content=photo,
            headers=auth(token) | {"Content-Type": "image/png"},
        )
        assert up.status_code == 201, up.text
    return str(body["id"])


def _open(chromium: Any, server: str, token: str, size: dict[str, Any] = LAPTOP) -> Any:
    context = chromium.new_context(**size)
    page = context.new_page()
    page.goto(f"{server}/console/#token={token}")
    page.locator("#p-coverage table").wait_for()
    assert "token" not in page.url  # the fragment leaves the address bar at once
    return context, page


def _loaded(page: Any) -> None:
    page.locator("main h1").wait_for()
    page.wait_for_function("() => !document.querySelector('main .loading')", timeout=20_000)


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def _findings_text(page: Any) -> str:
    page.goto(page.url.split("#")[0] + "#/findings")
    page.locator("#p-findings .q").first.wait_for()
    return str(page.locator("#p-findings").inner_text())


def test_analyst_sees_a_checklist_arrive_opens_it_from_the_feed_and_rejects_it(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    _post(server, field["observer"], "AST-001", "opening")
    context, page = _open(chromium, server, field["analyst"])
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.locator("#live.live, #live.polling").wait_for()

    # Posted through the API while the console is open: it appears without a reload.
    crit = _post(server, field["observer"], "AST-002", "voting", C6="yes")
    item = page.locator(f"#feed li[data-id='{crit}']")
    item.wait_for(timeout=20_000)
    assert "AST-002" in item.inner_text()
    _shot(page, "overview-1366")
    before = _findings_text(page)
    assert "C6. Did the same person assist several voters?" in before

    page.go_back()
    page.locator(f"#feed li[data-id='{crit}'] a").click()
    page.locator(".review").wait_for()
    assert f"#/checklist/{crit}" in page.url
    assert "AST-002" in page.locator("h1").inner_text()

    # Keyboard: 3 picks "Reject", the comment is typed, Ctrl+Enter saves.
    page.locator(".review [data-decision='verified']").focus()
    page.keyboard.press("3")
    rejected = page.locator(".review [data-decision='rejected']")
    assert rejected.get_attribute("aria-pressed") == "true"
    page.locator(".review textarea").fill("The station was closed at that hour")
    _shot(page, "checklist-1366")
    page.keyboard.press("Control+Enter")
    page.get_by_text("The station was closed at that hour").wait_for()
    page.locator("#state", has_text="Rejected").wait_for()

    shown = httpx.get(f"{server}/checklists/{crit}", headers=auth(field["analyst"])).json()
    assert shown["review_state"] == "rejected"
    # The rejected checklist no longer counts: the findings panel changes.
    page.goto(page.url.split("#")[0] + "#/findings")
    page.wait_for_function(
        "() => !document.querySelector('#p-findings').innerText.includes('C6. Did the same')",
        timeout=20_000,
    )
    assert errors == []
    context.close()


def test_a_decision_taken_meanwhile_is_told_and_the_comment_kept(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    crit = _post(server, field["observer"], "AST-003", "voting", C6="yes")
    context, page = _open(chromium, server, field["analyst"])
    page.goto(f"{server}/console/#/queue")
    row = page.locator(f"#queue tr[data-id='{crit}']")
    # The server ranks the queue: a critical answer is a reason as soon as it is stored.
    row.locator(".badge", has_text="Critical answer").wait_for(timeout=20_000)
    _shot(page, "queue-1366")
    row.focus()
    page.keyboard.press("Enter")
    page.locator("#queue .review").wait_for()
    page.keyboard.press("1")
    page.locator("#queue .review textarea").fill("Checked by phone with the observer")
    # Another analyst decides first.
    r = httpx.post(
        f"{server}/checklists/{crit}/review",
        json={"state": "has_issues", "comment": "calling", "expected_state": "received"},
        headers=auth(field["analyst"]),
    )
    assert r.status_code == 201, r.text
    page.locator("#queue .review button[type='submit']").click()
    alert = page.locator("#queue .review .error")
    alert.wait_for()
    assert "Another analyst reviewed this checklist meanwhile" in alert.inner_text()
    assert "now has_issues" in alert.inner_text()
    assert page.locator("#queue .review textarea").input_value() == (
        "Checked by phone with the observer"
    )
    history = httpx.get(f"{server}/checklists/{crit}/reviews", headers=auth(field["analyst"]))
    assert [e["comment"] for e in history.json()["data"]] == ["calling"]
    context.close()


def test_the_queue_shows_the_most_urgent_first_a_page_at_a_time(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    plain = [_post(server, field["observer"], "AST-002", "voting") for _ in range(101)]
    crit = _post(server, field["observer"], "AST-003", "voting", C6="yes")
    context, page = _open(chromium, server, field["analyst"])
    page.goto(f"{server}/console/#/queue")
    page.locator("#h-queue", has_text="102 checklists").wait_for(timeout=20_000)
    rows = page.locator("#queue tbody tr[data-id]")
    assert rows.first.get_attribute("data-id") == crit  # posted last, listed first
    assert rows.count() == 100
    assert page.locator("#queue", has_text="100 shown.").count() == 1
    page.get_by_role("button", name="Show more").click()
    page.locator("#queue", has_text="102 shown.").wait_for()
    assert page.get_by_role("button", name="Show more").is_hidden()
    assert {r.get_attribute("data-id") for r in rows.all()} == {crit, *plain}
    _shot(page, "queue-more-1366")
    page.select_option("#q-reason", "critical")
    page.locator("#h-queue", has_text="1 checklist").wait_for()
    assert [r.get_attribute("data-id") for r in rows.all()] == [crit]
    # The critical answer in words: its question's label and its answer's.
    assert "Did the same person assist several voters? — Yes" in rows.first.inner_text()
    page.fill("#q-station", "AST-002")
    page.press("#q-station", "Enter")
    page.locator("#queue", has_text="Nothing waiting for review.").wait_for()
    context.close()


def test_checklist_page_shows_versions_side_by_side_with_the_change_marked(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    first = _post(server, field["observer"], "AST-001", "voting", C6="yes")
    second = _post(server, field["observer"], "AST-001", "voting", replaces=first, C6="no")
    context, page = _open(chromium, server, field["analyst"])
    page.goto(f"{server}/console/#/checklist/{second}")
    table = page.locator("table.answers")
    table.wait_for()
    assert [th.inner_text().split(" ·")[0] for th in table.locator("th").all()][1:] == ["v1", "v2"]
    changed = table.locator("tr.changed")
    assert changed.count() == 1
    assert changed.inner_text().split("\t") == [
        "C6. Did the same person assist several voters?",
        "Yes",
        "No",
    ]
    assert changed.locator(".diff").inner_text() == "No"
    context.close()


def test_viewer_has_no_review_controls_and_a_forced_review_is_refused(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    crit = _post(server, field["observer"], "AST-001", "voting", C6="yes")
    context, page = _open(chromium, server, field["viewer"], TABLET)
    page.locator("#feed li").first.wait_for()
    _shot(page, "overview-viewer-1024")
    assert page.get_by_role("link", name="Review queue").count() == 0
    assert page.locator("#feed a").count() == 0  # viewers cannot open checklists
    for name in PAGES:
        page.goto(f"{server}/console/#/{name}")
        _loaded(page)
        assert page.locator(".review, [data-decision]").count() == 0
    r = httpx.post(
        f"{server}/checklists/{crit}/review",
        json={"state": "rejected", "comment": "forced"},
        headers=auth(field["viewer"]),
    )
    assert r.status_code == 403

    # The admin revokes the viewer's token: the open console shows the sign-in page.
    me = httpx.get(f"{server}/me", headers=auth(field["viewer"])).json()
    mission = field["mission"].id
    revoked = httpx.post(
        f"{server}/missions/{mission}/credentials/{me['credential_id']}/revoke",
        headers=auth(field["admin"]),
    )
    assert revoked.status_code == 200, revoked.text
    page.goto(f"{server}/console/#/overview")
    page.get_by_text("Your sign-in is no longer valid").wait_for(timeout=20_000)
    page.locator("#token").wait_for()
    context.close()


def test_teams_not_reported_count_a_station_covered_once_any_member_reported(
    chromium: Any, server: str, session: Any
) -> None:
    """Observers work in pairs: the overview's missing teams count the team's stations no
    member reported from (a station both are assigned, reported by one, is covered), with
    each member's own figures beside them; an observer without a team is a team of one."""
    mission, _ = make_mission(session)
    for code in ("P-1", "P-2", "P-3", "P-4"):
        make_station(session, mission.id, code)
    _, first = make_observer(session, mission.id, ["P-1", "P-2"], code="PAIR-1", team="Pair")
    make_observer(session, mission.id, ["P-2", "P-3"], code="PAIR-2", team="Pair")
    make_observer(session, mission.id, ["P-4"], code="SOLO", team=None)
    _post(server, first, "P-2", "voting")
    context, page = _open(chromium, server, make_token(session, mission.id, Role.analyst))
    panel = page.locator("#p-missing")
    pair = panel.locator("tr", has_text="Pair")
    pair.get_by_text("2 / 3").wait_for(timeout=20_000)  # the fold has counted the visit
    cells = pair.locator("td").all_inner_texts()
    if SHOTS:
        panel.screenshot(path=str(Path(SHOTS) / "missing-teams-1366.png"))
    assert cells[0] == "Pair" and cells[3] == "P-1, P-3", cells
    assert "(PAIR-1): 1/2" in cells[1] and "(PAIR-2): 2/2" in cells[1], cells
    solo = panel.locator("tr", has_text="SOLO").locator("td").all_inner_texts()
    assert solo[0] == "(no team)" and solo[2] == "1 / 1" and solo[3] == "P-4", solo
    context.close()


def test_statement_evidence_links_open_the_checklists_behind_it(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    photo = (Path(__file__).parents[2] / "web" / "icons" / "icon-192.png").read_bytes()
    crit = _post(server, field["observer"], "AST-002", "voting", photo=photo, C6="yes")
    context, page = _open(chromium, server, field["analyst"])
    page.goto(f"{server}/console/#/statement")
    evidence = page.locator(f"#statement .evidence a[href='#/checklist/{crit}']")
    evidence.first.wait_for()
    _shot(page, "statement-1366")
    evidence.first.click()
    page.locator("h1", has_text="AST-002").wait_for()
    assert page.url.endswith(f"#/checklist/{crit}")
    # The photo is shown (fetched with the token: an <img> could not send it).
    shown = page.locator("img[alt='Attachment photo.png']")
    shown.wait_for()
    assert shown.evaluate("img => img.decode().then(() => img.naturalWidth)") == 192

    # Russian: the same evidence, the statement in the other language.
    page.goto(f"{server}/console/#/statement")
    page.locator("#st-lang").select_option("ru")
    page.locator("#statement h2", has_text="Проект").wait_for()
    assert page.locator(f"#statement .evidence a[href='#/checklist/{crit}']").count() >= 1
    # As a Word document, for the night's drafting: a .docx (a zip with word/document.xml).
    with page.expect_download() as got:
        page.locator("#st-docx").click()
    assert got.value.suggested_filename == "statement-ru.docx"
    with zipfile.ZipFile(got.value.path()) as docx:
        assert "Проект" in docx.read("word/document.xml").decode()
    context.close()


def test_console_loads_every_page_with_nothing_from_outside_the_server(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    _post(server, field["observer"], "AST-001", "closing")
    context = chromium.new_context(**LAPTOP)
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if urlsplit(route.request.url).hostname != "127.0.0.1":
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", only_local)
    page = context.new_page()
    page.goto(f"{server}/console/#token={field['analyst']}")
    page.locator("#p-coverage table").wait_for()
    page.locator("#map .leaflet-interactive").first.wait_for()
    for name in PAGES:
        page.goto(f"{server}/console/#/{name}")
        _loaded(page)
    assert outside == []

    # The database away (503s): the page says it is reconnecting, and recovers.
    context.route(
        re.compile(r".*/missions/.*"),
        lambda route: route.fulfill(status=503, body='{"error": "ServiceUnavailable"}'),
    )
    page.goto(f"{server}/console/#/overview")
    page.locator("#live.reconnecting").wait_for(timeout=20_000)
    page.get_by_text("Not live: the server or its database cannot be reached").wait_for()
    context.unroute(re.compile(r".*/missions/.*"))
    page.locator("#live.live, #live.polling").wait_for(timeout=70_000)
    assert page.locator("#stale-note").count() == 0
    context.close()


def _with_lag_headers(
    chromium: Any, server: str, field: dict[str, Any], lag: dict[str, str]
) -> tuple[Any, Any, Any]:
    """The console of a mission with a checklist, every view answered with the headers in
    `lag` (changed by the caller as it goes; with a key `refuse`, refused instead, as over
    a token's limit); its context, page and lag note, once shown."""
    _post(server, field["observer"], "AST-001", "voting")
    context = chromium.new_context(**LAPTOP)

    def lagging(route: Any) -> None:
        if "refuse" in lag:
            body = '{"error": "TooManyRequests", "detail": "slow down"}'
            route.fulfill(status=429, body=body, headers={"Content-Type": "application/json"})
            return
        response = route.fetch()
        route.fulfill(response=response, headers=response.headers | lag)

    context.route(re.compile(r".*/missions/[^/]+/(findings|statement).*"), lagging)
    page = context.new_page()
    page.goto(f"{server}/console/#token={field['viewer']}")
    page.locator("#p-coverage table").wait_for()
    note = page.locator("#lag")
    note.wait_for()
    return context, page, note


def test_a_replica_far_behind_is_said_in_the_header_and_a_close_one_is_not(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    """With the dashboards on a streaming replica every view carries `X-Replica-Lag`
    (tests/test_scale_out.py reads it from a real replica); here the answers are given the
    header in the browser, so that the console's reading of it is what is tested."""
    lag = {"x-replica-lag": "42.250"}
    context, page, note = _with_lag_headers(chromium, server, field, lag)
    assert note.inner_text() == "Figures 42 s behind (read from a replica)"
    _shot(page, "replica-lag")
    page.set_viewport_size(TABLET["viewport"])  # still in the header on a tablet
    assert note.is_visible()
    _shot(page, "replica-lag-tablet")
    page.set_viewport_size(LAPTOP["viewport"])
    lag["x-replica-lag"] = "0.400"  # caught up: the note goes with the next view read
    page.goto(f"{server}/console/#/findings")
    _loaded(page)
    note.wait_for(state="hidden")
    context.close()


def test_findings_far_behind_the_checklists_are_said_in_the_header_in_the_console_s_language(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    """Every view carries `X-Findings-Lag` (tests/api/test_data_version.py reads it from the
    server); at the peak of the day the findings may trail the checklists received by more
    than a few seconds, and the console says so, or says the replica's lag when that is the
    larger."""
    lag = {"x-findings-lag": "14.200"}
    context, page, note = _with_lag_headers(chromium, server, field, lag)
    assert note.inner_text() == "Findings 14 s behind the checklists received"
    _shot(page, "findings-lag")

    def shown_after(headers: dict[str, str], route: str) -> str:
        was = note.text_content()
        lag.clear()
        lag.update(headers)
        page.goto(f"{server}/console/#/{route}")
        _loaded(page)
        page.wait_for_function("was => document.getElementById('lag').textContent !== was", arg=was)
        return str(note.text_content())

    assert shown_after({"x-findings-lag": "310"}, "findings") == (
        "Findings 5 min behind the checklists received"
    )
    # Read from a replica, the findings' lag includes the replica's: the replica is the
    # cause unless the findings are further behind than it by a few seconds.
    replica = {"x-findings-lag": "44.0", "x-replica-lag": "42.0"}
    assert shown_after(replica, "") == "Figures 44 s behind (read from a replica)"
    fold = {"x-findings-lag": "60.0", "x-replica-lag": "6.0"}
    assert shown_after(fold, "findings") == "Findings 60 s behind the checklists received"
    both = {"x-findings-lag": "2.0", "x-replica-lag": "42.0"}
    assert shown_after(both, "") == "Figures 42 s behind (read from a replica)"
    assert shown_after({"x-findings-lag": "1.5"}, "findings") == ""  # within a few seconds
    assert note.is_hidden()
    assert shown_after({"x-findings-lag": "9.0"}, "") == (
        "Findings 9 s behind the checklists received"
    )
    lag["refuse"] = "yes"  # an answer that is not a view's says nothing of the lag
    page.goto(f"{server}/console/#/findings")
    page.get_by_text("slow down").first.wait_for()
    assert note.text_content() == "Findings 9 s behind the checklists received"
    lag.pop("refuse")
    # On a page that reads no view (any view read now would hide the note), a language
    # switch says the last view's note in the new language.
    page.goto(f"{server}/console/#/exports")
    _loaded(page)
    lag.clear()
    page.locator("#tools select").first.select_option("ru")
    page.get_by_text("Результаты отстают от поступивших анкет на 9 с").wait_for()
    page.set_viewport_size(TABLET["viewport"])  # the longest of the notes, on a tablet
    assert note.is_visible()
    _shot(page, "findings-lag-ru-tablet")
    page.get_by_role("button", name="Выйти").click()  # signed out: no mission, no note
    page.locator("#token").wait_for()
    assert note.is_hidden()
    context.close()


def test_event_stream_is_followed_from_its_last_id_and_a_proxy_that_cuts_it_means_polling(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    """The events route as its contract says (emulated here, so that the console is proven
    against the contract whether or not the server has the route): each stream is cut at
    once, as a proxy that drops streams would; the console resumes from the last id it saw,
    then falls back to polling. An `unauthorized` event shows the sign-in page."""
    asked: list[dict[str, str]] = []

    def cut_stream(route: Any) -> None:
        asked.append(route.request.headers)
        n = len(asked)
        body = (
            f'retry: 500\nid: {n}\nevent: hello\ndata: {{"data_version": 0, '
            f'"server_time": "2026-12-04T00:00:00Z"}}\n\n: keepalive\n\n'
        )
        route.fulfill(status=200, body=body, headers={"Content-Type": "text/event-stream"})

    context = chromium.new_context(**LAPTOP)
    context.route(re.compile(r".*/missions/[^/]+/events$"), cut_stream)
    page = context.new_page()
    page.goto(f"{server}/console/#token={field['analyst']}")
    page.locator("#live.polling").wait_for(timeout=20_000)
    assert len(asked) == 3
    assert "last-event-id" not in asked[0]
    assert [h.get("last-event-id") for h in asked[1:]] == ["1", "2"]
    assert all(h["authorization"] == f"Bearer {field['analyst']}" for h in asked)
    context.close()

    context = chromium.new_context(**LAPTOP)
    context.route(
        re.compile(r".*/missions/[^/]+/events$"),
        lambda route: route.fulfill(
            status=200,
            body="event: unauthorized\ndata: {}\n\n",
            headers={"Content-Type": "text/event-stream"},
        ),
    )
    page = context.new_page()
    page.goto(f"{server}/console/#token={field['analyst']}")
    page.get_by_text("Your sign-in is no longer valid").wait_for(timeout=20_000)
    context.close()


def test_no_serious_accessibility_violations_on_any_page(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    # One size in the suite (the checks do not depend on it); both when taking screenshots.
    for size in [LAPTOP, TABLET] if SHOTS else [LAPTOP]:
        _check_every_page(chromium, server, field, size)


def _check_every_page(
    chromium: Any, server: str, field: dict[str, Any], size: dict[str, Any]
) -> None:
    crit = _post(server, field["observer"], "AST-002", "voting", C6="yes")
    _post(server, field["observer"], "AST-003", "closing")
    context = chromium.new_context(bypass_csp=True, **size)  # to inject axe-core
    page = context.new_page()
    page.goto(f"{server}/console/")
    page.locator("#token").wait_for()
    problems = _axe(page, "sign-in")
    page.goto(f"{server}/console/#token={field['analyst']}")
    page.locator("#p-coverage table").wait_for()
    width = size["viewport"]["width"]
    for name in [*PAGES, f"checklist/{crit}"]:
        page.goto(f"{server}/console/#/{name}")
        _loaded(page)
        _shot(page, f"{name.split('/')[0]}-{width}")
        problems += _axe(page, name)
    assert problems == []
    context.close()


def _axe(page: Any, where: str) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{where}: {v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


def test_counts_are_written_in_the_languages_plural_forms(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    _post(server, field["observer"], "AST-001", "voting")
    context, page = _open(chromium, server, field["analyst"])
    text = _findings_text(page)
    assert "Voting: 1 observation at 1 station" in text, text[:300]
    assert "; 1 station;" in text
    page.locator("#tools select").first.select_option("ru")
    page.get_by_text("1 наблюдение на 1 участке").wait_for()
    # The header's own words too, and the keyboard stays on the language list.
    assert page.get_by_role("button", name="Выйти").is_visible()
    assert page.locator("#tools .who").inner_text().endswith("· аналитик")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Язык"
    context.close()


def test_counting_totals_say_what_they_rest_on_in_the_consoles_language(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    _post(server, field["observer"], "AST-001", "closing", **GOOD_COUNT)
    # More ballots in the box than were issued: the report fails a check.
    _post(server, field["observer"], "AST-002", "closing", **(GOOD_COUNT | {"P_B": 610}))
    context, page = _open(chromium, server, field["analyst"])
    page.goto(page.url.split("#")[0] + "#/counting")
    _loaded(page)
    page.get_by_text(
        "One report from each station counts: 1 station. Not an estimate of the national result."
    ).wait_for()
    # The failing report's figures by the rules' letters, each named in full on hover.
    figures = page.locator("#p-cnt-failing tbody tr").first.locator("abbr")
    assert figures.nth(5).inner_text() == "B 610"
    assert figures.nth(5).get_attribute("title") == "Number of ballots found in the ballot box (B)"
    assert figures.last.inner_text() == "v2 185"
    assert figures.last.get_attribute("title") == "Votes for “No”"
    page.locator("#tools select").first.select_option("ru")
    page.get_by_text("Учитывается один протокол с каждого участка (участков: 1).").wait_for()
    assert figures.last.get_attribute("title") == "Число голосов «Нет»"
    context.close()


def test_exports_page_downloads_with_the_filters_and_offers_viewers_no_checklists(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    voting = _post(server, field["observer"], "AST-001", "voting")
    closing = _post(server, field["observer"], "AST-002", "closing")
    context, page = _open(chromium, server, field["analyst"])
    page.goto(f"{server}/console/#/exports")
    _loaded(page)
    page.locator("#f-phase").select_option("voting")
    page.get_by_role("button", name="Apply").click()
    _shot(page, "exports-1366")
    page.locator("#ex-kind").select_option("checklists")
    page.locator("#ex-values").select_option("labels")
    with page.expect_download() as got:
        page.locator("#ex-download").click()
    download = got.value
    assert download.suggested_filename.startswith("pollcheck_checklists_")
    assert "phase-voting" in download.suggested_filename
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    assert voting in text and closing not in text  # the filter bar applies
    page.get_by_text("Saved pollcheck_checklists_").wait_for()
    context.close()

    context, page = _open(chromium, server, field["viewer"])
    page.goto(f"{server}/console/#/exports")
    _loaded(page)
    kinds = page.locator("#ex-kind option").evaluate_all("os => os.map((o) => o.value)")
    assert "checklists" not in kinds and "stations" in kinds
    page.locator("#ex-kind").select_option("stations")
    page.locator("#ex-format").select_option("geojson")
    with page.expect_download() as got:
        page.locator("#ex-download").click()
    assert got.value.suggested_filename.endswith(".geojson")
    context.close()


def test_an_admin_makes_collect_sign_in_cards_and_an_analyst_is_not_offered_them(
    chromium: Any, server: str, field: dict[str, Any]
) -> None:
    context, page = _open(chromium, server, field["analyst"])
    assert page.get_by_role("link", name="Sign-in cards").count() == 0
    context.close()
    context, page = _open(chromium, server, field["admin"])
    page.get_by_role("link", name="Sign-in cards").click()
    page.locator("#cards-client").select_option("collect")
    _shot(page, "cards-1366")
    with page.expect_download() as got:
        page.locator("#cards-make").click()
    assert got.value.suggested_filename == "signin-cards-collect.html"
    sheet = Path(got.value.path()).read_text(encoding="utf-8")
    assert sheet.count("<svg") == 1 and "ODK Collect" in sheet  # the field's one observer
    page.get_by_text("1 card saved as signin-cards-collect.html").wait_for()
    context.close()


def test_the_sms_log_shows_what_each_message_became_and_is_searched_by_text(
    chromium: Any, server: str, session: Any, field: dict[str, Any]
) -> None:
    mission, admin = field["mission"], field["admin"]
    make_observer(session, mission.id, ["AST-001"], code="SMS-1", phone="+77011234567")
    settings = {"settings": {"sms": {"region": "KZ"}}}
    assert httpx.patch(f"{server}/missions/{mission.id}", json=settings, headers=auth(admin))
    secret = "s" * 24
    r = httpx.put(
        f"{server}/missions/{mission.id}/sms/gateways/generic",
        json={"secret": secret},
        headers=auth(admin),
    )
    assert r.status_code == 200, r.text
    for mid, sender, text in (
        ("1", "+77011234567", "hello there"),
        ("2", "+15550000", "AST-001 v"),
    ):
        r = httpx.post(
            f"{server}/sms/generic/{mission.id}",
            json={"id": mid, "from": sender, "text": text},
            headers={"X-Pollcheck-Secret": secret},
        )
        assert r.status_code == 200, r.text
    context, page = _open(chromium, server, field["analyst"])
    page.get_by_role("link", name="SMS").click()
    page.locator("#sms tbody tr").first.wait_for()
    outcomes = page.locator("#sms tbody tr").evaluate_all("rs => rs.map((r) => r.dataset.outcome)")
    assert "unknown_number" in outcomes and "invalid" in outcomes and "reply" in outcomes
    _shot(page, "sms-1366")
    page.locator("#sms-text").fill("hello")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("() => document.querySelectorAll('#sms tbody tr').length === 1")
    assert "hello there" in page.locator("#sms tbody").inner_text()
    assert "null" not in page.locator("#sms").inner_text()
    context.close()
    context, page = _open(chromium, server, field["viewer"])
    assert page.get_by_role("link", name="SMS").count() == 0
    context.close()
