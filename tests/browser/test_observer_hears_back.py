"""The observers' web app at 360×740 (issue 18): an analyst's decision reaches the phone,
"Check and send" shows a protocol that does not add up, tap targets are big enough, and
the sticky header never hides the first error the app scrolls to."""
# The phone, its server and its observer are the fixtures of test_observer_app, imported
# here by name, so the tests' parameters shadow them on purpose.
# ruff: noqa: F811

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from models import Role
from tests.browser.test_observer_app import (  # noqa: F401 (fixtures)
    _answer_every_question,
    _fill_and_save,
    _to_review,
    chromium,
    observer,
    phone,
    server,
)
from tests.factories import auth, make_token

pytestmark = pytest.mark.browser
# Screenshots for a person to look at, when asked: POLLCHECK_SCREENSHOTS=<folder>
SHOTS = os.environ.get("POLLCHECK_SCREENSHOTS")


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def _settled(page: Any) -> None:
    """Wait until a (smooth) scroll has come to rest."""
    last = None
    for _ in range(40):
        page.wait_for_timeout(200)
        y = page.evaluate("scrollY")
        if y == last:
            return
        last = y


def _cover(page: Any) -> float:
    """Bottom edge of what stays stuck at the top of the screen."""
    return page.evaluate(
        """() => Math.max(...[...document.querySelectorAll('.bar, .formhead')]
               .map(e => e.getBoundingClientRect().bottom))"""
    )


def _visible_below_header(page: Any, selector: str) -> None:
    box = page.locator(selector).first.bounding_box()
    assert box is not None
    assert box["y"] >= _cover(page) - 1, f"{selector} hidden under the sticky header"
    assert box["y"] + 40 <= 740, f"{selector} below the screen"


def test_analysts_rejection_with_its_comment_reaches_the_phone(
    phone: tuple[Any, Any], session: Any, observer: dict[str, Any], server: str
) -> None:
    import httpx

    _, page = phone
    _fill_and_save(page, "AST-001", "opening")
    page.locator(".outbox .item .badge.sent").wait_for(timeout=30_000)
    assert "Everything is sent" in page.locator("#net").inner_text()
    checklist_id = page.locator(".outbox .item").first.get_attribute("data-id")

    analyst = make_token(session, observer["mission"].id, Role.analyst)
    r = httpx.post(
        f"{server}/checklists/{checklist_id}/review",
        json={"state": "rejected", "comment": "This is not your station: check the code"},
        headers=auth(analyst),
    )
    assert r.status_code == 201, r.text

    page.reload()  # the observer opens the app again: it syncs
    item = page.locator(f".outbox .item[data-id='{checklist_id}']")
    item.locator(".badge.review-rejected").wait_for(timeout=30_000)
    assert "This is not your station: check the code" in item.inner_text()
    status = page.locator("#net").inner_text()
    assert "Everything is sent" not in status and "1 needs your attention" in status
    # The station's card no longer ticks the phase: the rejected checklist does not count.
    chip = page.locator("[data-station='AST-001'] .chip[data-sent='opening']")
    assert chip.get_attribute("class") == "chip rejected"
    _shot(page, "home-rejected")

    # Correct: the correction goes out as a new version, and attention is off.
    item.get_by_role("button", name="Correct").click()
    _to_review(page, answer=False)
    page.locator("#send").click()
    page.locator(".outbox .item").nth(1).wait_for()
    page.wait_for_function(
        "() => document.querySelector('#net').innerText.includes('Everything is sent')",
        timeout=30_000,
    )
    chip = page.locator("[data-station='AST-001'] .chip[data-sent='opening']")
    assert chip.get_attribute("class") == "chip"  # the correction counts until reviewed


def test_protocol_that_does_not_add_up_is_visible_on_check_and_send(
    phone: tuple[Any, Any],
) -> None:
    _, page = phone
    page.locator("[data-station='AST-001']").click()
    page.locator("[data-phase='closing']").click()
    for _ in range(12):
        _answer_every_question(page)
        if page.locator("[data-code='P_V']").count():
            page.locator("[data-code='P_V'] input").fill("100")
            page.locator("[data-code='P_V1'] input").fill("70")
            page.locator("[data-code='P_V2'] input").fill("45")  # 115 votes for 100 ballots
            page.locator("#next").click()
            page.locator("#protocol-warn").wait_for()
            _settled(page)
            _visible_below_header(page, "#protocol-warn")
            _shot(page, "form-protocol-warning")
        page.locator("#next").click()
        if page.locator("#send").count():
            break
    review = page.locator("main")
    warning = page.locator("#review-protocol")
    assert "Votes for the options (115) are not the valid ballots (100)." in warning.inner_text()
    assert page.locator(".ok").count() == 0  # nothing in green says all is well
    assert "No serious problem reported." not in review.inner_text()
    # The answers, section by section, as they will be sent.
    assert page.locator(".answers h2").count() >= 3
    p_v2 = page.locator(".answers [data-code='P_V2']")
    assert "45" in p_v2.inner_text()
    _shot(page, "check-and-send")


def test_every_tap_target_is_at_least_44_px(phone: tuple[Any, Any]) -> None:
    _, page = phone
    measure = """() => [...document.querySelectorAll(
                           'button, a, input, textarea, select, label.button')]
        .filter(e => e.offsetParent !== null && !e.classList.contains('visually-hidden'))
        .map(e => { const r = e.getBoundingClientRect();
                    return [e.id || e.className || e.tagName, e.textContent.trim().slice(0, 20),
                            Math.round(r.width), Math.round(r.height)]; })
        .filter(([, , w, h]) => w < 44 || h < 44)"""
    small = page.evaluate(measure)
    page.locator("[data-station='AST-001']").click()
    small += page.evaluate(measure)
    page.locator("[data-phase='voting']").click()
    for _ in range(12):
        small += page.evaluate(measure)
        _answer_every_question(page)
        page.locator("#next").click()
        if page.locator("#send").count():
            break
    small += page.evaluate(measure)
    assert small == []


def test_first_error_is_shown_below_the_sticky_header(phone: tuple[Any, Any]) -> None:
    _, page = phone
    page.locator("[data-station='AST-001']").click()
    page.locator("[data-phase='opening']").click()
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.locator("#next").click()  # nothing answered: the first question is the first error
    page.locator("fieldset.question.invalid").first.wait_for()
    _settled(page)
    _visible_below_header(page, "fieldset.question.invalid legend")
    _shot(page, "form-first-error")


def test_none_observed_shortcut_waits_for_the_observers_confirmation(
    phone: tuple[Any, Any], session: Any
) -> None:
    from sqlalchemy import select

    from models import Checklist

    _, page = phone
    page.locator("[data-station='AST-001']").click()
    page.locator("[data-phase='voting']").click()
    for _ in range(8):
        if page.locator("#none-seen").count():
            break
        _answer_every_question(page)
        page.locator("#next").click()
    page.locator("[data-code='E3'] [data-value='observed']").click()  # one was seen
    page.locator("[data-code='E3N'] input").fill("2")
    page.locator("#none-seen").click()
    assert page.locator("fieldset.question.prefilled").count() == 11  # E3 keeps its answer
    assert page.locator("[data-code='E3'] .choice.on").inner_text() == "Observed"
    _settled(page)
    _visible_below_header(page, "#none-confirm")
    _shot(page, "form-none-observed")
    page.locator("#next").click()  # not yet confirmed: Next waits
    assert page.locator("#none-confirm").count() == 1 and page.locator("#send").count() == 0
    page.locator("#none-ok").click()
    assert page.locator("fieldset.question.prefilled").count() == 0
    _to_review(page)

    # The observation time: when the form was opened, and the observer may change it.
    time_field = page.locator("#observed-time")
    opened = time_field.input_value()
    assert opened
    time_field.fill("00:00")  # today at midnight: never in the future
    time_field.dispatch_event("change")
    page.locator("#send").click()
    page.locator(".outbox .item .badge.sent").wait_for(timeout=30_000)
    session.expire_all()
    (stored,) = session.scalars(select(Checklist)).all()
    assert stored.observed_at.astimezone().strftime("%H:%M") == "00:00"
    # The station card says which phases the mission has from this observer.
    assert page.locator("[data-station='AST-001'] [data-sent='voting']").count() == 1
    assert page.locator("[data-station='AST-002'] [data-sent]").count() == 0
