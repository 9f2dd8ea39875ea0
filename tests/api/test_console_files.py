"""The console's files: served by Pollcheck itself under a strict policy, with the map tiles
the admin configured, and small enough to load fast on a mission's LAN."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api.routes.web import CONSOLE_DIR, WEB_DIR

FIRST_LOAD_BUDGET = 200 * 1024  # bytes, gzipped


def test_console_is_served_with_a_policy_that_runs_only_its_own_scripts(client) -> None:
    r = client.get("/console", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and "console.js" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "http" not in policy
    assert page.headers["cache-control"] == "no-cache"


def test_console_settings_name_the_tile_url_and_the_policy_lets_those_tiles_in(db) -> None:
    url = "https://{s}.tiles.mission.lan/{z}/{x}/{y}.png"
    with TestClient(create_app(Settings(map_tile_url=url, map_tile_attribution="© OSM"))) as c:
        settings = c.get("/console/settings.json")
        assert settings.json() == {"map_tile_url": url, "map_tile_attribution": "© OSM"}
        policy = c.get("/console/").headers["content-security-policy"]
    assert "img-src 'self' blob: data: https://*.tiles.mission.lan;" in policy


def test_no_tile_url_by_default_so_the_map_draws_on_a_plain_background(client) -> None:
    assert client.get("/console/settings.json").json()["map_tile_url"] == ""


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "https://tiles.example.org/tile.png"])
def test_a_tile_url_that_is_not_a_tile_template_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="POLLCHECK_MAP_TILE_URL"):
        Settings(map_tile_url=bad)


def test_console_first_load_is_within_its_budget() -> None:
    """Everything index.html loads, gzipped as the server sends it (level 9)."""
    index = (CONSOLE_DIR / "index.html").read_text()
    paths = re.findall(r'(?:src|href)="/(console|app)/([^"]+)"', index)
    assert ("console", "console.js") in paths and ("app", "dom.js") in paths
    assert ("console", "vendor/leaflet-1.9.4/leaflet.js") in paths
    folder = {"console": CONSOLE_DIR, "app": WEB_DIR}
    files = [CONSOLE_DIR / "index.html", *(folder[where] / p for where, p in paths)]
    total = sum(len(gzip.compress(Path(f).read_bytes(), 9)) for f in files)
    assert total <= FIRST_LOAD_BUDGET, f"{total} bytes gzipped"
