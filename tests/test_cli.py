"""The admin's command line: mission set-up, imports with dry runs, tokens, templates, demo."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app
from tests.factories import auth

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_admin_sets_up_a_mission_from_the_command_line(client, tmp_path: Path) -> None:
    out = _ok(
        "mission",
        "create",
        "--name",
        "CLI mission",
        "--country",
        "Kazakhstan",
        "--date",
        "2026-03-15",
        "--timezone",
        "Asia/Almaty",
    )
    mission = re.search(r"mission id:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    admin = re.search(r"admin token: (pc_\S+)", out).group(1)  # type: ignore[union-attr]
    assert client.get(f"/missions/{mission}", headers=auth(admin)).status_code == 200

    stations = tmp_path / "stations.csv"
    stations.write_text("code,name,region\nS-1,One,North\nS-2,Two,South\n")
    assert "2 would be created" in _ok(
        "stations", "import", str(stations), "-m", mission, "--dry-run"
    )
    assert "2 were created" in _ok("stations", "import", str(stations), "-m", mission)

    observers = tmp_path / "observers.csv"
    observers.write_text("code,name,team,stations\nO-1,Anna,T1,S-1 S-2\n")
    _ok("observers", "import", str(observers), "-m", mission)
    out = _ok("token", "create", "-m", mission, "--role", "observer", "--observer", "O-1")
    token = re.search(r"token: (pc_\S+)", out).group(1)  # type: ignore[union-attr]
    cred = re.search(r"credential (\S+)", out).group(1)  # type: ignore[union-attr]
    assigned = client.get("/me/assignments", headers=auth(token)).json()
    assert [s["code"] for s in assigned] == ["S-1", "S-2"]

    _ok("token", "revoke", "-m", mission, cred)
    assert client.get("/me", headers=auth(token)).status_code == 401


def test_bad_station_rows_are_listed_and_the_command_fails(client, tmp_path: Path) -> None:
    out = _ok(
        "mission",
        "create",
        "--name",
        "M",
        "--country",
        "X",
        "--date",
        "2026-03-15",
        "--timezone",
        "UTC",
    )
    mission = re.search(r"mission id:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,region\nS-1,,North\nS-2,Two,\n")
    result = runner.invoke(app, ["stations", "import", str(bad), "-m", mission])
    assert result.exit_code == 1
    assert "2 bad row(s)" in result.output and "region is required" in result.output


def test_template_check_names_the_problem(tmp_path: Path) -> None:
    assert "OK" in _ok("template", "check", "api/data/default_checklist.yaml")
    broken = tmp_path / "t.yaml"
    broken.write_text("code: t\nversion: 0\ntitle: {en: T}\nlanguages: [en]\nsections: []\n")
    result = runner.invoke(app, ["template", "check", str(broken)])
    assert result.exit_code == 1
    assert "version" in result.output and "sections" in result.output


def test_demo_loads_once_and_prints_working_tokens(client, tmp_path: Path) -> None:
    creds = tmp_path / "demo.txt"
    first = _ok("demo", "--credentials-file", str(creds))
    second = _ok("demo", "--credentials-file", str(creds))
    assert first == second
    observer = re.search(r"observer \S+\s+(pc_\S+)", first).group(1)  # type: ignore[union-attr]
    assert len(client.get("/me/assignments", headers=auth(observer)).json()) == 4
    creds.unlink()  # lost the file: the old demo tokens are revoked, new ones issued
    third = _ok("demo", "--credentials-file", str(creds))
    assert third != first
    assert client.get("/me", headers=auth(observer)).status_code == 401


def test_tokens_for_many_observers_in_one_command(client, tmp_path: Path) -> None:
    out = _ok(
        "mission", "create", "--name", "Bulk", "--country", "Kazakhstan",
        "--date", "2026-03-15", "--timezone", "Asia/Almaty",
    )  # fmt: skip
    mission = re.search(r"mission id:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    stations = tmp_path / "stations.csv"
    stations.write_text("code,name,region\nS-1,One,North\n")
    _ok("stations", "import", str(stations), "-m", mission)
    observers = tmp_path / "observers.csv"
    observers.write_text("code,name,team,stations\nO-1,Anna,T1,S-1\nO-2,Bek,T1,S-1\nO-3,Cem,T2,\n")
    _ok("observers", "import", str(observers), "-m", mission)

    bad = runner.invoke(app, ["token", "observers", "-m", mission, "O-1", "O-9"])
    assert bad.exit_code == 1 and "O-9" in bad.output

    sheet = tmp_path / "tokens.csv"
    _ok("token", "observers", "-m", mission, "O-1", "O-2", "--csv", str(sheet))
    assert sheet.stat().st_mode & 0o077 == 0
    rows = [line.split(",") for line in sheet.read_text().splitlines()]
    assert rows[0] == ["code", "name", "token"]
    assert [r[:2] for r in rows[1:]] == [["O-1", "Anna"], ["O-2", "Bek"]]
    me = client.get("/me", headers=auth(rows[2][2])).json()
    assert me["role"] == "observer" and me["observer_name"] == "Bek"


def test_sms_card_prints_codes_answers_and_an_example(tmp_path: Path) -> None:
    out = _ok("sms", "card", "--template", "default", "--lang", "en", "--prefix", "AST")
    assert "Send: [AST] STATION PHASE" in out
    assert "A2    Was the ballot box shown to be empty" in out
    assert "y/n y yes, n no" in out
    assert re.search(r"^  AST AST-001 v B1y", out, re.M)
    bad = runner.invoke(app, ["sms", "card", "--template", str(tmp_path / "none.yaml")])
    assert bad.exit_code == 1
