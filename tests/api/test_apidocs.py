"""/docs and /redoc work on a network without internet: the pages load every script, style
and icon from Pollcheck itself."""

from __future__ import annotations

import re

import pytest

# Whatever a page may load: src, href and spec-url attributes, URLs in its inline script.
_REFERENCES = re.compile(
    r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*['"]([^'"]+)['"]"""
)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_another_host(client, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    found = [a or b for a, b in _REFERENCES.findall(r.text)]
    assert any(ref.endswith(".js") for ref in found), found
    assert "/openapi.json" in found
    for ref in found:
        assert ref.startswith("/") and not ref.startswith("//"), f"{page} loads {ref}"
        served = client.get(ref)
        assert served.status_code == 200, ref
    assert "http://" not in r.text and "https://" not in r.text
    # What the libraries would fetch by themselves, the browser refuses.
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_swagger_ui_asks_no_outside_validator(client) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text
