"""The draft statement in a language other than English: every word from the phrase table
or the template, numbers and plural forms as the language has them (CLDR, via Babel)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from api.services.findings import statement, views
from api.services.findings.counting import CHECKS
from api.services.findings.scope import Filters
from tests.factories import make_mission, make_observer, make_station
from tests.findings_factories import post, post_count, set_review, view

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FIELD = re.compile(r"(\{[^}]*\}|#)")


def _shout(text: str) -> str:
    """A stand-in translation: the phrase's words in capitals, its fields left alone."""
    return "".join(part if FIELD.fullmatch(part) else part.upper() for part in FIELD.split(text))


def _stand_in_language() -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, value in statement.PHRASES["en"].items():
        if isinstance(value, dict):
            table[key] = {form: _shout(text) for form, text in value.items()}
        else:
            table[key] = _shout(value)
    table |= {f"check_{name}": rule.upper() for name, rule in CHECKS.items()}
    return table


def _busy_mission(client: Any, session: Any) -> Any:
    """Every kind of sentence: shares above and below the threshold, critical answers
    clustered and scattered, a failed check, a conflict, totals, an incident."""
    mission, _ = make_mission(session, languages=["en", "ru"])
    codes = [make_station(session, mission.id, f"N-{i}", region="North") for i in range(14)]
    codes += [make_station(session, mission.id, f"S-{i}", region="South") for i in range(12)]
    codes.append(make_station(session, mission.id, "X-1", country="Turkey", post="Ankara"))
    _, token = make_observer(session, mission.id, codes)
    for i, code in enumerate(codes):
        post(client, token, code, "opening", {"B1": "no"} if i == 3 else None)
        pressure = "yes" if code.startswith("N") and i % 2 else "no"
        post(client, token, code, "voting", {"D8": pressure, "D4": "no" if i % 5 else "yes"})
        post_count(client, token, code, {"P_V1": 300 + i, "P_V2": 285 - i} if i % 3 else None)
    verified = post_count(client, token, codes[1], {"P_K": 6})
    set_review(session, mission.id, verified, review_state="verified")
    post(client, token, codes[2], "incident", {"G1": "violence", "G2": "observed"})
    view(session, mission.id)  # folds what came in
    return mission


def test_every_word_of_the_statement_comes_from_the_language_tables(
    client: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a complete table for Russian (here English in capitals), no English word of
    the code's own is left: the rest is the template's Russian labels, places and codes."""
    monkeypatch.setitem(statement.PHRASES, "ru", _stand_in_language())
    mission = _busy_mission(client, session)
    drafted = views.compute(session, mission.id, "statement", Filters(), "ru")
    keys = {s["key"] for s in drafted["sentences"]}
    assert {"checks_fail", "conflicts", "totals", "critical", "incidents", "secrecy"} <= keys
    assert "% OF 82 OBSERVATIONS (" in drafted["markdown"]  # a share above the threshold
    lines = drafted["markdown"].splitlines()
    # The footnotes list the evidence as data (its keys, phase and check names) in the
    # table's words: "QUESTIONS D4", "CHECKLISTS …".
    notes = [line for line in lines if line.startswith("[^")]
    assert any("QUESTIONS D4" in n for n in notes) and any("CHECKLISTS " in n for n in notes)
    words = UUID.sub("", "\n".join(line for line in lines if not line.startswith("[^")))
    assert re.findall(r"\b[a-z]{2,}\b", words) == [], words
    assert drafted["fallback"] == []
    assert "ОТКРЫТИЕ" not in words and "В ЦЕЛОМ, МИССИЯ" not in words  # not a real translation
    assert "IN ALL, THE MISSION RECEIVED 83 OBSERVATIONS AT 27 POLLING STATIONS." in words
    assert "Число голосов «Да»:" in words  # the template's own Russian label


def test_a_language_without_a_table_falls_back_to_english_and_says_so(
    client: Any, session: Any
) -> None:
    mission = _busy_mission(client, session)
    drafted = views.compute(session, mission.id, "statement", Filters(), "ru")
    assert "total" in drafted["fallback"] and "station" in drafted["fallback"]
    assert (
        "In all, the Mission received 83 observations at 27 polling stations."
        in (drafted["markdown"])
    )


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "1 участок"),
        (3, "3 участка"),
        (5, "5 участков"),
        (11, "11 участков"),
        (21, "21 участок"),
        (22, "22 участка"),
        (1000, "1\xa0000 участков"),
    ],
)
def test_counts_take_the_plural_form_their_language_asks_for(
    n: int, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    forms = {"one": "# участок", "few": "# участка", "many": "# участков", "other": "# участка"}
    monkeypatch.setitem(statement.PHRASES, "ru", {"station": forms})
    assert statement.Writer("ru", 30).counted(n, "station") == expected


def test_numbers_and_shares_are_written_as_the_language_writes_them() -> None:
    english, russian = statement.Writer("en", 30), statement.Writer("ru", 30)
    assert (english.percent(0.6838), english.percent(0.25), english.number(27000)) == (
        "68.4%",
        "25%",
        "27,000",
    )
    assert (russian.percent(0.6838), russian.number(27000)) == ("68,4\xa0%", "27\xa0000")
    assert statement.Writer("xx", 30).counted(1, "station") == "one polling station"
