"""Findings over HTTP: dashboards poll with ETags, filters are checked, the statement reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.config import get_settings
from api.main import create_app
from models import Role
from tests.factories import auth, make_mission, make_observer, make_station, make_token
from tests.findings_factories import post, post_count


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every read folds what is pending and recomputes when the data changed."""
    monkeypatch.setenv("POLLCHECK_FINDINGS_MAX_LAG_S", "0")
    monkeypatch.setenv("POLLCHECK_FINDINGS_CACHE_S", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _mission(client: Any, session: Any) -> tuple[Any, str, str]:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    make_station(session, mission.id, "X-1", country="Turkey")
    _, observer = make_observer(session, mission.id, ["S-1", "X-1"])
    viewer = make_token(session, mission.id, Role.viewer)
    return mission, observer, viewer


def test_a_dashboard_gets_304_until_the_findings_change(
    fresh: None, client: Any, session: Any
) -> None:
    mission, observer, viewer = _mission(client, session)
    post(client, observer, "S-1", "voting")
    url = f"/missions/{mission.id}/findings"
    first = client.get(url, headers=auth(viewer))
    assert first.status_code == 200
    assert first.json()["totals"]["observations"] == 1
    etag = first.headers["etag"]
    again = client.get(url, headers=auth(viewer) | {"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    post(client, observer, "X-1", "voting")
    changed = client.get(url, headers=auth(viewer) | {"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["totals"] == changed.json()["totals"] | {"observations": 2, "stations": 2}


def test_every_api_process_serves_the_same_result(fresh: None, client: Any, session: Any) -> None:
    mission, observer, viewer = _mission(client, session)
    post(client, observer, "S-1", "voting")
    url = f"/missions/{mission.id}/findings?abroad=false"
    with TestClient(create_app(), raise_server_exceptions=False) as other_process:
        a = client.get(url, headers=auth(viewer))
        b = other_process.get(url, headers=auth(viewer))
    assert a.status_code == b.status_code == 200
    assert (a.headers["etag"], a.content) == (b.headers["etag"], b.content)


def test_a_view_is_compressed_once_and_served_compressed_to_gzip_clients(
    fresh: None, client: Any, session: Any
) -> None:
    """The gzip body is made when the view is computed and kept in the shared cache; a
    client that does not take gzip gets the same JSON, with the same ETag, uncompressed."""
    import gzip

    from sqlalchemy import select

    from models import FindingCache

    mission, observer, viewer = _mission(client, session)
    post(client, observer, "S-1", "voting")
    url = f"/missions/{mission.id}/findings"

    def get(encoding: str) -> Any:
        # stream=False, but read the raw bytes: TestClient would inflate them itself
        with client.stream("GET", url, headers=auth(viewer) | {"Accept-Encoding": encoding}) as r:
            return r, b"".join(r.iter_raw())

    computed, raw = get("gzip, deflate")
    assert computed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in computed.headers["vary"].lower()
    session.commit()
    stored = session.scalars(select(FindingCache).where(FindingCache.mission_id == mission.id))
    row = next(r for r in stored if r.body_gz)
    assert raw == row.body_gz and gzip.decompress(raw) == row.body.encode()
    gz_etag = row.etag[:-1] + '-gz"'  # another body, another strong ETag
    assert computed.headers["etag"] == gz_etag
    served, again = get("br;q=1.0, gzip;q=0.5")  # from the cache this time
    assert (served.headers["content-encoding"], again) == ("gzip", raw)
    for refused in ("identity", "", "*;q=0"):
        plain, body = get(refused)
        assert "content-encoding" not in plain.headers, refused
        assert body == gzip.decompress(raw) and plain.headers["etag"] == row.etag
    assert get("*;q=0, gzip")[0].headers["content-encoding"] == "gzip"
    # Either ETag, weak or strong, or `*`, is a match for either body.
    for held in (gz_etag, row.etag, f"W/{gz_etag}", f'"other", W/{row.etag}', "*"):
        for encoding in ("gzip", "identity"):
            again = client.get(
                url, headers=auth(viewer) | {"If-None-Match": held, "Accept-Encoding": encoding}
            )
            assert again.status_code == 304, (held, encoding)
    assert client.get(url, headers=auth(viewer) | {"If-None-Match": '"other"'}).status_code == 200


def test_a_poll_for_a_view_the_dashboard_holds_does_not_read_its_body(
    fresh: None, client: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.services.findings import views

    mission, observer, viewer = _mission(client, session)
    post(client, observer, "S-1", "voting")
    served: list[int] = []
    real = views.get_view

    def spy(*args: Any, **kwargs: Any) -> Any:
        view = real(*args, **kwargs)
        served.append(len(view.body))
        return view

    monkeypatch.setattr(views, "get_view", spy)
    base = f"/missions/{mission.id}"
    first = client.get(f"{base}/statement?format=json", headers=auth(viewer))
    etag = {"If-None-Match": first.headers["etag"]}
    held = client.get(f"{base}/statement?format=json", headers=auth(viewer) | etag)
    assert held.status_code == 304
    # The Markdown is made from the JSON, whose ETag is no use to it: still read and served.
    md = client.get(f"{base}/statement", headers=auth(viewer) | etag)
    assert md.status_code == 200 and md.text.startswith("# ")
    assert served[1] == 0 and served[0] == served[2] > 0


def test_every_view_answers_with_its_filters(fresh: None, client: Any, session: Any) -> None:
    mission, observer, viewer = _mission(client, session)
    post(client, observer, "S-1", "voting")
    post_count(client, observer, "S-1")
    base = f"/missions/{mission.id}"
    query = "?location=Astana&phase=closing&lang=ru"
    for path in ("findings", "findings/coverage", "findings/incidents", "findings/critical"):
        r = client.get(f"{base}/{path}{query}", headers=auth(viewer))
        assert r.status_code == 200, (path, r.text)
        assert r.json()["filters"] == {"location": "Astana", "phase": "closing"}
        assert r.json()["language"] == "ru"
    counting = client.get(f"{base}/findings/counting{query}", headers=auth(viewer)).json()
    assert counting["reports"] == 1 and counting["failing"] == []
    voting = client.get(f"{base}/findings?phase=voting&lang=ru", headers=auth(viewer)).json()
    d4 = next(q for q in voting["phases"][0]["questions"] if q["code"] == "D4")
    assert d4["label"] == "Соблюдалась ли тайна голосования?"


def test_unknown_places_and_teams_are_404_and_an_empty_window_is_422(
    fresh: None, client: Any, session: Any
) -> None:
    mission, _, viewer = _mission(client, session)
    base = f"/missions/{mission.id}/findings"
    r = client.get(f"{base}?location=Atlantis", headers=auth(viewer))
    assert (r.status_code, r.json()["code"]) == (404, "location_not_found")
    r = client.get(f"{base}?team=Nobody", headers=auth(viewer))
    assert (r.status_code, r.json()["code"]) == (404, "team_not_found")
    window = "observed_from=2024-10-06T12:00:00Z&observed_to=2024-10-06T11:00:00Z"
    r = client.get(f"{base}?{window}", headers=auth(viewer))
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == ["query", "observed_to"]
    r = client.get(f"{base}?location=Astana%25", headers=auth(viewer))
    assert r.status_code == 404  # a LIKE wildcard is a plain character here


@pytest.mark.parametrize(
    ("name", "value"),
    [("observed_from", "0001-01-01T00:00:00+14:00"), ("observed_to", "9999-12-31T23:59:59-14:00")],
)
def test_a_time_window_past_the_plausible_years_is_a_422_naming_the_bound(
    fresh: None, client: Any, session: Any, name: str, value: str
) -> None:
    mission, _, viewer = _mission(client, session)
    r = client.get(f"/missions/{mission.id}/findings", params={name: value}, headers=auth(viewer))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == ["query", name]


def test_the_statement_is_markdown_by_default_and_json_with_evidence(
    fresh: None, client: Any, session: Any
) -> None:
    mission, observer, viewer = _mission(client, session)
    post(client, observer, "S-1", "voting", {"D4": "no"})
    url = f"/missions/{mission.id}/statement"
    md = client.get(url, headers=auth(viewer))
    assert md.status_code == 200
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("# Draft preliminary statement")
    assert "The secrecy of the vote was not respected in 1 of 1 observation (D4)." in md.text
    assert (
        client.get(url, headers=auth(viewer) | {"If-None-Match": md.headers["etag"]}).status_code
        == 304
    )
    data = client.get(f"{url}?format=json", headers=auth(viewer)).json()
    secrecy = next(s for s in data["sentences"] if s["key"] == "secrecy")
    assert secrecy["evidence"]["questions"] == ["D4"]
    assert data["markdown"] == md.text


def test_with_a_fold_process_reads_never_fold_and_the_fold_command_catches_up(
    fresh: None, monkeypatch: pytest.MonkeyPatch, client: Any, session: Any
) -> None:
    """POLLCHECK_FINDINGS_FOLD_ELSEWHERE: the API leaves folding to `pollcheck fold`."""
    from typer.testing import CliRunner

    from api.cli import app as cli

    monkeypatch.setenv("POLLCHECK_FINDINGS_FOLD_ELSEWHERE", "true")
    get_settings.cache_clear()
    mission, observer, viewer = _mission(client, session)
    post(client, observer, "S-1", "voting")
    url = f"/missions/{mission.id}/findings"
    assert client.get(url, headers=auth(viewer)).json()["totals"]["observations"] == 0

    runner = CliRunner()
    first = runner.invoke(cli, ["fold", "--once"])
    assert first.exit_code == 0 and "folded 1 changes" in first.output, first.output
    assert client.get(url, headers=auth(viewer)).json()["totals"]["observations"] == 1
    again = runner.invoke(cli, ["fold", "--once"])
    assert again.exit_code == 0 and "folded 0 changes" in again.output, again.output


def test_a_process_works_on_as_many_requests_at_once_as_its_pool_has_connections() -> None:
    import anyio.to_thread

    with TestClient(create_app()) as client:  # runs the app's lifespan
        tokens = client.portal.call(  # type: ignore[union-attr]
            lambda: anyio.to_thread.current_default_thread_limiter().total_tokens
        )
    assert tokens == get_settings().db_pool_size


def test_a_view_is_computed_from_one_snapshot_of_the_data(
    fresh: None, client: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compute reads in several statements (the counting view: its totals, then its
    lists). A fold committed between two of them must not show in one and not the other:
    here a change committed by another transaction during the compute is not seen by
    the compute's later statements."""
    from sqlalchemy import select, update

    from api.db import session_scope
    from api.services.findings import views
    from models import Mission

    mission, observer, viewer = _mission(client, session)
    post(client, observer, "S-1", "incident")
    names: list[str] = []
    computed = views.VIEWS["incidents"]

    def during(ctx: Any) -> Any:
        def name() -> str:
            return ctx.session.scalar(select(Mission.name).where(Mission.id == mission.id))

        names.append(name())
        with session_scope() as other:  # committed while the compute runs
            other.execute(update(Mission).where(Mission.id == mission.id).values(name="Renamed"))
        names.append(name())
        return computed(ctx)

    monkeypatch.setitem(views.VIEWS, "incidents", during)
    r = client.get(f"/missions/{mission.id}/findings/incidents", headers=auth(viewer))
    assert r.status_code == 200, r.text
    assert names == [mission.name, mission.name]
    assert client.get(f"/missions/{mission.id}", headers=auth(viewer)).json()["name"] == "Renamed"
