"""The draft statement: the words of each finding, and the statement in a language other
than English (every word from the phrase table or the template, numbers and plural forms as
the language has them: CLDR, via Babel)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from api.services.findings import statement
from api.services.findings.counting import CHECKS
from api.services.findings.scope import Filters
from tests.factories import make_mission, make_observer, make_station
from tests.findings_factories import computed, post, post_count, set_review, view

# A checklist's id, whole or as the evidence tables' short "[ffefcafc]": data, not words,
# even when every one of its hex digits is a letter.
IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\[[0-9a-f]{8}\]")
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
    """Every kind of sentence: critical answers clustered and scattered, irregularities at
    the count, a failed check, a report left out of the totals, a conflict, totals, an
    incident."""
    mission, _ = make_mission(session, languages=["en", "ru"])
    codes = [make_station(session, mission.id, f"N-{i}", region="North") for i in range(14)]
    codes += [make_station(session, mission.id, f"S-{i}", region="South") for i in range(12)]
    codes += [make_station(session, mission.id, f"E-{i}", region="East") for i in range(4)]
    codes.append(make_station(session, mission.id, "X-1", country="Turkey", post="Ankara"))
    _, token = make_observer(session, mission.id, codes)
    for i, code in enumerate(codes):
        post(client, token, code, "opening", {"B1": "no"} if i == 3 else None)
        # Intimidation: in the East (4 of 31 stations) and once in the North.
        pressure = "yes" if code.startswith("E") or code == "N-1" else "no"
        post(client, token, code, "voting", {"D8": pressure, "D4": "no" if i % 5 else "yes"})
        count = {"P_V1": 300 + i, "P_V2": 285 - i} if i % 3 else {}
        if code == "S-0":  # ballot stuffing seen at the count
            count |= {"E1": "observed"}
        post_count(client, token, code, count or None)
    verified = post_count(client, token, codes[1], {"P_K": 6})
    set_review(session, mission.id, verified, review_state="verified")
    post(client, token, codes[2], "incident", {"G1": "violence", "G2": "observed"})
    view(session, mission.id)  # folds what came in
    return mission


def test_every_finding_of_a_busy_mission_is_worded_with_its_numbers(
    client: Any, session: Any
) -> None:
    mission = _busy_mission(client, session)
    md = computed(session, mission.id, "statement", Filters(), "en")["markdown"]
    expected = [
        "During the opening, observers were admitted without restriction in 96.8% of 31 "
        "observations (30); none of them was asked to leave or restricted (B1, B3).",
        "The secrecy of the vote was not respected in 77.4% of 31 observations (24) (D4).",
        "Intimidation of or pressure on voters was seen in 16.1% of 31 observations (5) (D8).",
        "The count was observed at 31 polling stations and assessed positively in all 32 "
        "observations (H4).",
        "Asked “Could a wheelchair user enter the polling station independently (step-free "
        "entrance)?”, observers answered yes in 100% of 31 observations (31) (C1).",
        "Ballot stuffing (count): observed in 1 of 32 observations (E1).",
        "1 of 32 counting reports with protocol figures failed at least one consistency "
        "check: valid + invalid + blank = ballots in the box (V+X+K = B) (1).",
        "The totals leave out counting reports: 1 whose figures fail a consistency check.",
        "At one polling station, two reports of the same count disagree; the totals use one "
        "report per station (the latest verified, else the latest).",
        # The verified report of N-1 fails a check: the totals take its other report.
        "At the 31 polling stations where the figures were copied, the valid votes were "
        "divided as follows: Votes for “Yes”: 59% (10,700); Votes for “No”: 41% (7,435); "
        "turnout there was 60%.",
        "Observers sent one incident report; the most frequent type was Violence or "
        "disruption (1).",
        "Observers recorded 32 critical answers in 27 observations at 24 polling stations; "
        "the most frequent: Was the secrecy of the vote respected: No (24); Did you see "
        "intimidation of voters or pressure on them: Yes (5); Were you allowed into the "
        "polling station without restriction: No (1) (each is listed in the annex).",
        "Did you see intimidation of voters or pressure on them: Yes was concentrated in "
        "East, with 80% of its 5 cases there against 12.6% of the observations (D8).",
    ]
    missing = [sentence for sentence in expected if sentence not in md]
    assert missing == [], md
    assert "Quick count" not in md  # purposive: no estimate


def test_every_word_of_the_statement_comes_from_the_language_tables(
    client: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a complete table for Russian (here English in capitals), no English word of
    the code's own is left: the rest is the template's Russian labels, places and codes."""
    monkeypatch.setitem(statement.PHRASES, "ru", _stand_in_language())
    mission = _busy_mission(client, session)
    drafted = computed(session, mission.id, "statement", Filters(), "ru")
    keys = {s["key"] for s in drafted["sentences"]}
    assert {"checks_fail", "conflicts", "totals", "critical_summary", "incidents"} <= keys
    assert {"critical_clustered", "totals_excluded", "secrecy", "irregular_observed"} <= keys
    assert "% OF 32 OBSERVATIONS (" in drafted["markdown"]  # a share above the threshold
    lines = drafted["markdown"].splitlines()
    # The footnotes list the evidence as data (its keys, phase and check names) in the
    # table's words: "QUESTIONS D4", "CHECKLISTS …".
    notes = [line for line in lines if line.startswith("[^")]
    assert any("QUESTIONS D4" in n for n in notes) and any("CHECKLISTS " in n for n in notes)
    words = IDS.sub("", "\n".join(line for line in lines if not line.startswith("[^")))
    words = words.replace("(/checklists/)", "")  # the annex's links to the evidence
    assert re.findall(r"\b[a-z]{2,}\b", words) == [], words
    assert drafted["fallback"] == []
    assert "ОТКРЫТИЕ" not in words and "В ЦЕЛОМ, МИССИЯ" not in words  # not a real translation
    assert "IN ALL, THE MISSION RECEIVED 95 OBSERVATIONS AT " in words
    assert "Число голосов «Да»:" in words  # the template's own Russian label


def test_a_language_without_a_table_falls_back_to_english_and_says_so(
    client: Any, session: Any
) -> None:
    mission = _busy_mission(client, session)
    drafted = computed(session, mission.id, "statement", Filters(), "kk")
    assert "total" in drafted["fallback"] and "station" in drafted["fallback"]
    assert (
        "In all, the Mission received 95 observations at 31 polling stations."
        in (drafted["markdown"])
    )


def test_the_statement_in_russian_declines_its_counts(client: Any, session: Any) -> None:
    """The Russian table: every sentence there, counts in the case and number the sentence
    needs ("на 27 избирательных участках", "с 27 избирательных участков", "на одном
    избирательном участке"), numbers and shares written the Russian way."""
    mission = _busy_mission(client, session)
    drafted = computed(session, mission.id, "statement", Filters(), "ru")
    assert drafted["fallback"] == []
    md = drafted["markdown"]
    nb = "\xa0"  # Russian puts a no-break space before % and between thousands
    expected = [
        "Миссия наблюдала за голосованием на 31 избирательном участке в стране (East, North "
        "и South) и за рубежом (Turkey).",
        "Всего Миссия получила 95 наблюдений с 31 избирательного участка.",
        "Открытие было оценено положительно во всех 31 наблюдении (H1).",
        f"Во время открытия наблюдателей допускали без ограничений в 96,8{nb}% из 31 "
        "наблюдения (30);",
        f"Тайна голосования не соблюдалась в 77,4{nb}% из 31 наблюдения (24) (D4).",
        "Подсчёт голосов наблюдался на 31 избирательном участке и был оценён положительно во "
        "всех 32 наблюдениях (H4).",
        "Вброс бюллетеней (подсчёт голосов): замечено в 1 из 32 наблюдений (E1).",
        "в 1 из 32 отчётов о подсчёте не выполнена как минимум одна проверка — действительные "
        "+ недействительные + пустые = бюллетени в ящиках (V+X+K = B) (1).",
        "В итогах не учтены отчёты о подсчёте: с несогласованными данными — 1.",
        "На одном избирательном участке два отчёта об одном и том же подсчёте расходятся;",
        f"Число голосов «Да»: 59{nb}% (10{nb}700); Число голосов «Нет»: 41{nb}% "
        f"(7{nb}435); явка там — 60{nb}%.",
        "Наблюдатели направили одно сообщение об инциденте; наиболее частый тип — «Насилие "
        "или беспорядки» (1).",
        "Наблюдатели зафиксировали 32 критических ответа в 27 наблюдениях на 24 избирательных "
        "участках; чаще всего: Соблюдалась ли тайна голосования: «Нет» (24);",
        "Наблюдали ли вы запугивание избирателей или давление на них: «Да» — сосредоточено в "
        f"регионе East: там 80{nb}% из 5 случаев при 12,6{nb}% наблюдений (D8).",
    ]
    missing = [sentence for sentence in expected if sentence not in md]
    assert missing == [], md


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


@pytest.mark.parametrize("language", ["fr", "pt-BR", "uk"])
def test_a_language_without_a_table_reads_english_by_english_rules(language: str) -> None:
    """French counts 0 as singular and Ukrainian 21; their English stand-in must not."""
    writer = statement.Writer(language, 30)
    assert writer.counted(0, "station") == "0 polling stations"
    assert writer.counted(21, "station") == "21 polling stations"
    assert writer.percent(0.988) == "98.8%" and "station" in writer.fallback


def test_a_regional_variant_reads_its_language_table() -> None:
    writer = statement.Writer("ru-RU", 30)
    assert writer.counted(21, "station_loc") == "21 избирательном участке"
    assert writer.fallback == [] and writer.percent(0.5) == "50\xa0%"


def test_numbers_and_shares_are_written_as_the_language_writes_them() -> None:
    english, russian = statement.Writer("en", 30), statement.Writer("ru", 30)
    assert (english.percent(0.6838), english.percent(0.25), english.number(27000)) == (
        "68.4%",
        "25%",
        "27,000",
    )
    assert (russian.percent(0.6838), russian.number(27000)) == ("68,4\xa0%", "27\xa0000")
    assert statement.Writer("xx", 30).counted(1, "station") == "one polling station"


def _sentence_keys(session: Any, mission_id: Any) -> set[str]:
    drafted = computed(session, mission_id, "statement", Filters(), "en")
    return {s["key"] for s in drafted["sentences"]}


def test_a_template_names_the_questions_its_statement_words(client: Any, session: Any) -> None:
    """A mission's own template says which of its questions are the voting assessment,
    intimidation and so on; a role it leaves out leaves its sentence out."""
    from api.checklist_schema import StatementQuestions
    from api.services import templates

    mission, _ = make_mission(session)
    station = make_station(session, mission.id, "N-1")
    _, token = make_observer(session, mission.id, [station])
    roles = StatementQuestions(voting_assessment="H2", intimidation="D8")
    own = templates.default_definition().model_copy(update={"version": 2, "statement": roles})
    templates.create(session, mission.id, own, publish=True)
    session.commit()
    post(client, token, "N-1", "voting", {"D8": "yes", "D4": "no"}, template_version=2)
    view(session, mission.id)
    keys = _sentence_keys(session, mission.id)
    assert {"voting_positive", "intimidation"} <= keys
    assert not keys & {"secrecy", "access_full", "access_restricted", "accessibility"}


def test_a_template_stored_without_the_block_gets_the_default_roles_that_fit(
    client: Any, session: Any
) -> None:
    """Templates stored before the `statement` block existed keep their statement."""
    from sqlalchemy import update

    from models import ChecklistTemplate

    mission, _ = make_mission(session)
    stored = session.get(ChecklistTemplate, _template_id(session, mission.id))
    definition = dict(stored.definition)
    del definition["statement"]
    session.execute(
        update(ChecklistTemplate)
        .where(ChecklistTemplate.id == stored.id)
        .values(definition=definition)
    )
    session.commit()
    station = make_station(session, mission.id, "N-1")
    _, token = make_observer(session, mission.id, [station])
    post(client, token, "N-1", "opening")
    post(client, token, "N-1", "voting", {"D8": "yes", "D4": "no"})
    view(session, mission.id)
    keys = _sentence_keys(session, mission.id)
    assert {"opening_positive", "access_full", "voting_positive", "secrecy"} <= keys
    assert {"intimidation", "accessibility"} <= keys


def _template_id(session: Any, mission_id: Any) -> Any:
    from sqlalchemy import select

    from models import ChecklistTemplate

    return session.scalar(
        select(ChecklistTemplate.id).where(ChecklistTemplate.mission_id == mission_id)
    )
