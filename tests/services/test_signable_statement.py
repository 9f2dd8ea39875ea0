"""Findings a head of mission can sign (issue 18): totals from consistent reports only, no
sentence on zero, clustering against where observers were, coverage by team, each phase
apart, critical answers summed up with an annex, every number traceable to its route."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import docx
from typer.testing import CliRunner

from api.cli import app
from api.services import templates
from api.services.findings import statement, word
from api.services.findings.scope import Filters
from models import Role
from tests.factories import auth, make_mission, make_observer, make_station, make_token
from tests.findings_factories import computed, post, post_count, set_review, view
from tests.services.test_statement import _busy_mission

# A number as each language writes it: "10,700", "59.1%" / "10 700", "59,1 %".
NUMBER = {
    "en": re.compile(r"(?<![\w.,+\-–])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%)?(?![\w\-–])"),
    "ru": re.compile(r"(?<![\w.,+\-–])(\d{1,3}(?:\xa0\d{3})+|\d+)(,\d+)?(\xa0%)?(?![\w\-–])"),
}


def _numbers(text: str, language: str) -> list[tuple[float, bool]]:
    """Every number of a sentence: (value, is a percentage)."""
    out = []
    for whole, decimals, pct in NUMBER[language].findall(text):
        digits = whole.replace(",", "").replace("\xa0", "") if language == "en" else whole
        digits = digits.replace("\xa0", "")
        value = float(digits + (decimals.replace(",", ".") if decimals else ""))
        out.append((value, bool(pct)))
    return out


def _mission_with(session: Any, codes: list[str], **mission: Any) -> tuple[Any, str]:
    """A mission with these stations and one observer assigned to all: (mission, token)."""
    made, _ = make_mission(session, **mission)
    for code in codes:
        make_station(session, made.id, code)
    _, token = make_observer(session, made.id, codes)
    return made, token


def _statement(session: Any, mission_id: Any, language: str = "en") -> dict[str, Any]:
    return computed(session, mission_id, "statement", Filters(), language)


def test_vote_totals_use_only_reports_whose_figures_add_up_and_name_those_left_out(
    client: Any, session: Any
) -> None:
    codes = [f"C-{i}" for i in range(4)]
    mission, token = _mission_with(session, codes)
    # A template where a vote figure may be left blank, so a report can be incomplete.
    own = templates.default_definition().model_copy(deep=True, update={"version": 2})
    for section in own.sections:
        for q in section.questions:
            if q.code == "P_V2":
                q.required = False
    templates.create(session, mission.id, own, publish=True)
    session.commit()
    good = post_count(client, token, "C-0")  # 400 + 185 = 585 valid
    stuffed = post_count(client, token, "C-1", {"P_V1": 5000})  # options far above valid
    verified_bad = post_count(client, token, "C-2", {"P_K": 6})  # V + X + K ≠ B
    later_good = post_count(client, token, "C-2", {"P_V1": 390, "P_V2": 195})
    set_review(session, mission.id, verified_bad, review_state="verified")
    blank = post_count(client, token, "C-3", {"P_V2": None}, template_version=2)

    counting = view(session, mission.id, "counting")
    totals = counting["totals"]
    assert totals["stations"] == 2
    assert [o["votes"] for o in totals["options"]] == [790, 380]  # C-0 and C-2's later one
    assert totals["figures"]["valid"] == 1170
    assert sum(o["share"] for o in totals["options"]) <= 1.0
    inclusion = counting["inclusion"]
    assert {str(r["checklist_id"]) for r in inclusion["included"]} == {good, later_good}
    excluded = {str(r["checklist_id"]): (r["reason"], r["fails"]) for r in inclusion["excluded"]}
    assert excluded == {
        stuffed: ("inconsistent", ["options_sum_to_valid"]),
        verified_bad: ("inconsistent", ["valid_invalid_blank_make_in_box"]),
        blank: ("incomplete", []),
    }
    assert inclusion["excluded_by_reason"] == {
        "inconsistent": 2,
        "incomplete": 1,
        "another_report_used": 0,
    }
    md = view(session, mission.id, "statement")["markdown"]
    assert (
        "The totals leave out counting reports: 2 whose figures fail a consistency check and "
        "1 without every vote figure." in md
    )
    assert "Votes for “Yes”: 67.5% (790); Votes for “No”: 32.5% (380)" in md


def test_no_sentence_is_built_on_zero_and_small_counts_read_naturally(
    client: Any, session: Any
) -> None:
    codes = [f"S-{i}" for i in range(2)]
    mission, token = _mission_with(session, codes, languages=["en", "ru"])
    for code in codes:
        post(client, token, code, "voting")
    view(session, mission.id)
    en, ru = (_statement(session, mission.id, lang) for lang in ("en", "ru"))
    for drafted, language in ((en, "en"), (ru, "ru")):
        for s in drafted["sentences"]:
            assert (0.0, False) not in _numbers(s["text"], language), s["text"]
            assert (0.0, True) not in _numbers(s["text"], language), s["text"]
    md = en["markdown"]
    assert "The opening was not observed." in md and "The count was not observed." in md
    assert "Observers reported on voting in 2 observations at 2 polling stations." in md
    assert "Voting was assessed positively in both observations (H2)." in md
    assert "phase voting" not in md  # the evidence of the phases names each phase once
    assert "За открытием наблюдение не велось." in ru["markdown"]
    assert "Голосование было оценено положительно в обоих наблюдениях (H2)." in ru["markdown"]

    good = post_count(client, token, "S-0")
    view(session, mission.id)
    ru_md = _statement(session, mission.id, "ru")["markdown"]
    assert "Данные протоколов одного отчёта о подсчёте прошли все проверки" in ru_md
    assert "Подсчёт голосов наблюдался на одном избирательном участке" in ru_md

    set_review(session, mission.id, good, review_state="rejected")
    post_count(client, token, "S-1", {"P_K": 6})  # V + X + K ≠ B
    view(session, mission.id)
    en_md, ru_md = (_statement(session, mission.id, lang)["markdown"] for lang in ("en", "ru"))
    assert "The one counting report with protocol figures failed at least one consistency" in en_md
    assert "Данные протоколов единственного отчёта о подсчёте не прошли как минимум" in ru_md


def test_a_problem_is_clustered_only_beyond_its_regions_share_of_the_observations(
    client: Any, session: Any
) -> None:
    """Astana holds 24 of 28 observed stations: six cases there are no cluster; five in
    Almaty (4 of 28 stations) are; two cases are too few to say."""
    mission, admin = make_mission(session)
    capital = [make_station(session, mission.id, f"A-{i}", region="Astana") for i in range(24)]
    south = [make_station(session, mission.id, f"L-{i}", region="Almaty") for i in range(4)]
    _, token = make_observer(session, mission.id, capital + south)
    for code in capital + south:
        answers = {
            "D8": "yes" if code in capital[:6] else "no",
            "D4": "no" if code in south or code == capital[0] else "yes",
            "B1": "no" if code in south[:2] else "yes",
        }
        post(client, token, code, "voting", answers)
    critical = view(session, mission.id, "critical")
    assert critical["clustering"] | {"rule": ""} == {
        "rule": "",
        "min_cases": 5,
        "min_share": 0.5,
        "min_lift": 2.0,
    }
    by = {p["code"]: p for p in critical["by_question"]}
    assert (by["D8"]["top_region"], by["D8"]["pattern"]) == ("Astana", "scattered")
    assert (by["D4"]["top_region"], by["D4"]["pattern"], by["D4"]["lift"]) == (
        "Almaty",
        "clustered",
        5.6,
    )
    assert by["B1"]["pattern"] == "too_few"
    md = view(session, mission.id, "statement")["markdown"]
    assert "concentrated in Astana" not in md
    assert (
        "Was the secrecy of the vote respected: No was concentrated in Almaty, with 80% of its "
        "5 cases there against 14.3% of the observations (D4)." in md
    )
    client.patch(
        f"/missions/{mission.id}",
        json={"settings": {"findings": {"cluster_min_cases": 6}}},
        headers=auth(admin),
    )
    by = {p["code"]: p for p in view(session, mission.id, "critical")["by_question"]}
    assert by["D4"]["pattern"] == "too_few"


def test_a_station_is_covered_when_any_member_of_its_team_reported(
    client: Any, session: Any
) -> None:
    mission, _ = make_mission(session)
    for code in ("T-1", "T-2", "T-3"):
        make_station(session, mission.id, code)
    _, anna = make_observer(session, mission.id, ["T-1", "T-2"], code="ANNA", team="Pair A")
    make_observer(session, mission.id, ["T-1", "T-2"], code="BORIS", team="Pair A")
    make_observer(session, mission.id, ["T-3"], code="SOLO", team=None)
    post(client, anna, "T-1", "voting")
    coverage = view(session, mission.id, "coverage")
    teams = {t["team"]: t for t in coverage["teams_missing"]["data"]}
    assert teams["Pair A"] == {
        "team": "Pair A",
        "members": [
            {"code": "ANNA", "name": "Observer ANNA"},
            {"code": "BORIS", "name": "Observer BORIS"},
        ],
        "assigned": 2,
        "reported": 1,
        "missing": 1,
        "missing_stations": ["T-2"],  # T-1 was reported by Anna for the pair
    }
    assert teams["SOLO"]["members"] == [{"code": "SOLO", "name": "Observer SOLO"}]
    assert coverage["teams_missing"]["count"] == 2
    # Each observer's own figures stay: Boris himself sent nothing.
    individual = {o["code"]: o["missing"] for o in coverage["observers_missing"]["data"]}
    assert individual == {"ANNA": 1, "BORIS": 2, "SOLO": 1}


def test_access_is_reported_per_phase_with_the_count_apart(client: Any, session: Any) -> None:
    codes = [f"S-{i}" for i in range(2)]
    mission, token = _mission_with(session, codes)
    for code in codes:
        post(client, token, code, "opening")
        post(client, token, code, "voting")
    post_count(client, token, "S-0", {"B3": "yes"})
    post_count(client, token, "S-1")
    view(session, mission.id)
    sentences = _statement(session, mission.id)["sentences"]
    access = [s["text"] for s in sentences if s["paragraph"] == "h_access"]
    assert access == [
        "During the opening, observers had full access: they were admitted without "
        "restriction in 2 of 2 observations and none of them was asked to leave or "
        "restricted (B1, B3).",
        "During voting, observers had full access: they were admitted without restriction in "
        "2 of 2 observations and none of them was asked to leave or restricted (B1, B3).",
    ]
    count = [s["text"] for s in sentences if s["paragraph"] == "h_count"]
    assert (
        "During the count, observers were admitted without restriction in 2 of 2 observations; "
        "they were asked to leave or restricted in 1 of 2 observations (B1, B3)." in count
    )


def test_critical_answers_are_summed_up_with_a_table_per_question_in_the_annex(
    client: Any, session: Any
) -> None:
    codes = [f"S-{i}" for i in range(3)]
    mission, token = _mission_with(session, codes)
    pressure = [post(client, token, c, "voting", {"D8": "yes"}) for c in codes[:2]]
    secrecy = post(client, token, codes[2], "voting", {"D4": "no"})
    stuffing = post(client, token, codes[0], "closing", {"E1": "observed"})
    view(session, mission.id)
    drafted = _statement(session, mission.id)
    critical = [s["text"] for s in drafted["sentences"] if s["paragraph"] == "h_critical"]
    assert critical == [
        "Observers recorded 4 critical answers in 4 observations at 3 polling stations; the "
        "most frequent: Did you see intimidation of voters or pressure on them: Yes (2); Was "
        "the secrecy of the vote respected: No (1); Ballot stuffing: Observed (1) (each is "
        "listed in the annex).",
        "Each critical answer was given fewer than 5 times, too few to say whether it "
        "clusters in a region.",
    ]
    tables = {t["title"]: t for t in drafted["annex"]}
    assert list(tables) == [
        "Did you see intimidation of voters or pressure on them: Yes (D8)",
        "Was the secrecy of the vote respected: No (D4)",
        "Ballot stuffing: Observed (E1)",
    ]
    d8 = tables["Did you see intimidation of voters or pressure on them: Yes (D8)"]
    assert d8["columns"] == ["Station", "Region", "Phase", "Observed at", "Checklist"]
    assert sorted(d8["links"]) == sorted(f"/checklists/{i}" for i in pressure)
    assert tables["Ballot stuffing: Observed (E1)"]["links"] == [f"/checklists/{stuffing}"]
    assert tables["Ballot stuffing: Observed (E1)"]["rows"][0][:3] == ["S-0", "Astana", "count"]
    md = drafted["markdown"]
    assert "## Annex: critical answers" in md
    assert f"[{secrecy[:8]}](/checklists/{secrecy})" in md
    analyst = make_token(session, mission.id, Role.analyst)
    assert client.get(f"/checklists/{secrecy}", headers=auth(analyst)).status_code == 200


def test_every_number_of_a_busy_statement_is_the_figure_its_footnote_names(
    client: Any, session: Any
) -> None:
    """In both languages: each number of the text is a figure of the findings route that
    the sentence's footnote names, at the path its evidence gives; none is zero and no share
    is above 100 %."""
    mission = _busy_mission(client, session)
    routes = {
        name: computed(session, mission.id, name, Filters())
        for name in ("findings", "coverage", "counting", "critical", "incidents")
    }
    for language in ("en", "ru"):
        checked = 0
        drafted = _statement(session, mission.id, language)
        notes = [
            line.split(": ", 1)[1]
            for line in drafted["markdown"].splitlines()
            if re.match(r"\[\^\d+\]: ", line)
        ]
        with_notes = [s for s in drafted["sentences"] if s["evidence"]]
        assert len(notes) == len(with_notes)
        for s, footnote in zip(with_notes, notes, strict=True):
            route = s["evidence"]["route"]
            assert footnote.startswith(statement.ROUTES[route] + ": "), (footnote, route)
            figures = s["evidence"]["figures"]
            values, shares = [], []
            for f in figures:
                assert f["path"], s  # every number written was read from the route
                if "share" in f:
                    if isinstance(f["path"], list):
                        num, den = (statement.resolve_path(routes[route], p) for p in f["path"])
                        assert abs(num / den - f["share"]) < 1e-9, (s, f)
                    else:
                        assert statement.resolve_path(routes[route], f["path"]) == f["share"]
                    shares.append(f["share"] * 100)
                else:
                    assert statement.resolve_path(routes[route], f["path"]) == f["value"], f
                    values.append(f["value"])
            for number, is_percent in _numbers(s["text"], language):
                assert number != 0, s["text"]
                if is_percent:
                    assert number <= 100, s["text"]
                    assert any(abs(number - share) <= 0.051 for share in shares), (number, s)
                else:
                    assert number in values, (number, s["text"], values)
                    values.remove(number)
                checked += 1
        assert checked > 50, checked  # the parser found the statement's numbers


W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _footnotes(package: bytes) -> list[str]:
    """The text of each real footnote (Word's separators, ids -1 and 0, left out)."""
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        root = ElementTree.fromstring(z.read("word/footnotes.xml"))
        types = z.read("[Content_Types].xml").decode()
        rels = z.read("word/_rels/document.xml.rels").decode()
        body = z.read("word/document.xml").decode()
    assert 'PartName="/word/footnotes.xml"' in types and "relationships/footnotes" in rels
    notes = [n for n in root.iter(W + "footnote") if int(n.get(W + "id", "0")) > 0]
    references = re.findall(r'<w:footnoteReference w:id="(\d+)"/>', body)
    assert references == [str(i) for i in range(1, len(notes) + 1)]
    return ["".join(t.text or "" for t in n.iter(W + "t")).strip() for n in notes]


def test_the_statement_downloads_as_a_word_document_with_footnotes_and_the_annex(
    client: Any, session: Any
) -> None:
    mission = _busy_mission(client, session)
    viewer = make_token(session, mission.id, Role.viewer)
    url = f"/missions/{mission.id}/statement"
    for language, heading in (("en", "Critical answers"), ("ru", "Критические ответы")):
        r = client.get(f"{url}?format=docx&lang={language}", headers=auth(viewer))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == word.MEDIA_TYPE
        assert f'filename="statement-{language}.docx"' in r.headers["content-disposition"]
        drafted = client.get(f"{url}?format=json&lang={language}", headers=auth(viewer)).json()
        assert _footnotes(r.content) == [s["note"] for s in drafted["sentences"] if s["note"]]
        document = docx.Document(io.BytesIO(r.content))
        text = "\n".join(p.text for p in document.paragraphs)
        assert heading in text
        assert all(s["text"] in text for s in drafted["sentences"])
        assert len(document.tables) == len(drafted["annex"])
        first = drafted["annex"][0]
        assert [c.text for c in document.tables[0].rows[1].cells[:-1]] == first["rows"][0][:-1]
        targets = [rel.target_ref for rel in document.part.rels.values() if rel.is_external]
        assert f"http://testserver{first['links'][0]}" in targets
        unchanged = client.get(
            f"{url}?format=docx&lang={language}",
            headers=auth(viewer) | {"If-None-Match": r.headers["etag"]},
        )
        assert unchanged.status_code == 304


def test_the_command_line_writes_the_statement_as_a_word_document(
    client: Any, session: Any, tmp_path: Path
) -> None:
    mission, _ = make_mission(session, languages=["en", "ru"])
    make_station(session, mission.id, "S-1")
    _, token = make_observer(session, mission.id, ["S-1"])
    post(client, token, "S-1", "voting", {"D8": "yes"})
    out = tmp_path / "statement.docx"
    result = CliRunner().invoke(
        app, ["statement", "--mission", str(mission.id), "--out", str(out), "--lang", "ru"]
    )
    assert result.exit_code == 0, result.output
    notes = _footnotes(out.read_bytes())
    assert notes and all(n.startswith("/findings") for n in notes)
    text = "\n".join(p.text for p in docx.Document(str(out)).paragraphs)
    assert "Запугивание избирателей или давление на них отмечены в 1 из 1 наблюдения (D8)." in text
