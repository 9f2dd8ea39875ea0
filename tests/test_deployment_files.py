"""docker-compose.yml, the Dockerfile and the README describe the same deployment."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_the_api_on_postgresql_16_with_a_health_check() -> None:
    services = _compose()["services"]
    assert services["db"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    api = services["api"]
    assert api["environment"]["POLLCHECK_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in api["environment"]["POLLCHECK_DATABASE_URL"]
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    assert "8000:8000" in api["ports"]


def test_compose_migrates_before_the_api_starts() -> None:
    services = _compose()["services"]
    assert services["migrate"]["command"] == ["pollcheck", "migrate"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["environment"] == services["api"]["environment"]


def test_compose_commands_are_real_cli_commands_and_in_the_readme() -> None:
    from typer.main import get_command

    from api.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    readme = (ROOT / "README.md").read_text()
    for name in ("migrate", "api", "fold"):
        command = _compose()["services"][name]["command"]
        assert command[0] == "pollcheck" and command[1] in commands
        assert f"pollcheck {command[1]}" in readme
    assert "docker compose up --build" in readme


def test_compose_folds_in_a_service_of_its_own_and_the_api_leaves_it_to_it() -> None:
    services = _compose()["services"]
    assert services["fold"]["command"] == ["pollcheck", "fold"]
    assert services["fold"]["environment"] == services["api"]["environment"]
    assert services["fold"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["api"]["environment"]["POLLCHECK_FINDINGS_FOLD_ELSEWHERE"] == "true"
    # Pacing by the findings' lag: off unless the shell or .env sets it (README).
    pacing = services["api"]["environment"]["POLLCHECK_INTAKE_LAG_TARGET_S"]
    assert pacing == "${POLLCHECK_INTAKE_LAG_TARGET_S:-0}"


def test_dockerfile_installs_the_lock_file_and_serves() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert re.search(r'CMD \["pollcheck", "serve"\]', dockerfile)
    for copied in ("api", "models", "migrations", "alembic.ini"):
        assert f"COPY {copied}" in dockerfile


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    return dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", text, re.M))


def test_the_production_lock_holds_the_runtime_and_no_development_tool() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    prod, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")

    def name(requirement: str) -> str:
        found = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert found
        return found.group(0).lower().replace("_", "-")

    assert {name(r) for r in project["dependencies"]} <= set(prod)
    tools = {name(r) for r in project["optional-dependencies"]["dev"]}
    assert tools <= set(dev)
    assert not tools & set(prod), f"development tools in the production lock: {tools & set(prod)}"
    # The tests run what production runs: the same version of every shared package.
    assert {p: dev[p] for p in prod} == prod


def test_readme_quick_start_is_two_make_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick and "make test" in quick
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: install", makefile, re.M)
    assert re.search(r"^test: install", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    from api.config import Settings

    table = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `(POLLCHECK_[A-Z0-9_]+)`", table, re.M))
    rows |= {f"POLLCHECK_{n}" for n in ("HOST", "PORT", "WORKERS")}  # one row for the three
    missing = {f"POLLCHECK_{name.upper()}" for name in Settings.model_fields} - rows
    assert not missing, f"settings without a row in README's Configuration table: {missing}"


def test_the_readme_configuration_table_gives_each_number_and_switch_its_default() -> None:
    """A default changed in `api/config.py` is changed in the table too (numbers and
    switches; addresses and paths are described rather than quoted there)."""
    from api.config import Settings

    table = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    shown = dict(re.findall(r"^\| `(POLLCHECK_[A-Z0-9_]+)` \| `([^`|]*)` \|", table, re.M))
    wrong = {}
    for name, field in Settings.model_fields.items():
        default, row = field.default, shown.get(f"POLLCHECK_{name.upper()}")
        if row is None or not isinstance(default, (bool, int, float)):
            continue
        if isinstance(default, bool):
            agrees = row == str(default).lower()
        else:
            agrees = re.fullmatch(r"-?[0-9_.]+", row) is not None and float(row) == default
        if not agrees:
            wrong[name] = (row, default)
    assert not wrong, f"README's table against the settings' defaults: {wrong}"
    assert (
        float(shown["POLLCHECK_FINDINGS_CACHE_S"])
        == Settings.model_fields["findings_cache_s"].default
    )


def test_compose_scale_profile_has_two_nodes_through_pgbouncer_reading_a_replica() -> None:
    services = _compose()["services"]
    scale = {name for name, s in services.items() if "scale" in s.get("profiles", [])}
    assert scale == {"db-replica", "pgbouncer", "api-a", "api-b"}
    assert not [n for n, s in services.items() if n not in scale and s.get("profiles")]
    replica_script = (ROOT / "deploy/postgres/replica.sh").read_text()
    assert "pg_basebackup -h db" in replica_script and " -R " in replica_script
    primary_init = (ROOT / "deploy/postgres/primary-replication.sh").read_text()
    assert "REPLICATION" in primary_init and "host replication replicator" in primary_init
    mounted = " ".join(services["db"]["volumes"])
    assert "./deploy/postgres/primary-replication.sh:/docker-entrypoint-initdb.d/" in mounted
    assert services["pgbouncer"]["environment"]["POOL_MODE"] == "transaction"
    for node in ("api-a", "api-b"):
        env = services[node]["environment"]
        assert "@pgbouncer:" in env["POLLCHECK_DATABASE_URL"]
        assert env["POLLCHECK_DB_PGBOUNCER"] == "true"
        assert "@db:" in env["POLLCHECK_DIRECT_DATABASE_URL"]
        assert "@db-replica:" in env["POLLCHECK_READ_DATABASE_URL"]
        # The fold runs once, in its own service, on the primary directly.
        assert env["POLLCHECK_FINDINGS_FOLD_ELSEWHERE"] == "true"
        assert services[node]["command"] == services["api"]["command"]
    assert "@db:" in services["fold"]["environment"]["POLLCHECK_DATABASE_URL"]
    readme = (ROOT / "README.md").read_text()
    assert "docker compose --profile scale up --build" in readme
    for setting in ("POLLCHECK_READ_DATABASE_URL", "POLLCHECK_DIRECT_DATABASE_URL"):
        assert setting in readme
    assert "POLLCHECK_DB_PGBOUNCER" in readme


def test_the_deploy_scripts_are_executable_posix_shell() -> None:
    for script in (ROOT / "deploy/postgres").glob("*.sh"):
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
        assert script.read_text().startswith("#!/bin/sh\n")
        subprocess.run(["sh", "-n", str(script)], check=True)
