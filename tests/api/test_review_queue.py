"""The review queue: the latest checklists to review, most urgent first, read a page at a
time from the server (`GET /missions/{id}/review-queue`)."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from api.services import queue as queue_service
from api.services.findings import fold
from models import Answer, Checklist, FindingCountReport, Role
from tests.factories import auth, make_mission, make_observer, make_station, make_token
from tests.findings_factories import correct, post, post_count, set_review

ORDER = ["critical", "counting", "clock", "unreviewed"]
# A phone whose clock runs three hours slow: it observed and sent "three hours ago".
_SLOW = datetime.now(UTC) - timedelta(hours=3)
OFF_CLOCK = {
    "observed_at": (_SLOW - timedelta(minutes=5)).isoformat(),
    "sent_at": _SLOW.isoformat(),
}


@pytest.fixture
def field(session: Any, client: Any) -> dict[str, Any]:
    """A mission with three stations, an observer at all of them, and one checklist of
    each kind the queue tells apart."""
    mission, admin = make_mission(session)
    for code in ("S-1", "S-2", "T-9"):
        make_station(session, mission.id, code)
    _, obs = make_observer(session, mission.id, ["S-1", "S-2", "T-9"])
    analyst = make_token(session, mission.id, Role.analyst)
    mid = mission.id
    ids = {
        "plain": post(client, obs, "S-1", "voting"),
        "critical": post(client, obs, "S-1", "voting", {"B1": "no"}),
        "failing": post_count(client, obs, "S-2", {"P_V1": 500}),
        "clock": post(client, obs, "T-9", "opening", **OFF_CLOCK),
        "critical_clock": post(client, obs, "T-9", "voting", {"B1": "no"}, **OFF_CLOCK),
        "verified": post(client, obs, "S-2", "voting"),
        "has_issues": post(client, obs, "S-2", "opening"),
        "counting_ok": post_count(client, obs, "S-1"),
    }
    set_review(session, mid, ids["verified"], "verified")
    set_review(session, mid, ids["has_issues"], "has_issues")
    fold.fold(session)
    session.commit()
    return {"mission": mission, "admin": admin, "analyst": analyst, "observer": obs, "ids": ids}


def _queue(client: Any, field: dict[str, Any], token: str | None = None, **params: Any) -> Any:
    r = client.get(
        f"/missions/{field['mission'].id}/review-queue",
        params=params,
        headers=auth(token or field["analyst"]),
    )
    assert r.status_code == 200, r.text
    return r.json()


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["checklist"]["id"] for item in page["data"]]


def test_the_queue_lists_the_most_urgent_first_with_each_reason_said(client, field) -> None:
    ids = field["ids"]
    page = _queue(client, field)
    by_id = {item["checklist"]["id"]: item for item in page["data"]}
    # Open checklists only (received and has_issues): the verified one is left out.
    assert set(by_id) == set(ids.values()) - {ids["verified"]}
    assert page["total"] == len(by_id) == page["count"]
    assert page["next_cursor"] is None
    ranked = _ids(page)
    # Critical answers first (newest first), then the failing count, the clock, the rest.
    assert ranked[:2] == [ids["critical_clock"], ids["critical"]]
    assert ranked[2] == ids["failing"]
    assert ranked[3] == ids["clock"]
    assert set(ranked[4:6]) == {ids["plain"], ids["counting_ok"]}
    assert ranked[6] == ids["has_issues"]
    assert by_id[ids["critical_clock"]]["reasons"] == ["critical", "clock", "unreviewed"]
    assert by_id[ids["critical"]]["critical"] == ["B1=no"]
    assert by_id[ids["failing"]]["reasons"] == ["counting", "unreviewed"]
    assert by_id[ids["failing"]]["fails"] == ["options_sum_to_valid"]
    assert by_id[ids["counting_ok"]]["reasons"] == ["unreviewed"]
    assert by_id[ids["counting_ok"]]["fails"] == []
    assert by_id[ids["has_issues"]]["reasons"] == []
    assert by_id[ids["plain"]]["checklist"]["station"] == "S-1"


def test_the_checks_a_page_names_are_said_in_the_language_asked(client, field, session) -> None:
    """The queue names a failed check by its id; the page says what each one named means,
    in the console's language, else the mission's first."""
    english = _queue(client, field)
    assert english["checks"] == {
        "options_sum_to_valid": "the votes for the options add up to the valid ballots "
        "(v1+…+vn = V)"
    }
    russian = _queue(client, field, lang="ru")
    assert russian["checks"] == {
        "options_sum_to_valid": "сумма голосов за варианты равна числу действительных "
        "бюллетеней (v1+…+vn = V)"
    }
    # A language the checks are not written in: English; a page failing nothing: none.
    assert _queue(client, field, lang="kk")["checks"] == english["checks"]
    assert _queue(client, field, reason="critical", lang="ru")["checks"] == {}
    field["mission"].languages = ["ru", "en"]
    session.add(field["mission"])
    session.commit()
    assert _queue(client, field)["checks"] == russian["checks"]


def test_the_queue_filters_by_reason_phase_state_and_station(client, field) -> None:
    ids = field["ids"]
    assert _ids(_queue(client, field, reason="critical")) == [
        ids["critical_clock"],
        ids["critical"],
    ]
    assert _ids(_queue(client, field, reason="clock")) == [ids["critical_clock"], ids["clock"]]
    assert _ids(_queue(client, field, reason="counting")) == [ids["failing"]]
    assert set(_ids(_queue(client, field, phase="opening"))) == {ids["clock"], ids["has_issues"]}
    assert _ids(_queue(client, field, state="verified")) == [ids["verified"]]
    assert _ids(_queue(client, field, state="has_issues")) == [ids["has_issues"]]
    assert len(_ids(_queue(client, field, state="any"))) == len(ids)
    assert set(_ids(_queue(client, field, station="t-"))) == {ids["clock"], ids["critical_clock"]}
    # A station filter is part of the code, not a pattern: `%` matches only a `%`.
    assert _queue(client, field, station="%")["data"] == []
    assert _queue(client, field, station="_")["data"] == []
    assert _queue(client, field, station="/")["data"] == []
    assert _queue(client, field, reason="unreviewed", state="verified")["total"] == 0


def test_the_critical_answers_a_page_names_are_said_in_the_language_asked(client, field) -> None:
    """An item names a critical answer by its codes (`B1=no`); the page says each one as
    its question's label and its answer's, in the console's language."""
    assert _queue(client, field)["answers"] == {
        "B1=no": "Were you allowed into the polling station without restriction? — No"
    }
    assert _queue(client, field, lang="ru")["answers"] == {
        "B1=no": "Вас допустили на участок без ограничений? — Нет"
    }
    # A page without a critical answer says none.
    assert _queue(client, field, reason="clock", state="any", phase="opening")["answers"] == {}


def test_a_station_filter_matching_more_stations_than_an_in_list_binds(
    client, field, monkeypatch
) -> None:
    """A short part ("7" on a national mission) matches thousands of stations: the queue
    then matches them in the query rather than binding their ids, with the same page."""
    ids = field["ids"]
    bound = _queue(client, field, station="s-")
    monkeypatch.setattr(queue_service, "IN_LIST", 1)
    matched = _queue(client, field, station="s-")
    assert _ids(matched) == _ids(bound) and matched["total"] == bound["total"] == 5
    assert ids["critical"] in _ids(matched) and ids["clock"] not in _ids(matched)


def test_a_correction_replaces_its_version_in_the_queue(client, field) -> None:
    ids = field["ids"]
    fixed = correct(client, field["observer"], ids["critical"], "S-1", "voting", {"B1": "yes"})
    listed = _ids(_queue(client, field, state="any"))
    assert fixed in listed and ids["critical"] not in listed
    assert _ids(_queue(client, field, reason="critical")) == [ids["critical_clock"]]


def test_pages_follow_one_another_across_the_reasons(client, field) -> None:
    whole = _ids(_queue(client, field, state="any"))
    for size in (1, 2, 3):
        walked: list[str] = []
        cursor = None
        for _ in range(len(whole) + 1):
            params = {"state": "any", "limit": size} | ({"cursor": cursor} if cursor else {})
            page = _queue(client, field, **params)
            walked += _ids(page)
            assert page["total"] == len(whole)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert walked == whole, size


def test_the_queue_is_for_staff_and_refuses_a_bad_cursor(client, field) -> None:
    url = f"/missions/{field['mission'].id}/review-queue"
    assert client.get(url, headers=auth(field["admin"])).status_code == 200
    assert client.get(url, headers=auth(field["observer"])).status_code == 403
    r = client.get(url, params={"cursor": "nonsense"}, headers=auth(field["analyst"]))
    assert r.status_code == 422 and r.json()["code"] == "bad_cursor"
    r = client.get(url, params={"reason": "boring"}, headers=auth(field["analyst"]))
    assert r.status_code == 422 and "reason" in r.text


def test_the_count_stops_at_its_limit(client, field, monkeypatch) -> None:
    monkeypatch.setattr(queue_service, "TOTAL_LIMIT", 3)
    page = _queue(client, field)
    assert page["total"] == page["total_limit"] == 3
    assert page["count"] == len(field["ids"]) - 1


# --- against a plain ranking ----------------------------------------------------------------


def _expected(session: Any, mission_id: uuid.UUID, **f: Any) -> list[str]:
    """The queue as the console used to rank it: every latest checklist of the mission with
    its reasons, sorted by the most urgent one and then newest first."""
    rows = session.execute(
        select(Checklist).where(Checklist.mission_id == mission_id, Checklist.is_latest)
    ).scalars()
    critical = set(session.scalars(select(Answer.checklist_id).where(Answer.critical)))
    failing = set(
        session.scalars(
            select(FindingCountReport.checklist_id).where(FindingCountReport.fails != 0)
        )
    )
    from models import Station

    codes = dict(session.execute(select(Station.id, Station.code)).all())
    items = []
    for c in rows:
        reasons = [
            r
            for r, held in zip(
                ORDER,
                [c.id in critical, c.id in failing, c.clock_flagged, c.review_state == "received"],
                strict=True,
            )
            if held
        ]
        state = f.get("state", "open")
        if state == "open" and c.review_state not in ("received", "has_issues"):
            continue
        if state not in ("open", "any") and c.review_state != state:
            continue
        if f.get("reason") and f["reason"] not in reasons:
            continue
        if f.get("phase") and c.phase != f["phase"]:
            continue
        if f.get("station") and f["station"].lower() not in codes[c.station_id].lower():
            continue
        rank = ORDER.index(reasons[0]) if reasons else len(ORDER)
        items.append((rank, -c.received_at.timestamp(), str(c.id)))
    # Newest first within a rank; ties by id, descending, as the server orders them.
    items.sort(key=lambda i: (i[0], i[1]))
    out: list[str] = []
    for _, group in itertools.groupby(items, key=lambda i: (i[0], i[1])):
        out += sorted((i[2] for i in group), reverse=True)
    return out


def test_the_queue_matches_a_plain_ranking_under_every_filter(client, session) -> None:
    rng = random.Random(20261207)
    mission, _ = make_mission(session)
    codes = [f"R-{i}" for i in range(6)] + [f"Q-{i}" for i in range(4)]
    for code in codes:
        make_station(session, mission.id, code)
    _, obs = make_observer(session, mission.id, codes)
    analyst = make_token(session, mission.id, Role.analyst)
    posted: list[str] = []
    for _ in range(60):
        station = rng.choice(codes)
        phase = rng.choice(["opening", "voting", "closing", "incident"])
        extra = OFF_CLOCK if rng.random() < 0.15 else {}
        if phase == "closing":
            figures: dict[str, Any] = {"P_V1": 500} if rng.random() < 0.3 else {}
            if rng.random() < 0.4:
                figures["F2"] = "yes"  # critical: voting after closing time
            posted.append(post_count(client, obs, station, figures, **extra))
        else:
            critical = {"B1": "no"} if rng.random() < 0.2 and phase != "incident" else None
            posted.append(post(client, obs, station, phase, critical, **extra))
    for cid in rng.sample(posted, 15):
        set_review(session, mission.id, cid, rng.choice(["has_issues", "verified", "rejected"]))
    fold.fold(session)
    session.commit()
    # Failing reports with a critical answer too: listed first under `reason=counting`,
    # then the failing ones without, each list read from the reports' index and paged.
    critical = select(Answer.checklist_id).where(Answer.critical)
    both = select(FindingCountReport.checklist_id).where(
        FindingCountReport.fails != 0, FindingCountReport.checklist_id.in_(critical)
    )
    assert len(session.scalars(both).all()) >= 2
    field = {"mission": mission, "analyst": analyst}
    filters: list[dict[str, Any]] = [
        {},
        {"state": "any"},
        {"state": "verified"},
        {"state": "received"},
        {"state": "rejected", "phase": "closing"},
        {"reason": "critical"},
        {"reason": "counting", "state": "any"},
        {"reason": "counting"},
        {"reason": "critical", "phase": "closing"},
        {"reason": "clock"},
        {"reason": "unreviewed", "phase": "voting"},
        {"station": "q-"},
        {"station": "R-3", "state": "any"},
    ]
    for f in filters:
        want = _expected(session, mission.id, **f)
        walked: list[str] = []
        cursor = None
        while True:
            page = _queue(client, field, limit=7, **f, **({"cursor": cursor} if cursor else {}))
            walked += _ids(page)
            assert page["total"] == len(want), f
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert walked == want, f
