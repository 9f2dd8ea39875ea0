"""The README's first mission, walked as a newcomer would: its shell blocks pasted as they
are into a shell, against `pollcheck serve` on a port that is not the default one, with
only the `<…>` placeholders filled in from what the commands before them printed."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"<([a-z ]+)>")
# Where a placeholder's value stands in what the commands before it printed (the last one).
PRINTED = {
    "mission id": re.compile(r"mission id:\s+(\S+)"),
    "admin token": re.compile(r"admin token: (pc_\S+)"),
    "observer token": re.compile(r"\btoken: (pc_\S+)"),
    "viewer token": re.compile(r"\btoken: (pc_\S+)"),
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("POLLCHECK_TEST_DB") == "postgresql",
        reason="walked once, on SQLite, as `make run` serves it",
    ),
]


def first_mission_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A first mission, step by step", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S)


@pytest.fixture
def newcomer(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder like the repository's top (its .venv and examples), a fresh database, and a
    server on a port of its own, started as `make run` starts it."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLLCHECK_", "PYTEST_"))} | {
        "POLLCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'walk.db'}",
        "POLLCHECK_ATTACHMENTS_DIR": str(tmp_path / "attachments"),
        "POLLCHECK_PORT": str(port),
    }
    pollcheck = str(tmp_path / ".venv" / "bin" / "pollcheck")
    if not Path(pollcheck).exists():
        pytest.skip("the README's steps use .venv/bin/pollcheck, made by `make install`")
    subprocess.run([pollcheck, "migrate"], cwd=tmp_path, env=env, check=True, timeout=120)
    server = subprocess.Popen(
        [pollcheck, "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "pollcheck serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "pollcheck serve did not answer in 60 s"
            time.sleep(0.2)
        yield tmp_path, env
    finally:
        server.terminate()
        server.wait(timeout=30)


def _run(folder: Path, env: dict[str, str], script: str) -> str:
    """Run shell lines in the walk's shell: what earlier blocks exported is kept."""
    state = folder / ".exports"
    state.touch()
    done = subprocess.run(
        ["bash", "-c", f"set -eo pipefail\nsource {state}\n{script}\nexport -p > {state}"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{script}\n---\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_first_mission_steps_work_as_written_on_another_port(
    newcomer: tuple[Path, dict[str, str]],
) -> None:
    folder, env = newcomer
    blocks = first_mission_blocks()
    assert blocks and all("8000" not in b or "POLLCHECK_PORT" in b for b in blocks)
    printed: list[str] = []
    for block in blocks:
        pending: list[str] = []
        for line in block.splitlines():
            names = PLACEHOLDER.findall(line)
            if not names:
                pending.append(line)
                continue
            printed.append(_run(folder, env, "\n".join(pending)))
            pending = []
            for name in names:
                values = PRINTED[name].findall(printed[-1]) or PRINTED[name].findall(
                    "".join(printed)
                )
                assert values, f"nothing printed before <{name}> says what to put there"
                line = line.replace(f"<{name}>", values[-1])
            printed.append(_run(folder, env, line))
        printed.append(_run(folder, env, "\n".join(pending)))
    out = "".join(printed)

    assert f"127.0.0.1:{env['POLLCHECK_PORT']}" in _run(folder, env, "echo $BASE")
    assert "6 rows: 6 would be created" in out and "6 rows: 6 were created" in out
    assert '"dry_run":true' in out.replace(" ", "")
    statuses = re.findall(r"HTTP/1\.1 (\d{3})", out)
    assert statuses[:2] == ["201", "200"], out  # the checklist stored once, then replayed
    exports = (folder / ".exports").read_text()
    viewer = re.search(r'VIEWER="?(pc_[^"\s]+)', exports)
    mission = re.search(r'\bM="?([0-9a-f-]{36})', exports)
    assert viewer and mission
    tokens = (folder / "tokens.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in tokens] == ["code", "STO-012", "STO-021", "STO-031"]

    base = f"http://127.0.0.1:{env['POLLCHECK_PORT']}"
    headers = {"Authorization": f"Bearer {viewer.group(1)}"}
    deadline = time.monotonic() + 30
    while not httpx.get(
        f"{base}/missions/{mission.group(1)}/findings/version", headers=headers
    ).json()["caught_up"]:
        assert time.monotonic() < deadline, "the findings never included the checklist"
        time.sleep(0.3)
    coverage = httpx.get(f"{base}/missions/{mission.group(1)}/findings", headers=headers).json()
    assert coverage["totals"]["observations"] == 1
