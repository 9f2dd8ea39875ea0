"""The observers' SMS card of a template version in one language: every question with its
code and answer codes, grouped by phase, how to write a message, and an example per phase
that the parser is proven to read (`tests/services/test_sms_codes.py`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.checklist_schema import NA, QuestionType, TemplateDefinition
from api.services.sms.codes import NA_CODE, PHASE_LETTER, PHASES, SmsCodes

SCALE_LABELS = {
    "en": ("very good", "good", "bad", "very bad"),
    "ru": ("очень хорошо", "хорошо", "плохо", "очень плохо"),
}
TEXTS: dict[str, dict[str, Any]] = {
    "en": {
        "how": "Send: {prefix}STATION PHASE then each question code with its answer.",
        "phases": "Phases: o opening, v voting, c closing, i incident.",
        "tolerance": (
            "x = not applicable. Case, spaces, commas, dots and dashes between answers do not "
            "matter; O is read as 0 and l as 1 in numbers. A text answer goes last."
        ),
        "resend": "A later SMS for the same station and phase adds to or corrects the first.",
        "yes_no": "y yes, n no",
        "number": "a number",
        "time": "time as HHMM",
        "text": "text, at the end of the message",
        "example": "Example",
        "names": {
            "opening": "opening",
            "voting": "voting",
            "closing": "closing",
            "incident": "incident",
        },
    },
    "ru": {
        "how": "Отправьте: {prefix}УЧАСТОК ФАЗА, затем код каждого вопроса с ответом.",
        "phases": "Фазы: o открытие, v голосование, c закрытие, i инцидент.",
        "tolerance": (
            "x = неприменимо. Регистр, пробелы, запятые, точки и тире между ответами не важны; "
            "O читается как 0, l как 1 в числах. Текстовый ответ пишите последним."
        ),
        "resend": "Следующее SMS по тому же участку и фазе дополняет или исправляет первое.",
        "yes_no": "y да, n нет",
        "number": "число",
        "time": "время ЧЧММ",
        "text": "текст, в конце сообщения",
        "example": "Пример",
        "names": {
            "opening": "открытие",
            "voting": "голосование",
            "closing": "закрытие",
            "incident": "инцидент",
        },
    },
}


class CardQuestion(BaseModel):
    code: str
    label: str
    answers: list[tuple[str, str]]  # (SMS code, meaning)


class CardPhase(BaseModel):
    phase: str
    letter: str
    questions: list[CardQuestion]
    example: list[str]


class SmsCard(BaseModel):
    template: str
    version: int
    lang: str
    prefix: str | None
    title: str
    phases: list[CardPhase]
    text: str


def _label(labels: dict[str, str] | None, lang: str, default: str) -> str:
    if not labels:
        return ""
    return labels.get(lang) or labels.get(default) or next(iter(labels.values()))


def build_card(
    definition: TemplateDefinition,
    lang: str,
    prefix: str | None = None,
    station: str = "AST-001",
) -> SmsCard:
    codes = SmsCodes(definition)
    words = TEXTS.get(lang[:2], TEXTS["en"])
    default = definition.languages[0]
    phases = []
    for phase in PHASES.values():
        asked = [qc for qc in codes.questions.values() if phase in qc.phases]
        if not asked:
            continue
        questions = []
        example: dict[str, Any] = {}
        for qc in asked:
            q = qc.question
            answers: list[tuple[str, str]]
            if q.type == QuestionType.yes_no:
                answers = [("y/n", words["yes_no"])]
                example[q.code] = "yes"
            elif q.type == QuestionType.scale4:
                scale = SCALE_LABELS.get(lang[:2], SCALE_LABELS["en"])
                answers = [(str(i), s) for i, s in enumerate(scale, start=1)]
                example[q.code] = "good"
            elif q.options:
                answers = [
                    (qc.to_sms[o.code], _label(o.label, lang, default))
                    for o in q.options
                    if o.code != NA
                ]
                first = next(o.code for o in q.options if o.code != NA)
                example[q.code] = [first] if q.type == QuestionType.multi else first
            elif q.type == QuestionType.integer:
                answers = [("123", words["number"])]
                example[q.code] = max(q.min or 0, 0) if q.max is None else q.max
            elif q.type == QuestionType.time:
                answers = [("0730", words["time"])]
                example[q.code] = "07:30"
            else:
                answers = [("…", words["text"])]
            if q.show_if is not None or q.type == QuestionType.text:
                example.pop(q.code, None)  # the example stays a checklist the intake takes
            if NA in qc.to_sms and q.type != QuestionType.text:
                answers.append((NA_CODE, "n/a"))
            questions.append(
                CardQuestion(code=q.code, label=_label(q.label, lang, default), answers=answers)
            )
        phases.append(
            CardPhase(
                phase=phase,
                letter=PHASE_LETTER[phase],
                questions=questions,
                example=codes.encode_messages(station, phase, example, prefix),
            )
        )
    title = _label(definition.title, lang, default)
    card = SmsCard(
        template=definition.code,
        version=definition.version,
        lang=lang,
        prefix=prefix,
        title=title,
        phases=phases,
        text="",
    )
    card.text = render_text(card)
    return card


def render_text(card: SmsCard) -> str:
    words = TEXTS.get(card.lang[:2], TEXTS["en"])
    lines = [
        f"{card.title} ({card.template} v{card.version}): SMS",
        words["how"].format(prefix=f"[{card.prefix}] " if card.prefix else ""),
        words["phases"],
        words["tolerance"],
        words["resend"],
    ]
    for phase in card.phases:
        lines += ["", f"== {phase.letter} = {words['names'][phase.phase]} =="]
        for q in phase.questions:
            lines.append(f"{q.code:<5} {q.label}")
            lines.append("      " + " | ".join(f"{c} {meaning}" for c, meaning in q.answers))
        lines.append(f"{words['example']}:")
        lines += [f"  {m}" for m in phase.example]
    return "\n".join(lines) + "\n"
