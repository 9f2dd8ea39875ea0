"""The coded SMS format of a checklist template, its encoder and its tolerant parser.

A message is `[prefix] STATION PHASE TOKEN…`, e.g. `AST AST-001 v B1y B3n H2 3`:

- the mission's prefix, if it has one, may be left out;
- the phase is one letter: o(pening), v(oting), c(losing), i(ncident) (the word works too);
- each token is a question code followed by its answer, glued (`B1y`) or after a space
  (`H2 3`); when one code begins another (`B1`, `B12`) the longer code wins, so write
  `B1 23` for B1's answer 23.

Answers are short and derived from the template alone, so a card printed for a template
version stays right for it: yes/no as `y`/`n`; a 4-point scale as `1` (very good) to `4`
(very bad); the options of a single or multiple choice as letters in the template's order,
skipping i, l, o (read as digits) and x (which means "not applicable" everywhere), two
letters each past 22 options; a multiple choice as its letters run together (`A4bd`);
numbers as digits; times as HHMM (`0730`, `730`, `7:30`).

What the parser forgives, documented on the card: case; any run of spaces, commas, dots,
semicolons, colons, dashes or slashes between tokens; O for 0 and l or I for 1 wherever a
digit is expected (question codes, numbers, times, the scale); Cyrillic letters that look
like Latin ones (the Russian keyboard's В, С, Н…). Everything else is an error naming the
token and what would be right, so the observer can resend only the fix.

A text question's answer is the rest of its message as written (`G4 crowd at the door`),
so a message holds one text answer, at its end.
Pure functions on the template definition: no database, so the property tests drive them.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from api.checklist_schema import NA, SCALE4, Question, QuestionType, TemplateDefinition

PHASES = {"o": "opening", "v": "voting", "c": "closing", "i": "incident"}
PHASE_LETTER = {v: k for k, v in PHASES.items()}
NA_CODE = "x"
YES_NO_CODES = {"yes": "y", "no": "n"}
# Letters that are never an option's code: i, l and o are read as digits, x is "n/a".
OPTION_LETTERS = "".join(c for c in string.ascii_lowercase if c not in "ilox")
SEPARATORS = " ,.;:-/\t\r\n"
# Cyrillic letters an observer on a Russian keyboard types for their Latin twins.
_LOOKALIKES = str.maketrans(
    "АВСЕНКМОРТХУаесорху",
    "ABCEHKMOPTXYaecopxy",
)
_AS_DIGIT = str.maketrans("OoIiLl", "001111")
_CHUNK = re.compile(r"[^\s,.;:\-/]+")


@dataclass(frozen=True, slots=True)
class TokenError:
    """One problem with one token: what was sent, which question, what would be right."""

    token: str
    code: str  # machine-readable: unknown_question, not_an_answer, missing_answer, …
    question: str | None = None
    expected: str = ""

    def message(self, lang: str = "en") -> str:
        texts = MESSAGES.get(lang[:2], MESSAGES["en"])
        return texts[self.code].format(t=self.token, q=self.question or "", e=self.expected)


MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "empty": "the message is empty; send: station phase answers",
        "no_answers": "no answers after the phase; send question codes with answers",
        "no_phase": "after the station send the phase: o, v, c or i",
        "bad_phase": "'{t}' is not a phase; send o, v, c or i",
        "unknown_question": "'{t}' is not a question code",
        "not_in_phase": "{q} is not asked in this phase",
        "missing_answer": "{q} has no answer; send {e}",
        "not_an_answer": "{q}: '{t}' is not an answer; send {e}",
        "repeated": "{q} is answered twice",
    },
    "ru": {
        "empty": "сообщение пустое; отправьте: участок фаза ответы",
        "no_answers": "нет ответов после фазы; отправьте коды вопросов с ответами",
        "no_phase": "после участка укажите фазу: o, v, c или i",
        "bad_phase": "'{t}' не фаза; отправьте o, v, c или i",
        "unknown_question": "'{t}' не код вопроса",
        "not_in_phase": "{q} не задаётся в этой фазе",
        "missing_answer": "{q} без ответа; отправьте {e}",
        "not_an_answer": "{q}: '{t}' не ответ; отправьте {e}",
        "repeated": "{q} отвечен дважды",
    },
}


def option_codes(count: int) -> list[str]:
    """Short codes of `count` options in order: one letter each up to 22, then two."""
    if count <= len(OPTION_LETTERS):
        return list(OPTION_LETTERS[:count])
    return [a + b for a in OPTION_LETTERS for b in OPTION_LETTERS][:count]


@dataclass(slots=True)
class QuestionCode:
    """How one question is written in SMS: its answer codes both ways."""

    question: Question
    phases: frozenset[str]
    to_sms: dict[str, str] = field(default_factory=dict)  # template answer -> SMS code
    from_sms: dict[str, str] = field(default_factory=dict)  # SMS code -> template answer
    width: int = 1  # letters per option of a choice

    @property
    def code(self) -> str:
        return self.question.code

    @property
    def type(self) -> QuestionType:
        return self.question.type

    def expected(self) -> str:
        """What the answer looks like, for errors and the card."""
        t = self.type
        if t in (QuestionType.yes_no, QuestionType.scale4, QuestionType.single):
            choices = "/".join(v for v in self.to_sms.values() if v != NA_CODE)
        elif t == QuestionType.multi:
            choices = "/".join(v for v in self.to_sms.values() if v != NA_CODE)
            choices = f"one or more of {choices}"
        elif t == QuestionType.integer:
            choices = "a number"
        elif t == QuestionType.time:
            choices = "HHMM"
        else:
            return "text, last in the message"
        return choices + (f" or {NA_CODE}" if self.question.allow_na else "")


class SmsCodes:
    """The SMS format of one template version."""

    def __init__(self, definition: TemplateDefinition) -> None:
        self.definition = definition
        self.questions: dict[str, QuestionCode] = {}
        for section in definition.sections:
            for q in section.questions:
                self.questions[q.code] = _question_code(q, section.asked_in())
        # Question codes as typed: upper case, and with digit look-alikes read as digits
        # (kept only where that reading names one question).
        self._exact = {c.upper(): c for c in self.questions}
        keyed: dict[str, list[str]] = {}
        for c in self.questions:
            keyed.setdefault(_digit_key(c), []).append(c)
        self._keyed = {k: v[0] for k, v in keyed.items() if len(v) == 1}
        # The longer codes that begin as each code does, as typed or read with digits.
        self._longer = {
            c: [
                o
                for o in self.questions
                if len(o) > len(c)
                and (o.upper().startswith(c.upper()) or _digit_key(o).startswith(_digit_key(c)))
            ]
            for c in self.questions
        }

    # --- encoding ------------------------------------------------------------------------

    def encode_answer(self, code: str, value: Any) -> str:
        qc = self.questions[code]
        t = qc.type
        if value == NA:
            return NA_CODE
        if t == QuestionType.multi:
            return "".join(qc.to_sms[v] for v in value)
        if t == QuestionType.integer:
            return str(value)
        if t == QuestionType.time:
            return str(value).replace(":", "")
        if t == QuestionType.text:
            return str(value)
        return qc.to_sms[str(value)]

    def tokens(self, answers: dict[str, Any]) -> list[str]:
        return [token for _, token in self._tokens(answers)]

    def _tokens(self, answers: dict[str, Any]) -> list[tuple[QuestionCode, str]]:
        """Each answer as `<code><answer>`, in template order; a space between them where
        the glued form would read as another question, and for numbers and texts; a text
        answer runs to the end of its message, so texts come last."""
        out = []
        ordered = sorted(self.questions.items(), key=lambda kv: kv[1].type == QuestionType.text)
        for code, qc in ordered:
            if code not in answers or answers[code] is None:
                continue
            if qc.type == QuestionType.multi and not answers[code]:
                continue
            answer = self.encode_answer(code, answers[code])
            spaced = qc.type in (
                QuestionType.integer,
                QuestionType.time,
                QuestionType.text,
            ) or not self.glue_safe(code, answer)
            out.append((qc, f"{code} {answer}" if spaced else code + answer))
        return out

    def glue_safe(self, code: str, answer: str) -> bool:
        """Whether `<code><answer>` reads back as this code's answer: no longer code (nor
        its digit look-alike) begins the glued text."""
        glued = code + answer
        upper, keyed = glued.upper(), _digit_key(glued)
        return not any(
            upper.startswith(other.upper()) or keyed.startswith(_digit_key(other))
            for other in self._longer[self._exact.get(code.upper(), code)]
        )

    def encode(
        self, station: str, phase: str, answers: dict[str, Any], prefix: str | None = None
    ) -> str:
        head = [prefix] if prefix else []
        return " ".join([*head, station, PHASE_LETTER[phase], *self.tokens(answers)])

    def encode_messages(
        self,
        station: str,
        phase: str,
        answers: dict[str, Any],
        prefix: str | None = None,
        limit: int = 160,
    ) -> list[str]:
        """The answers split into messages of at most `limit` characters, each with the
        header, so that a checklist goes out in as few SMS as it needs."""
        head = " ".join([*([prefix] if prefix else []), station, PHASE_LETTER[phase]])
        messages: list[str] = []
        current = head
        ended = False  # a text answer ends its message
        for qc, token in self._tokens(answers):
            if current != head and (ended or len(current) + 1 + len(token) > limit):
                messages.append(current)
                current = head
            current += " " + token
            ended = qc.type == QuestionType.text
        messages.append(current)
        return messages

    # --- parsing -------------------------------------------------------------------------

    def parse(self, text: str, prefix: str | None = None) -> Parsed:
        """The station, phase and answers of a message, or every problem found in it."""
        words = [m for m in re.finditer(r"[^\s,;]+", text) if m.group().strip(SEPARATORS)]
        result = Parsed()
        if not words:
            result.errors.append(TokenError("", "empty"))
            return result
        if prefix and len(words) > 1 and station_key(words[0].group()) == station_key(prefix):
            words = words[1:]
        result.station = words[0].group().strip(SEPARATORS)
        tail = text[words[0].end() :]
        spans = [(m.group(), m.end()) for m in _CHUNK.finditer(tail)]
        if not spans:
            result.errors.append(TokenError("", "no_phase"))
            return result
        phase = _phase(spans[0][0].translate(_LOOKALIKES).lower())
        if phase is None:
            result.errors.append(TokenError(spans[0][0], "bad_phase"))
            return result
        result.phase = phase
        self._parse_body(tail, spans[1:], phase, result)
        if not result.answers and not result.errors:
            result.errors.append(TokenError("", "no_answers"))
        return result

    def _parse_body(
        self, tail: str, spans: list[tuple[str, int]], phase: str, result: Parsed
    ) -> None:
        chunks = [c for c, _ in spans]
        i = 0
        while i < len(chunks):
            chunk = chunks[i]
            i += 1
            qc, rest = self._match_question(chunk)
            if qc is None:
                result.errors.append(TokenError(chunk, "unknown_question"))
                continue
            if qc.type == QuestionType.text:
                # A text answer is the rest of the message as written, so it comes last.
                end = spans[i - 1][1] - len(rest)
                text = tail[end:].strip(SEPARATORS)
                i = len(chunks)
                if phase not in qc.phases:
                    result.errors.append(TokenError(chunk, "not_in_phase", qc.code))
                elif not text:
                    result.errors.append(TokenError(chunk, "missing_answer", qc.code, "text"))
                elif text.lower() in (NA_CODE, NA) and NA in qc.to_sms:
                    result.answers[qc.code] = NA
                elif qc.code in result.answers:
                    result.errors.append(TokenError(chunk, "repeated", qc.code))
                else:
                    result.answers[qc.code] = text
                continue
            rest, i = self._answer_of(qc, rest, chunks, i)
            if phase not in qc.phases:
                result.errors.append(TokenError(chunk, "not_in_phase", qc.code))
                continue
            if not rest:
                result.errors.append(TokenError(chunk, "missing_answer", qc.code, qc.expected()))
                continue
            value = _answer(qc, rest)
            if value is None:
                result.errors.append(TokenError(rest, "not_an_answer", qc.code, qc.expected()))
                continue
            if qc.code in result.answers:
                result.errors.append(TokenError(chunk, "repeated", qc.code))
                continue
            result.answers[qc.code] = value

    def _answer_of(self, qc: QuestionCode, rest: str, chunks: list[str], i: int) -> tuple[str, int]:
        """The answer text of a question whose code ended a chunk with `rest` after it,
        and where the chunks go on: the next chunk when the code stood alone, unless that
        chunk is another question and no answer to this one; a time's minutes after its
        hours (`7:30` arrives as `7` and `30`)."""
        if not rest and i < len(chunks):
            nxt = chunks[i]
            if self._match_question(nxt)[0] is None or _answer(qc, nxt) is not None:
                rest, i = nxt, i + 1
            elif (
                qc.type == QuestionType.time
                and i + 1 < len(chunks)
                and _answer(qc, nxt + chunks[i + 1]) is not None
            ):
                return nxt + chunks[i + 1], i + 2
        if (
            qc.type == QuestionType.time
            and 1 <= len(rest) <= 2
            and i < len(chunks)
            and len(chunks[i]) == 2
            and _answer(qc, rest + chunks[i]) is not None
        ):
            return rest + chunks[i], i + 1
        return rest, i

    def _match_question(self, chunk: str) -> tuple[QuestionCode | None, str]:
        """The question a chunk begins with (the longest code that fits), and the rest."""
        chunk = chunk.translate(_LOOKALIKES)
        upper = chunk.upper()
        for table, key in ((self._exact, upper), (self._keyed, _digit_key(chunk))):
            best = None
            for n in range(len(key), 0, -1):
                found = table.get(key[:n])
                if found is not None:
                    best = (found, n)
                    break
            if best is not None:
                return self.questions[best[0]], chunk[best[1] :]
        return None, ""


@dataclass(slots=True)
class Parsed:
    station: str | None = None
    phase: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    errors: list[TokenError] = field(default_factory=list)


def _question_code(q: Question, phases: frozenset[str]) -> QuestionCode:
    qc = QuestionCode(q, phases)
    if q.type == QuestionType.yes_no:
        qc.to_sms = dict(YES_NO_CODES)
    elif q.type == QuestionType.scale4:
        qc.to_sms = {v: str(i) for i, v in enumerate(SCALE4, start=1)}
    elif q.options:
        values = [o.code for o in q.options if o.code != NA]
        codes = option_codes(len(values))
        qc.width = len(codes[0]) if codes else 1
        qc.to_sms = dict(zip(values, codes, strict=True))
    if q.allow_na or any(o.code == NA for o in q.options or []):
        qc.to_sms[NA] = NA_CODE
    qc.from_sms = {v: k for k, v in qc.to_sms.items()}
    return qc


def _answer(qc: QuestionCode, raw: str) -> Any:
    """The template's answer for an SMS answer, or None when it is not one. `x` is "not
    applicable"; so is the word `na`, unless it is a real answer of the question (the
    options n and a of a multiple choice, or a two-letter option)."""
    text = raw.translate(_LOOKALIKES).lower()
    if text == NA_CODE:
        return NA if NA in qc.to_sms else None
    value = _typed_answer(qc, text)
    if value is None and text == NA:
        return NA if NA in qc.to_sms else None
    return value


def _typed_answer(qc: QuestionCode, text: str) -> Any:
    """`text` read as the question's own kind of answer, or None."""
    t = qc.type
    if t == QuestionType.yes_no:
        return qc.from_sms.get({"yes": "y", "no": "n"}.get(text, text))
    if t == QuestionType.scale4:
        return qc.from_sms.get(text.translate(_AS_DIGIT))
    if t == QuestionType.single:
        return qc.from_sms.get(text)
    if t == QuestionType.multi:
        if len(text) % qc.width:
            return None
        picked = [text[i : i + qc.width] for i in range(0, len(text), qc.width)]
        values = [qc.from_sms.get(p) for p in picked]
        if not values or None in values or len(set(values)) != len(values) or NA in values:
            return None
        return values
    digits = text.translate(_AS_DIGIT)
    if not digits.isdigit():
        return None
    if t == QuestionType.integer:
        if len(digits) > 15:
            return None
        return int(digits)
    if t == QuestionType.time:
        if len(digits) not in (3, 4):
            return None
        hhmm = digits.zfill(4)
        hours, minutes = int(hhmm[:2]), int(hhmm[2:])
        if hours > 23 or minutes > 59:
            return None
        return f"{hhmm[:2]}:{hhmm[2:]}"
    return None


def _phase(word: str) -> str | None:
    if word == "0":  # the letter o typed as a zero
        word = "o"
    if word in PHASES:
        return PHASES[word]
    return word if word in PHASE_LETTER else None


def _digit_key(code: str) -> str:
    """A code with every letter that looks like a digit read as that digit."""
    return code.upper().translate(_AS_DIGIT)


def station_key(code: str) -> str:
    """A station code compared as typed: case, punctuation and O/0, l/1 forgiven."""
    kept = "".join(c for c in code.translate(_LOOKALIKES) if c.isalnum())
    return _digit_key(kept)
