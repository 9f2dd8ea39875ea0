"""The SMS format: every valid checklist survives encoding and parsing, documented noise
changes nothing, and anything else is an error naming the token and what would be right."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.checklist_schema import NA, SCALE4, QuestionType, TemplateDefinition
from api.services.sms.codes import PHASE_LETTER, SmsCodes, option_codes
from api.services.templates import default_definition

DEFAULT = SmsCodes(default_definition())
PHASES = ["opening", "voting", "closing", "incident"]
SMS_TYPES = list(QuestionType)
SEPARATORS = " ,.;:-/\t\r\n"
TEXTS = (
    st.text(alphabet="abc XYZ 09.,!?-'йцу", min_size=1, max_size=40)
    .map(lambda t: t.strip(SEPARATORS))
    .filter(lambda t: t and t.lower() not in ("x", "na"))
)


@st.composite
def templates(draw: st.DrawFn) -> TemplateDefinition:
    """Templates whose codes begin one another (B1, B12) and whose choices run past the
    22 one-letter codes."""
    codes = draw(
        st.lists(
            st.from_regex(r"[A-DHO][0-9lI]{0,2}", fullmatch=True).filter(lambda c: c.isalnum()),
            min_size=1,
            max_size=12,
            unique_by=str.upper,
        )
    )
    questions = []
    for code in codes:
        qtype = draw(st.sampled_from(SMS_TYPES))
        q: dict[str, Any] = {
            "code": code,
            "type": qtype.value,
            "label": {"en": code},
            "allow_na": draw(st.booleans()),
        }
        if qtype in (QuestionType.single, QuestionType.multi):
            n = draw(st.integers(1, 30))
            q["options"] = [{"code": f"opt{i}", "label": {"en": f"o{i}"}} for i in range(n)]
        questions.append(q)
    phases = draw(st.lists(st.sampled_from(PHASES), max_size=2, unique=True))
    return TemplateDefinition.model_validate(
        {
            "code": "t",
            "version": 1,
            "title": {"en": "t"},
            "languages": ["en"],
            "sections": [
                {"code": "S", "title": {"en": "s"}, "phases": phases, "questions": questions}
            ],
        }
    )


def _value(draw: st.DrawFn, q: Any) -> Any:
    if q.allow_na and draw(st.integers(0, 5)) == 0:
        return NA
    t = q.type
    if t == QuestionType.yes_no:
        return draw(st.sampled_from(["yes", "no"]))
    if t == QuestionType.scale4:
        return draw(st.sampled_from(SCALE4))
    if t == QuestionType.single:
        return draw(st.sampled_from([o.code for o in q.options]))
    if t == QuestionType.multi:
        return draw(st.lists(st.sampled_from([o.code for o in q.options]), min_size=1, unique=True))
    if t == QuestionType.integer:
        return draw(st.integers(0, 10**9))
    if t == QuestionType.text:
        return draw(TEXTS)
    return f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"


@st.composite
def checklists(draw: st.DrawFn, codes: SmsCodes | None = None) -> tuple[SmsCodes, str, dict]:
    codes = codes or SmsCodes(draw(templates()))
    phase = draw(st.sampled_from(PHASES))
    asked = [qc.question for qc in codes.questions.values() if phase in qc.phases]
    chosen = (
        draw(st.lists(st.sampled_from(asked), min_size=1, unique_by=lambda q: q.code))
        if asked
        else []
    )
    texts = [q for q in chosen if q.type == QuestionType.text]
    chosen = [q for q in chosen if q.type != QuestionType.text] + texts[:1]  # one per message
    if not chosen:
        return draw(checklists(DEFAULT))
    return codes, phase, {q.code: _value(draw, q) for q in chosen}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(checklists())
def test_every_valid_checklist_encodes_and_parses_back_to_the_same_answers(case: Any) -> None:
    codes, phase, answers = case
    text = codes.encode("AST-001", phase, answers, prefix="AST")
    parsed = codes.parse(text, prefix="AST")
    assert parsed.errors == [], text
    assert (parsed.station, parsed.phase) == ("AST-001", phase)
    assert parsed.answers == answers


@settings(max_examples=200)
@given(checklists(DEFAULT))
def test_the_default_template_fits_each_phase_in_few_sms(case: Any) -> None:
    codes, phase, answers = case
    messages = codes.encode_messages("AST-001", phase, answers)
    assert all(len(m) <= 160 for m in messages)
    merged: dict[str, Any] = {}
    for m in messages:
        parsed = codes.parse(m)
        assert parsed.errors == []
        merged.update(parsed.answers)
    assert merged == answers


_SEPARATOR = st.sampled_from([" ", "  ", ", ", ". ", " - ", ";", " / ", ":", "\n", ",,"])


def _digits_confused(draw: st.DrawFn, text: str) -> str:
    """0 typed as O and 1 as l or I, somewhere among the digits."""
    out = []
    for c in text:
        if c == "0" and draw(st.booleans()):
            c = draw(st.sampled_from("Oo"))
        elif c == "1" and draw(st.booleans()):
            c = draw(st.sampled_from("lI"))
        out.append(c)
    return "".join(out)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), checklists())
def test_documented_noise_parses_the_same(data: st.DataObject, case: Any) -> None:
    codes, phase, answers = case
    draw = data.draw
    parts = ["  ", "ast-001", draw(st.sampled_from([" ", ", ", " ,"]))]
    parts.append(draw(st.sampled_from([PHASE_LETTER[phase], PHASE_LETTER[phase].upper(), phase])))
    for token in codes.tokens(answers):
        parts.append(draw(_SEPARATOR))
        code, _, answer = token.partition(" ")
        if not answer:  # glued: split where the code ends
            qcode = next(
                c for c in sorted(codes.questions, key=len, reverse=True) if token.startswith(c)
            )
            code, answer = qcode, token[len(qcode) :]
        qc = codes.questions[code]
        numeric = qc.type in (QuestionType.integer, QuestionType.time, QuestionType.scale4)
        if numeric and answer != "x":
            answer = _digits_confused(draw, answer)
        if qc.type == QuestionType.time and draw(st.booleans()) and answer != "x":
            answer = answer[:2] + ":" + answer[2:]
        code = draw(st.sampled_from([code, code.lower()]))
        if qc.type != QuestionType.text:
            answer = draw(st.sampled_from([answer, answer.upper()]))
        glue = [" ", "", "-"] if numeric and codes.glue_safe(code, answer) else [" ", "-"]
        parts.append(code + draw(st.sampled_from(glue)) + answer)
    parts.append(draw(st.sampled_from(["", ".", " ", "\n"])))
    parsed = codes.parse("".join(parts))
    assert parsed.errors == [], "".join(parts)
    assert parsed.station == "ast-001"
    assert parsed.answers == answers


def test_na_is_an_answer_where_a_question_has_options_n_and_a() -> None:
    """Found by the noise test: a multiple choice with its 12th and 1st options picked is
    written `na`, which the parser read as "not applicable"."""
    options = [{"code": f"opt{i}", "label": {"en": f"o{i}"}} for i in range(12)]
    codes = SmsCodes(
        TemplateDefinition.model_validate(
            {
                "code": "t",
                "version": 1,
                "title": {"en": "t"},
                "languages": ["en"],
                "sections": [
                    {
                        "code": "S",
                        "title": {"en": "s"},
                        "phases": ["voting"],
                        "questions": [
                            {"code": "H", "type": "multi", "label": {"en": "H"},
                             "allow_na": True, "options": options},
                            {"code": "A", "type": "yes_no", "label": {"en": "A"},
                             "allow_na": True},
                        ],
                    }
                ],
            }
        )
    )  # fmt: skip
    assert codes.questions["H"].to_sms["opt11"] == "n"
    parsed = codes.parse("AST-001 v H na A na")
    assert parsed.errors == []
    # H's options n and a; for A, where `na` is no answer of its own, "not applicable".
    assert parsed.answers == {"H": ["opt11", "opt0"], "A": NA}
    assert codes.parse("AST-001 v H x").answers == {"H": NA}


def test_cyrillic_look_alikes_and_digit_look_alikes_in_codes_are_forgiven() -> None:
    parsed = DEFAULT.parse("AST-OO1 v В1y С2n Cl a H2 l")
    assert parsed.errors == []
    assert parsed.answers == {
        "B1": "yes",
        "C2": "no",
        "C1": DEFAULT.questions["C1"].question.options[0].code,
        "H2": "very_good",
    }


def test_a_wrong_answer_names_the_question_and_what_to_send() -> None:
    parsed = DEFAULT.parse("AST-001 o A2q")
    assert [e.message() for e in parsed.errors] == ["A2: 'q' is not an answer; send y/n"]
    assert [e.message("ru") for e in parsed.errors] == ["A2: 'q' не ответ; отправьте y/n"]


def test_every_bad_token_gets_its_own_error_and_good_ones_still_parse() -> None:
    parsed = DEFAULT.parse("AST-001 v B1y Z9y B1n A2y B2")
    assert parsed.answers == {"B1": "yes"}
    assert [(e.code, e.token, e.question) for e in parsed.errors] == [
        ("unknown_question", "Z9y", None),
        ("repeated", "B1n", "B1"),
        ("not_in_phase", "A2y", "A2"),
        ("missing_answer", "B2", "B2"),
    ]


def test_a_bad_phase_and_an_empty_message_are_named() -> None:
    assert [e.code for e in DEFAULT.parse("   ").errors] == ["empty"]
    assert [e.code for e in DEFAULT.parse("AST-001 q B1y").errors] == ["bad_phase"]
    assert [e.code for e in DEFAULT.parse("AST-001").errors] == ["no_phase"]
    assert [e.code for e in DEFAULT.parse("AST-001 v").errors] == ["no_answers"]


_ANSWER_LIKE = re.compile(r"^[a-z0-9]+$")


@settings(max_examples=300)
@given(st.data(), checklists(DEFAULT))
def test_garbage_answers_get_an_error_per_token(data: st.DataObject, case: Any) -> None:
    codes, phase, answers = case
    answers = {k: v for k, v in answers.items() if codes.questions[k].type != QuestionType.text}
    if not answers:
        return
    code = data.draw(st.sampled_from(sorted(answers)))
    qc = codes.questions[code]
    junk = data.draw(st.from_regex(_ANSWER_LIKE, fullmatch=True).filter(lambda s: len(s) < 8))
    if _valid(codes, code, junk) or codes._match_question(junk)[0] is not None:
        return  # an answer after all, or another question's token
    bad = dict(answers)
    del bad[code]
    text = codes.encode("AST-001", phase, bad) + f" {code} {junk}"
    parsed = codes.parse(text)
    assert [(e.code, e.question, e.token) for e in parsed.errors] == [
        ("not_an_answer", code, junk)
    ], text
    assert qc.expected() in parsed.errors[0].message()
    assert parsed.answers == bad


def _valid(codes: SmsCodes, code: str, answer: str) -> bool:
    parsed = codes.parse(f"S v {code} {answer}")
    return not parsed.errors or parsed.errors[0].code != "not_an_answer"


def test_option_codes_skip_the_letters_read_as_digits_and_na() -> None:
    assert option_codes(4) == ["a", "b", "c", "d"]
    assert not set("ilox") & set("".join(option_codes(22)))
    assert option_codes(23)[:2] == ["aa", "ab"]


def test_the_default_template_codes_as_the_card_shows() -> None:
    a1 = DEFAULT.questions["A1"]
    assert a1.to_sms["did_not_open"] == "e"
    assert DEFAULT.encode("AST-001", "opening", {"A1": "within_30min", "A2": "yes"}) == (
        "AST-001 o A1b A2y"
    )


def test_the_card_lists_every_question_with_its_codes_and_examples_that_parse() -> None:
    from api.services.sms.card import build_card

    card = build_card(default_definition(), "ru", prefix="AST")
    assert "A1    Когда проголосовал первый избиратель?" in card.text
    assert "e Участок не открылся" in card.text
    for phase in card.phases:
        for message in phase.example:
            assert len(message) <= 160
            parsed = DEFAULT.parse(message, prefix="AST")
            assert parsed.errors == [] and parsed.phase == phase.phase
