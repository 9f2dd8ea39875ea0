"""Sign-in QR codes for observers' phones: a new token per observer, inside a link to the
web app (`…/app/#token=…`). The token sits in the fragment, which browsers never send to a
server, and the app removes it from the address bar as soon as it has read it.

With `collect`, the code holds ODK Collect's settings instead (Collect's own format: the
settings JSON, zlib-compressed, then base64): the server URL with the observer's key path
(`…/key/<token>`), the observer's name as the form metadata's user name, and forms kept
exactly as the server lists them. Scanning it in Collect ("Add project") sets the phone up.
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import qrcode
import qrcode.image.svg
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import credentials
from models import Assignment, Mission, Observer, Station
from models.base import table_of

OBS = table_of(Observer)
ASG = table_of(Assignment)
ST = table_of(Station)


@dataclass(frozen=True, slots=True)
class SignInCard:
    code: str
    name: str
    stations: list[str]
    token: str
    url: str
    app: str  # where to type the code by hand, printed on the card
    revoked: int = 0  # earlier tokens of this observer revoked when the card was issued
    collect: str = ""  # ODK Collect's settings (`collect_payload`) when asked for

    @property
    def qr(self) -> str:
        """What the card's code holds: Collect's settings, or the web app's sign-in link."""
        return self.collect or self.url


def app_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/app/"


def signin_url(base_url: str, token: str) -> str:
    return app_url(base_url) + "#token=" + quote(token, safe="")


def collect_url(base_url: str, token: str) -> str:
    """The server URL Collect appends `/formList` and `/submission` to."""
    return base_url.rstrip("/") + "/key/" + quote(token, safe="")


def collect_settings(base_url: str, token: str, name: str, mission: str) -> dict[str, Any]:
    """ODK Collect's settings for one observer: Pollcheck's key path, the observer's name,
    the forms exactly as the server lists them (new versions in, retired ones out), sending
    as soon as a form is finalised; the admin settings left as Collect has them."""
    return {
        "general": {
            "server_url": collect_url(base_url, token),
            "username": "",
            "password": "",
            "metadata_username": name,
            "form_update_mode": "match_exactly",
            "periodic_form_updates_check": "every_one_hour",
            "autosend": "wifi_and_cellular",
        },
        "admin": {},
        "project": {"name": mission, "icon": mission[:1].upper() or "P", "color": "#1f5fa8"},
    }


def collect_payload(settings: dict[str, Any]) -> str:
    """What Collect reads from a settings QR code: the JSON, zlib-compressed, base64."""
    raw = json.dumps(settings, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw)).decode()


def is_local(base_url: str) -> bool:
    """A phone cannot reach the admin's own loopback address."""
    host = urlsplit(base_url).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def issue_cards(
    session: Session,
    mission_id: uuid.UUID,
    observer_codes: list[str] | None,
    base_url: str,
    revoke_previous: bool = False,
    collect: bool = False,
) -> list[SignInCard]:
    """A new observer token for each observer named (every observer when None); with
    `revoke_previous`, the observer's earlier tokens stop working (a card lost or reprinted);
    with `collect`, each card also carries ODK Collect's settings for the observer."""
    issued = credentials.issue_for_observers(
        session, mission_id, observer_codes, "phone (QR)", revoke_previous=revoke_previous
    )
    stations: dict[uuid.UUID, list[str]] = {}
    for obs_id, code in session.execute(
        select(ASG.c.observer_id, ST.c.code)
        .select_from(ASG.join(ST, ST.c.id == ASG.c.station_id))
        .where(ASG.c.mission_id == mission_id)
        .order_by(ST.c.code)
    ):
        stations.setdefault(obs_id, []).append(code)
    mission = session.get(Mission, mission_id)
    title = mission.name if mission else "Pollcheck"
    return [
        SignInCard(
            o.observer_code,
            o.observer_name,
            stations.get(o.observer_id, []) if o.observer_id else [],
            o.token,
            signin_url(base_url, o.token),
            app_url(base_url),
            o.revoked_previous,
            collect_payload(collect_settings(base_url, o.token, o.observer_name, title))
            if collect
            else "",
        )
        for o in issued
    ]


def terminal_qr(data: str) -> str:
    """The code drawn with block characters, readable by a phone from the admin's screen."""
    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(data)
    qr.make(fit=True)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


def svg_qr(data: str) -> str:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=12)
    return str(image.to_string(encoding="unicode"))


SHEET_STYLE = """
body { font-family: system-ui, sans-serif; margin: 12mm; }
h1 { font-size: 16pt; }
.cards { display: grid; grid-template-columns: 1fr 1fr; gap: 8mm; }
.card { border: 1px dashed #888; padding: 6mm; break-inside: avoid; }
.card svg { width: 45mm; height: 45mm; float: right; margin-left: 4mm; }
.name { font-size: 14pt; font-weight: 700; }
.token { font-family: monospace; font-size: 8pt; word-break: break-all; clear: both; }
.how { font-size: 9pt; color: #333; }
.where { font-family: monospace; font-size: 10pt; }
"""

HOW = {
    "en": "Open the phone's camera, point it at the code and tap the link. "
    "Keep this card private: it is your sign-in.",
    "ru": "Откройте камеру телефона, наведите её на код и нажмите на ссылку. "
    "Храните эту карточку в тайне: это ваш вход.",
}
HOW_COLLECT = {
    "en": "In ODK Collect, choose Add project, then Configure with QR code, and scan this "
    "code. Keep this card private: it is your key.",
    "ru": "В ODK Collect выберите «Добавить проект», затем «Настроить по QR-коду» и "
    "отсканируйте этот код. Храните эту карточку в тайне: это ваш ключ.",
}
# With no camera that reads QR codes: the address to open and the code to type there.
BY_HAND = {
    "en": "No camera? Open {app} and type the code below.",
    "ru": "Нет камеры? Откройте {app} и введите код ниже.",
}


def _how(card: SignInCard, langs: list[str]) -> list[str]:
    if card.collect:
        return [f"<p class='how'>{html.escape(HOW_COLLECT[x])}</p>" for x in langs]
    return [
        *(f"<p class='how'>{html.escape(HOW[x])}</p>" for x in langs),
        f"<p class='where'>{html.escape(card.app)}</p>",
        *(f"<p class='how'>{html.escape(BY_HAND[x].format(app=card.app))}</p>" for x in langs),
    ]


def sheet(mission: Mission, cards: list[SignInCard]) -> str:
    """A printable page, one card per observer, to cut out and hand over at the briefing."""
    langs = [x for x in mission.languages if x in HOW] or ["en"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(mission.name)}: sign-in cards</title>",
        f"<style>{SHEET_STYLE}</style></head><body>",
        f"<h1>{html.escape(mission.name)}</h1><div class='cards'>",
    ]
    for c in cards:
        parts += [
            "<div class='card'>",
            svg_qr(c.qr),
            f"<div class='name'>{html.escape(c.name)}</div>",
            f"<div>{html.escape(c.code)} · {html.escape(' '.join(c.stations) or '-')}</div>",
            *_how(c, langs),
            f"<p class='token'>{html.escape(c.token)}</p>",
            "</div>",
        ]
    parts.append("</div></body></html>")
    return "".join(parts)
