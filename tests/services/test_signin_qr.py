"""Sign-in QR codes: the admin's CLI prints, for each observer, a link that signs a phone in."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from typer.testing import CliRunner

from api.cli import app
from api.config import get_settings
from tests.factories import auth, make_mission, make_observer, make_station

runner = CliRunner()


def _token(link: str) -> str:
    match = re.search(r"/app/#token=(\S+)", link)
    assert match, link
    return unquote(match.group(1))


def test_printed_qr_link_signs_the_observer_in(client: Any, session: Any) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    make_observer(session, mission.id, ["S-1"], code="STO-1", name="Dana")
    result = runner.invoke(
        app,
        ["token", "qr", "-m", str(mission.id), "-o", "STO-1", "--base-url", "https://p.example"],
    )
    assert result.exit_code == 0, result.output
    assert "Dana" in result.output and "█" in result.output
    link = next(x for x in result.output.splitlines() if x.startswith("https://p.example/app/#"))
    me = client.get("/me", headers=auth(_token(link))).json()
    assert me["role"] == "observer" and me["observer_name"] == "Dana"


def test_sheet_has_a_card_for_every_observer(client: Any, session: Any, tmp_path: Path) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    for code in ("A", "B"):
        make_observer(session, mission.id, ["S-1"], code=code)
    sheet = tmp_path / "cards.html"
    result = runner.invoke(
        app,
        ["token", "qr", "-m", str(mission.id), "--all", "--sheet", str(sheet)]
        + ["--base-url", "http://localhost:8000"],
    )
    assert result.exit_code == 0, result.output
    page = sheet.read_text()
    assert page.count("<svg") == 2 and "Observer A" in page and "Откройте камеру" in page
    assert "phones cannot reach" in result.output  # a loopback address is only for this computer


def test_unknown_observer_fails_and_issues_nothing(client: Any, session: Any) -> None:
    mission, _ = make_mission(session)
    result = runner.invoke(
        app, ["token", "qr", "-m", str(mission.id), "-o", "NOPE", "--base-url", "https://p.example"]
    )
    assert result.exit_code == 1 and "no observer NOPE" in result.output


@contextmanager
def _healthz_on_a_free_port() -> Iterator[int]:
    """Something that answers /healthz as a Pollcheck server does."""

    class Healthz(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_without_base_url_the_cards_name_the_port_the_server_answers_on(
    client: Any, session: Any, monkeypatch: Any
) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    make_observer(session, mission.id, ["S-1"], code="STO-1")
    args = ["token", "qr", "-m", str(mission.id), "-o", "STO-1"]
    with _healthz_on_a_free_port() as port:
        monkeypatch.setenv("POLLCHECK_PORT", str(port + 1 if port < 65535 else port - 1))
        get_settings.cache_clear()
        nobody = runner.invoke(app, args)
        assert nobody.exit_code == 1
        assert "no Pollcheck server answers" in nobody.output
        assert "POLLCHECK_PORT" in nobody.output
        monkeypatch.setenv("POLLCHECK_PORT", str(port))
        get_settings.cache_clear()
        found = runner.invoke(app, args)
    get_settings.cache_clear()
    assert found.exit_code == 0, found.output
    assert f"http://127.0.0.1:{port}/app/#token=" in found.output


def _card_link(mission: Any, *extra: str) -> str:
    result = runner.invoke(
        app,
        ["token", "qr", "-m", str(mission.id), "-o", "STO-1", "--base-url", "https://p.example"]
        + list(extra),
    )
    assert result.exit_code == 0, result.output
    return next(x for x in result.output.splitlines() if x.startswith("https://p.example/app/#"))


def test_reissued_card_with_revoke_previous_stops_the_old_one(client: Any, session: Any) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    make_observer(session, mission.id, ["S-1"], code="STO-1", name="Dana")
    first = _token(_card_link(mission))
    second = _token(_card_link(mission))  # without the flag both cards work
    assert client.get("/me", headers=auth(first)).status_code == 200
    third = _token(_card_link(mission, "--revoke-previous"))
    assert client.get("/me", headers=auth(first)).json()["code"] == "revoked_token"
    assert client.get("/me", headers=auth(second)).status_code == 401
    assert client.get("/me", headers=auth(third)).status_code == 200


def test_card_prints_the_servers_address_and_the_observers_name(
    client: Any, session: Any, tmp_path: Path
) -> None:
    mission, _ = make_mission(session)
    make_station(session, mission.id, "S-1")
    make_observer(session, mission.id, ["S-1"], code="STO-1", name="Dana Abenova")
    sheet = tmp_path / "cards.html"
    result = runner.invoke(
        app,
        [
            "token",
            "qr",
            "-m",
            str(mission.id),
            "-o",
            "STO-1",
            "--base-url",
            "https://poll.example.org/",
            "--sheet",
            str(sheet),
        ],
    )
    assert result.exit_code == 0, result.output
    page = sheet.read_text()
    assert "Dana Abenova" in page
    assert "<p class='where'>https://poll.example.org/app/</p>" in page
    assert "No camera? Open https://poll.example.org/app/ and type the code below." in page


def test_collect_qr_sets_odk_collect_up_with_the_observers_key(client: Any, session: Any) -> None:
    """`--collect` prints Collect's settings code: its server URL is the observer's key
    path, which lists the observer's forms."""
    import base64
    import json
    import zlib

    from api.services import signin_qr

    mission, _ = make_mission(session, name="Mission K")
    make_station(session, mission.id, "S-1")
    make_observer(session, mission.id, ["S-1"], code="STO-1", name="Dana")
    result = runner.invoke(
        app,
        ["token", "qr", "-m", str(mission.id), "-o", "STO-1", "--collect"]
        + ["--base-url", "https://p.example"],
    )
    assert result.exit_code == 0, result.output
    server = next(x for x in result.output.splitlines() if x.startswith("https://p.example/key/"))
    token = unquote(server.removeprefix("https://p.example/key/"))
    expected = signin_qr.collect_settings("https://p.example", token, "Dana", "Mission K")
    payload = signin_qr.collect_payload(expected)
    assert signin_qr.terminal_qr(payload) in result.output  # the code holds these settings
    settings = json.loads(zlib.decompress(base64.b64decode(payload)))
    assert settings["general"]["server_url"] == server
    assert settings["general"]["metadata_username"] == "Dana"
    assert settings["general"]["form_update_mode"] == "match_exactly"
    assert "/app/#token=" not in result.output
    listed = client.get(f"/key/{token}/formList")
    assert listed.status_code == 200 and b"<formID>default-v1</formID>" in listed.content


def test_collect_sheet_tells_how_to_scan_in_collect(session: Any, tmp_path: Path) -> None:
    mission, _ = make_mission(session)
    make_observer(session, mission.id, [], code="A")
    sheet = tmp_path / "cards.html"
    result = runner.invoke(
        app,
        ["token", "qr", "-m", str(mission.id), "--all", "--collect", "--sheet", str(sheet)]
        + ["--base-url", "https://p.example"],
    )
    assert result.exit_code == 0, result.output
    page = sheet.read_text()
    assert page.count("<svg") == 1 and "Configure with QR code" in page
    assert "Настроить по QR-коду" in page and "/app/" not in page


def test_admins_get_the_cards_from_the_api_as_the_console_asks(client: Any, session: Any) -> None:
    """`POST /missions/{id}/signin-cards`: the printable page with a card per observer named,
    for the web app or ODK Collect, under the address given (else the request's own); the
    tokens work, earlier ones can be revoked, an unknown code issues nothing."""
    mission, admin = make_mission(session, name="Mission C")
    make_station(session, mission.id, "S-1")
    _, old = make_observer(session, mission.id, ["S-1"], code="STO-1", name="Dana")
    make_observer(session, mission.id, ["S-1"], code="STO-2", name="Aigerim")
    path = f"/missions/{mission.id}/signin-cards"
    r = client.post(path, json={"observers": ["STO-1"]}, headers=auth(admin))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store" and r.headers["x-cards"] == "1"
    assert "Dana" in r.text and "Aigerim" not in r.text and "<svg" in r.text
    token = unquote(re.search(r"<p class='token'>([^<]+)</p>", r.text).group(1))
    assert client.get("/me", headers=auth(token)).status_code == 200
    assert client.get("/me", headers=auth(old)).status_code == 200  # not revoked unless asked

    r = client.post(
        path,
        json={"collect": True, "revoke_previous": True, "base_url": "https://p.example"},
        headers=auth(admin),
    )
    assert r.status_code == 200 and r.headers["x-cards"] == "2"  # every observer
    assert "ODK Collect" in r.text
    assert client.get("/me", headers=auth(token)).status_code == 401  # revoked
    assert client.get("/me", headers=auth(old)).status_code == 401

    r = client.post(path, json={"observers": ["NOPE"]}, headers=auth(admin))
    assert r.status_code == 404 and "NOPE" in r.text
    r = client.post(path, json={"base_url": "javascript:alert(1)"}, headers=auth(admin))
    assert r.status_code == 422 and "base_url" in r.text
