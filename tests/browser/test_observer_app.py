"""The observers' web app in headless Chromium at a phone's size, against a real server:
sign in, fill a checklist with no network, get the network back and find it stored exactly
once; refusals shown with their reason; corrections; photos; sign-in with no network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Answer, Checklist
from tests.factories import make_mission, make_observer, make_station
from tests.live_server import live_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        reason = (
            f"no Chromium at {CHROMIUM}: the browser test did not run (apt-get install chromium)"
        )
        if os.environ.get("POLLCHECK_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and POLLCHECK_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def observer(session: Any) -> dict[str, Any]:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "AST-001", name="School No. 12")
    make_station(session, mission.id, "AST-002")
    obs, token = make_observer(session, mission.id, ["AST-001", "AST-002"], name="Aigerim")
    return {"mission": mission, "observer": obs, "token": token}


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    """One server for the module: it keeps no state of its own between tests."""
    with live_server() as url:
        yield url


def _answer_every_question(page: Any) -> None:
    """Answer what the section shows, as a careful observer would; conditions may reveal
    more questions, so go round until nothing is left unanswered."""
    for _ in range(20):
        progressed = False
        for box in page.locator("fieldset.question").all():
            if box.locator(".optional").count():
                continue
            if box.locator(".choice.on").count():
                continue
            choices = box.locator("button.choice:not(.crit):not(.small)")
            if choices.count():
                choices.first.click()
                progressed = True
                continue
            field = box.locator("input, textarea").first
            if field.count() and not field.input_value():
                field.fill("0" if field.get_attribute("inputmode") == "numeric" else "calm")
                progressed = True
        if not progressed:
            return


@pytest.fixture
def phone(chromium: Any, server: str, observer: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """A phone signed in by the QR link: (browser context, page)."""
    context = chromium.new_context(**PHONE)
    page = context.new_page()
    page.on("dialog", lambda d: d.accept())
    page.goto(f"{server}/app/#token={observer['token']}")
    page.get_by_text("Hello, Aigerim").wait_for()
    yield context, page
    context.close()


def _to_review(page: Any, answer: bool = True) -> None:
    """Next, section after section, answering what is shown, up to the last step."""
    for _ in range(10):
        if answer:
            _answer_every_question(page)
        page.locator("#next").click()
        if page.locator("#send").count():
            return


def _fill_and_save(page: Any, station: str, phase: str) -> None:
    page.locator(f"[data-station='{station}']").click()
    page.locator(f"[data-phase='{phase}']").click()
    _to_review(page)
    page.locator("#send").click()


def _count(session: Any) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Checklist))


def test_checklist_filled_offline_is_stored_once_when_the_network_returns(
    chromium: Any, server: str, session: Any, observer: dict[str, Any]
) -> None:
    context = chromium.new_context(**PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    batches: list[dict[str, str]] = []
    page.on(
        "request",
        lambda r: batches.append(r.headers) if r.method == "POST" and "/sync/" in r.url else None,
    )

    # Sign in by the link a QR code holds; the token leaves the address bar at once.
    page.goto(f"{server}/app/#token={observer['token']}")
    page.get_by_text("Hello, Aigerim").wait_for()
    assert "token" not in page.url
    # The service worker has put the app itself on the phone.
    assert page.evaluate("navigator.serviceWorker.ready.then(() => true)")

    context.set_offline(True)
    page.locator("#net.offline").wait_for()
    page.locator("[data-station='AST-001']").click()
    page.locator("[data-phase='opening']").click()

    # Validation shows before anything is sent.
    page.locator("#next").click()
    assert page.locator("fieldset.question.invalid").count() > 0
    page.get_by_text("Please answer this question.").first.wait_for()

    # Section by section; A3 = yes reveals A4 (show_if).
    assert page.locator("[data-code='A4']").count() == 0
    page.locator("[data-code='A3'] [data-value='yes']").click()
    assert page.locator("[data-code='A4']").count() == 1
    page.locator("[data-code='A7'] textarea").fill("Opened 5 minutes late, calm")
    _to_review(page)
    page.locator("#send").click()

    page.locator(".outbox .item .badge.queued").wait_for()
    assert page.locator("#queue").inner_text().strip() == "· 1 waiting to send"
    assert _count(session) == 0

    # Still no network, the phone restarts the app: it opens, and the queue is still there.
    page.reload()
    page.locator(".outbox .item .badge.queued").wait_for()
    assert _count(session) == 0

    context.set_offline(False)
    page.locator(".outbox .item .badge.sent").wait_for(timeout=30_000)
    assert "Everything is sent" in page.locator("#net").inner_text()

    # Reopening the app (the queue is in IndexedDB) sends nothing a second time.
    page.reload()
    page.locator(".outbox .item .badge.sent").wait_for()
    session.expire_all()
    stored = session.scalars(select(Checklist)).all()
    assert len(stored) == 1
    assert stored[0].phase == "opening" and stored[0].device_sent_at is not None
    assert stored[0].observer_id == observer["observer"].id
    note = session.get(Answer, (stored[0].id, "A7", 0))
    assert note is not None and note.value == "Opened 5 minutes late, calm"
    assert batches and all(h.get("content-encoding") == "gzip" for h in batches)
    assert errors == []
    context.close()


def test_rejected_checklist_says_why_and_can_be_deleted(
    phone: tuple[Any, Any], session: Any, observer: dict[str, Any]
) -> None:
    from api.services import observers

    context, page = phone
    context.set_offline(True)
    _fill_and_save(page, "AST-002", "opening")
    page.locator(".outbox .item .badge.queued").wait_for()
    # Meanwhile the coordinator moves the observer away from AST-002.
    observers.set_assignments(session, observer["mission"].id, observer["observer"].id, ["AST-001"])
    session.commit()

    context.set_offline(False)
    item = page.locator(".outbox .item.rejected")
    item.wait_for(timeout=30_000)
    assert "Not accepted" in item.inner_text()
    assert "This polling station is not assigned to you (any more)." in item.inner_text()
    assert _count(session) == 0
    item.get_by_role("button", name="Delete").click()
    page.get_by_text("Nothing sent yet.").wait_for()


def test_a_checklist_the_server_will_not_read_never_holds_up_the_queue(
    phone: tuple[Any, Any], session: Any, observer: dict[str, Any]
) -> None:
    from tests.factories import checklist_payload

    _, page = phone
    good = checklist_payload("AST-001", "voting")
    poison = checklist_payload("AST-001", "voting")
    poison["answers"]["D10"] = "x" * 30_000  # over what the server reads in one string
    page.evaluate(
        """async ([good, poison, observer]) => {
            let t = Date.now();
            for (const p of [poison, good]) {
              await Store.put({id: p.id, payload: p, observer, savedAt: t++, status: "queued",
                               station: {code: p.station, name: p.station}, files: []});
            }
            await flush();
        }""",
        [good, poison, str(observer["observer"].id)],
    )
    page.locator(f"[data-id='{good['id']}'] .badge.sent").wait_for()
    page.locator(f"[data-id='{poison['id']}'] .badge.rejected").wait_for()
    session.expire_all()
    assert [str(i) for i in session.scalars(select(Checklist.id))] == [good["id"]]


def test_code_typed_with_no_network_signs_in_once_online(
    chromium: Any, server: str, observer: dict[str, Any]
) -> None:
    context = chromium.new_context(**PHONE)
    page = context.new_page()
    page.goto(f"{server}/app/")
    page.locator("#token").wait_for()
    context.set_offline(True)
    page.locator("#token").fill(observer["token"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("the app signs you in as soon as the phone is online").wait_for()
    context.set_offline(False)
    page.get_by_text("Hello, Aigerim").wait_for(timeout=30_000)
    context.close()


def test_sent_checklist_is_corrected_as_a_new_version(phone: tuple[Any, Any], session: Any) -> None:
    _, page = phone
    _fill_and_save(page, "AST-001", "opening")
    page.locator(".outbox .item .badge.sent").wait_for(timeout=30_000)

    page.get_by_role("button", name="Correct").click()
    page.locator("[data-code='A1'] [data-value='later']").click()  # it opened over an hour late
    _to_review(page, answer=False)
    page.locator("#send").click()
    page.locator(".outbox .badge.sent").nth(1).wait_for(timeout=30_000)

    session.expire_all()
    versions = session.scalars(select(Checklist).order_by(Checklist.version)).all()
    assert [(c.version, c.is_latest) for c in versions] == [(1, False), (2, True)]
    a1 = session.get(Answer, (versions[1].id, "A1", 0))
    assert a1 is not None and a1.value == "later"


def test_photo_of_the_protocol_is_uploaded_with_the_checklist(
    phone: tuple[Any, Any], session: Any
) -> None:
    from models import Attachment

    _, page = phone
    icon = Path(__file__).resolve().parents[2] / "web" / "icons" / "icon-512.png"
    page.locator("[data-station='AST-001']").click()
    page.locator("[data-phase='opening']").click()
    _to_review(page)
    page.locator("#photo").set_input_files(str(icon))
    page.get_by_text("photo-1.").wait_for()
    page.locator("#send").click()
    page.locator(".outbox .item .badge.sent").wait_for(timeout=30_000)
    page.get_by_text("Photos still uploading").wait_for(state="detached", timeout=30_000)

    session.expire_all()
    (photo,) = session.scalars(select(Attachment)).all()
    assert photo.stored_at is not None and photo.size > 0
    assert photo.content_type in ("image/jpeg", "image/png")
