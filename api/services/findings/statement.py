"""The draft preliminary statement: short factual paragraphs built from the findings.

Deterministic: the same findings give the same Markdown, byte for byte; no text-generation
service is involved. Every sentence carries its numbers and its evidence (question codes,
counts, checklist ids), listed as footnotes in the Markdown and as data in the JSON.

Languages: each sentence is a template in PHRASES, keyed by language. To add a language,
add a dictionary with the same keys; a missing key falls back to English, and the answer
says which sentences did (`fallback`). Question wording comes from the template's own
labels in that language. Every word of the statement's sentences comes from these tables
or from the template: nothing is written in English in the code. (The evidence footnotes
list their data as it is: counts by their keys, check names.) A language is matched by
its base too ("ru-RU" reads the "ru" table); a language without a table gets English,
with English plural rules and numbers, and every sentence listed in `fallback`.

A count and the word it counts are chosen together by the sentence: `{stations:station}`
puts the number of stations in the form of the noun `station` that the language's plural
rules (CLDR, through Babel: one, few, many, other…) ask for, `#` standing for the number
written as the language writes numbers; a form for one exact number (`=1`) comes first.
A sentence that needs another grammatical case names another noun
(`{stations:station_loc}` in Russian) with forms of its own. Shares and numbers are
written in the language's own way too ("68.4%" in English, "68,4 %" in Russian).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal, format_percent

from api.checklist_schema import StatementQuestions
from api.services.findings.questions import language_key
from api.services.findings.stats import Share, percent_value

PHRASES: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Draft preliminary statement: findings of the observation",
        "h_coverage": "Deployment and coverage",
        "h_opening": "Opening",
        "h_access": "Observer access",
        "h_voting": "Voting",
        "h_accessibility": "Accessibility",
        "h_irregularities": "Irregularities",
        "h_count": "Counting",
        "h_incidents": "Incidents",
        "h_critical": "Critical answers",
        "h_evidence": "Evidence",
        "voting_at": "The Mission observed voting at {stations:station}{where}.",
        "where_in": " in {places}",
        "where_abroad": " abroad ({places})",
        "where_both": " in {places} and abroad ({abroad})",
        "phases_at": "Observers reported on the opening at {opening:station}, on voting in "
        "{voting_obs:observation} at {voting:station}, and on the count at {closing:station}.",
        "total": "In all, the Mission received {observations:observation} at {stations:station}.",
        "purposive": "Observers were deployed purposively, so these findings describe what "
        "was observed and are not estimates for the country as a whole.",
        "random": "The observed polling stations are a random sample; intervals are 95% "
        "Wilson score intervals.",
        "opening_assessed": "The opening was assessed negatively in {negative} ({code}).",
        "opening_positive": "The opening was assessed positively in {n:all_observations} ({code}).",
        "access_full": "Observers had full access: they were admitted without restriction in "
        "{admitted} and none of them was asked to leave or restricted ({codes}).",
        "access_restricted": "Observers were admitted without restriction in {admitted}; "
        "they were asked to leave or restricted in {restricted} ({codes}).",
        "voting_assessed": "Voting was assessed negatively in {negative} ({code}).",
        "voting_positive": "Voting was assessed positively in {n:all_observations} ({code}).",
        "secrecy": "The secrecy of the vote was not respected in {count} ({code}).",
        "secrecy_ok": "The secrecy of the vote was respected in {n:all_observations} ({code}).",
        "intimidation": "Intimidation of or pressure on voters was seen in {count} ({code}).",
        "irregular_none": "No major irregularities were observed: none of the {n:observation} "
        "reported any of {kinds:listed_irregularity} as observed or reported ({codes}).",
        "irregular_one": "{label}: observed in {observed} and reported to observers in "
        "{reported} of {n:observation} ({code}).",
        "accessibility": "Asked “{label}”, observers answered yes in {yes} ({code}).",
        "count_one": "The count was observed at one polling station{assessment} ({code}).",
        "count_many": "The count was observed at {stations:station}; it was assessed "
        "negatively in {negative} ({code}).",
        "count_many_positive": "The count was observed at {stations:station} and assessed "
        "positively in {n:all_observations} ({code}).",
        "count_one_positive": " and assessed positively",
        "count_one_negative": " and assessed negatively",
        "checks_pass": "The protocol figures of {reports:report} passed every consistency check.",
        "checks_fail": "{failed} of {reports:report} with protocol figures failed at least one "
        "consistency check: {checks}.",
        "conflicts": "At {stations:station}, two reports of the same count disagree; the "
        "totals use one report per station (the latest verified, else the latest).",
        "totals": "At the {stations:station} where the figures were copied, the valid votes "
        "were divided as follows: {options}; turnout there was {turnout}.",
        "quick_count": "Quick count from the random sample of {n} stations: {options}.",
        "incidents_none": "No incident reports were received.",
        "incidents": "Observers sent {count:incident_report}; the most frequent type was {top} "
        "({top_count}).",
        "critical_none": "No critical answers were recorded.",
        "critical": "{label}: {answer} in {count:observation} at {stations:station}, {pattern} "
        "({code}).",
        "pattern_isolated": "isolated cases",
        "pattern_clustered": "concentrated in {region} ({share} of cases)",
        "pattern_scattered": "spread over {regions} regions",
        # A share: "3 of 24 observations" under the small-denominator threshold, else
        # "12.5% of 400 observations (50)".
        "share_small": "{count} of {n:observations_of}",
        "share": "{percent} of {n:observations_of} ({count})",
        "quick_count_option": "{label} {share} ± {margin}",
        "votes_option": "{label} {share} ({votes})",
        "unknown": "unknown",
        "and": "and",
        # Evidence footnotes.
        "note_questions": "questions {codes}",
        "note_checks": "checks {checks}",
        "note_checklists": "checklists {ids}",
        "note_more": "{shown} and {more} more",
        "note_totals": "findings totals",
        # Nouns with their count, by plural category (CLDR: zero, one, two, few, many,
        # other); `#` is the number.
        "observation": {"one": "one observation", "other": "# observations"},
        "observations_of": {"one": "# observation", "other": "# observations"},
        "all_observations": {"one": "the one observation", "other": "all # observations"},
        "station": {"one": "one polling station", "other": "# polling stations"},
        "report": {"one": "one counting report", "other": "# counting reports"},
        "incident_report": {"one": "one incident report", "other": "# incident reports"},
        "listed_irregularity": {
            "one": "the one listed irregularity",
            "other": "the # listed irregularities",
        },
    },
    "ru": {
        "title": "Проект предварительного заявления: выводы наблюдения",
        "h_coverage": "Развёртывание и охват",
        "h_opening": "Открытие",
        "h_access": "Доступ наблюдателей",
        "h_voting": "Голосование",
        "h_accessibility": "Доступность",
        "h_irregularities": "Нарушения",
        "h_count": "Подсчёт голосов",
        "h_incidents": "Инциденты",
        "h_critical": "Критические ответы",
        "h_evidence": "Источники данных",
        "voting_at": "Миссия наблюдала за голосованием на {stations:station_loc}{where}.",
        "where_in": " в стране ({places})",
        "where_abroad": " за рубежом ({places})",
        "where_both": " в стране ({places}) и за рубежом ({abroad})",
        "phases_at": "Наблюдатели сообщили об открытии на {opening:station_loc}, о голосовании — "
        "в {voting_obs:observation_loc} на {voting:station_loc} и о подсчёте голосов на "
        "{closing:station_loc}.",
        "total": "Всего Миссия получила {observations:observation_acc} с {stations:station_gen}.",
        "purposive": "Наблюдатели были направлены на участки не по случайной выборке, поэтому "
        "эти выводы описывают увиденное и не являются оценками для страны в целом.",
        "random": "Наблюдаемые избирательные участки составляют случайную выборку; интервалы — "
        "95-процентные доверительные интервалы Уилсона.",
        "opening_assessed": "Открытие было оценено отрицательно в {negative} ({code}).",
        "opening_positive": "Открытие было оценено положительно {n:all_observations} ({code}).",
        "access_full": "Наблюдатели имели полный доступ: их допускали без ограничений в "
        "{admitted}, и ни в одном случае их не просили покинуть участок и не ограничивали "
        "({codes}).",
        "access_restricted": "Наблюдателей допускали без ограничений в {admitted}; их просили "
        "покинуть участок или ограничивали в {restricted} ({codes}).",
        "voting_assessed": "Голосование было оценено отрицательно в {negative} ({code}).",
        "voting_positive": "Голосование было оценено положительно {n:all_observations} ({code}).",
        "secrecy": "Тайна голосования не соблюдалась в {count} ({code}).",
        "secrecy_ok": "Тайна голосования соблюдалась {n:all_observations} ({code}).",
        "intimidation": "Запугивание избирателей или давление на них отмечены в {count} ({code}).",
        "irregular_none": "Серьёзных нарушений не выявлено: ни в одном из {n:observations_of} "
        "не сообщалось ни об одном из {kinds:listed_irregularity_gen} — ни как о замеченном, "
        "ни как о сообщённом наблюдателям ({codes}).",
        "irregular_one": "{label}: замечено в {observed} и сообщено наблюдателям в {reported} "
        "из {n:observations_of} ({code}).",
        "accessibility": "На вопрос «{label}» наблюдатели ответили «да» в {yes} ({code}).",
        "count_one": "Подсчёт голосов наблюдался на одном избирательном участке{assessment} "
        "({code}).",
        "count_many": "Подсчёт голосов наблюдался на {stations:station_loc}; отрицательно он был "
        "оценён в {negative} ({code}).",
        "count_many_positive": "Подсчёт голосов наблюдался на {stations:station_loc} и был "
        "оценён положительно {n:all_observations} ({code}).",
        "count_one_positive": " и был оценён положительно",
        "count_one_negative": " и был оценён отрицательно",
        "checks_pass": "Данные протоколов {reports:report_gen} прошли все проверки на "
        "согласованность.",
        "checks_fail": "Не все данные протоколов согласованы: в {failed} из {reports:report_gen} "
        "не выполнена как минимум одна проверка — {checks}.",
        "conflicts": "На {stations:station_loc} два отчёта об одном и том же подсчёте "
        "расходятся; в итогах учтён один отчёт на участок (последний проверенный, иначе "
        "последний).",
        "totals": "На {stations:station_loc}, где были переписаны данные протоколов, "
        "действительные голоса распределились так: {options}; явка там — {turnout}.",
        "quick_count": "Параллельный подсчёт по случайной выборке из {n:station_gen}: {options}.",
        "incidents_none": "Сообщений об инцидентах не поступало.",
        "incidents": "Наблюдатели направили {count:incident_report_acc}; наиболее частый тип — "
        "«{top}» ({top_count}).",
        "critical_none": "Критических ответов не зафиксировано.",
        "critical": "{label}: «{answer}» — в {count:observation_loc} на {stations:station_loc}, "
        "{pattern} ({code}).",
        "pattern_isolated": "единичные случаи",
        "pattern_clustered": "сосредоточены в регионе {region} ({share} случаев)",
        "pattern_scattered": "распределены по {regions:region_dat}",
        "share_small": "{count} из {n:observations_of}",
        "share": "{percent} из {n:observations_of} ({count})",
        "quick_count_option": "{label} {share} ± {margin}",
        "votes_option": "{label} {share} ({votes})",
        "unknown": "неизвестна",
        "and": "и",
        "note_questions": "вопросы {codes}",
        "note_checks": "проверки {checks}",
        "note_checklists": "анкеты {ids}",
        "note_more": "{shown} и ещё {more}",
        "note_totals": "итоговые данные",
        "check_options_sum_to_valid": "сумма голосов за варианты равна числу действительных "
        "бюллетеней (v1+…+vn = V)",
        "check_valid_invalid_blank_make_in_box": "действительные + недействительные + пустые = "
        "бюллетени в ящиках (V+X+K = B)",
        "check_ballots_accounted_for": "выданные + неиспользованные + испорченные = полученные "
        "(I+U+S = Rc)",
        "check_in_box_not_above_issued": "бюллетеней в ящиках не больше, чем выдано (B ≤ I)",
        "check_issued_not_above_registered": "выдано бюллетеней не больше, чем внесено "
        "избирателей в список, с допуском (I ≤ R + a)",
        "check_turnout_below_threshold": "явка (B/R) не выше порога",
        "check_invalid_below_threshold": "доля недействительных бюллетеней (X/B) не выше порога",
        "check_no_option_above_threshold": "доля ни одного варианта среди действительных "
        "голосов не выше порога",
        "check_figures_plausible": "каждая цифра — целое число от 0 до правдоподобного максимума",
        # Nouns in the case each sentence needs: `=1` is the number one itself ("одном"),
        # `one` every other count that takes the singular (21, 31…).
        "station_loc": {
            "=1": "одном избирательном участке",
            "one": "# избирательном участке",
            "few": "# избирательных участках",
            "many": "# избирательных участках",
            "other": "# избирательного участка",
        },
        "station_gen": {
            "=1": "одного избирательного участка",
            "one": "# избирательного участка",
            "few": "# избирательных участков",
            "many": "# избирательных участков",
            "other": "# избирательного участка",
        },
        "observation_loc": {
            "=1": "одном наблюдении",
            "one": "# наблюдении",
            "few": "# наблюдениях",
            "many": "# наблюдениях",
            "other": "# наблюдения",
        },
        "observation_acc": {
            "=1": "одно наблюдение",
            "one": "# наблюдение",
            "few": "# наблюдения",
            "many": "# наблюдений",
            "other": "# наблюдения",
        },
        "observations_of": {
            "one": "# наблюдения",
            "few": "# наблюдений",
            "many": "# наблюдений",
            "other": "# наблюдения",
        },
        "all_observations": {
            "=1": "в единственном наблюдении",
            "one": "во всех # наблюдении",
            "few": "во всех # наблюдениях",
            "many": "во всех # наблюдениях",
            "other": "во всех # наблюдения",
        },
        "report_gen": {
            "one": "# отчёта о подсчёте",
            "few": "# отчётов о подсчёте",
            "many": "# отчётов о подсчёте",
            "other": "# отчёта о подсчёте",
        },
        "incident_report_acc": {
            "=1": "одно сообщение об инциденте",
            "one": "# сообщение об инцидентах",
            "few": "# сообщения об инцидентах",
            "many": "# сообщений об инцидентах",
            "other": "# сообщения об инцидентах",
        },
        "listed_irregularity_gen": {
            "one": "# перечисленного нарушения",
            "few": "# перечисленных нарушений",
            "many": "# перечисленных нарушений",
            "other": "# перечисленного нарушения",
        },
        "region_dat": {
            "one": "# региону",
            "few": "# регионам",
            "many": "# регионам",
            "other": "# региона",
        },
    },
}


@dataclass(slots=True)
class Sentence:
    paragraph: str
    key: str
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _locale(language: str) -> Locale:
    """The language's CLDR data (plural rules, number formats); English for a code CLDR
    does not know."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale("en")


class _Counted(string.Formatter):
    """`str.format` for phrases, where `{n:noun}` is a count with its noun and any other
    whole number is written as the language writes numbers."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def format_field(self, value: Any, format_spec: str) -> str:
        if not format_spec:
            return self.writer.figure(value)
        if _whole(value):
            return self.writer.counted(value, format_spec)
        return str(super().format_field(value, format_spec))


class Writer:
    def __init__(self, language: str, small: int) -> None:
        self.language = language
        found = language_key(PHRASES, language)
        self.table: dict[str, Any] = PHRASES[found] if found else {}
        self.english = found == "en"
        self.locale = _locale(found or "en")
        self.small = small
        self.sentences: list[Sentence] = []
        self.fallback: list[str] = []
        self._format = _Counted(self)

    def phrase(self, key: str, default: str | None = None) -> Any:
        """The language's phrase (a text, or a noun's forms); else English, else `default`,
        and the key is listed in `fallback` for a language other than English."""
        if key in self.table:
            return self.table[key]
        if not self.english:
            self.fallback.append(key)
        return PHRASES["en"].get(key, default)

    def text(self, key: str, **values: Any) -> str:
        """A phrase with its values filled in."""
        return self._format.format(self.phrase(key), **values)

    def say(self, paragraph: str, key: str, evidence: dict[str, Any], **values: Any) -> None:
        self.sentences.append(Sentence(paragraph, key, self.text(key, **values), evidence))

    def number(self, n: int) -> str:
        return str(format_decimal(n, locale=self.locale))

    def figure(self, value: Any) -> str:
        """A whole number as the language writes numbers; anything else as it is."""
        return self.number(value) if _whole(value) else str(value)

    def percent(self, share: Share) -> str:
        """A share as a percentage to one decimal (`stats.percent_value`'s rounding), trailing
        zero dropped, as the language writes it: "68.4%", "25%", "68,4 %"."""
        value = percent_value(share) / 100
        return str(format_percent(value, locale=self.locale, decimal_quantization=False))

    def counted(self, n: int, noun: str) -> str:
        """`n` with the form of `noun` for exactly `n` (`=1`: "одном" rather than "1"), else
        for its plural category in this language."""
        forms = self.phrase(noun)
        if not isinstance(forms, dict):
            raise KeyError(f"no noun {noun!r} in the statement's phrases")
        # English forms (a fallback) by English rules: "fr" counts 0 as singular.
        rules = self.locale if noun in self.table else _locale("en")
        form = forms.get(f"={n}") or forms.get(rules.plural_form(n)) or forms["other"]
        return str(form).replace("#", self.number(n))

    def share(self, count: int, n: int) -> str:
        """'3 of 24 observations', or '12.5% of 400 observations (50)' from the threshold."""
        if n < self.small:
            return self.text("share_small", count=count, n=n)
        return self.text("share", percent=self.percent(Fraction(count, n)), n=n, count=count)


def _index(findings: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["phase"], q["code"]): q for p in findings["phases"] for q in p["questions"]}


def _answer(q: dict[str, Any], value: str) -> int:
    return next((a["count"] for a in q.get("answers", []) if a["value"] == value), 0)


def _evidence(q: dict[str, Any], **counts: Any) -> dict[str, Any]:
    return {
        "questions": [q["code"]],
        "counts": {"answered": q["answered"], **counts},
        "stations": q["stations"],
    }


def draft(parts: dict[str, Any], ctx: Any, roles: StatementQuestions) -> dict[str, Any]:
    """The statement as Markdown plus its sentences with evidence; `roles` names the
    questions behind the assessments, observer access, secrecy, intimidation and
    accessibility (the template's `statement` block)."""
    findings, coverage = parts["findings"], parts["coverage"]
    w = Writer(ctx.language, ctx.config.small_denominator)
    qi = _index(findings)
    phases = {p["phase"]: p for p in findings["totals"]["phases"]}
    _coverage(w, findings, coverage, phases, ctx.random_sample)
    opening = qi.get(("opening", roles.opening_assessment or ""))
    _scale(w, "h_opening", opening, "opening_assessed", "opening_positive")
    _access(w, qi, roles)
    _voting(w, qi, roles)
    _accessibility(w, qi, roles)
    _irregularities(w, findings)
    _count(w, qi, phases, parts["counting"], roles)
    _incidents(w, parts["incidents"])
    _critical(w, parts["critical"])
    return {
        "markdown": _markdown(w),
        "sentences": [
            {"paragraph": s.paragraph, "key": s.key, "text": s.text, "evidence": s.evidence}
            for s in w.sentences
        ],
        "fallback": sorted(set(w.fallback)),
    }


def _coverage(
    w: Writer,
    findings: dict[str, Any],
    coverage: dict[str, Any],
    phases: dict[str, Any],
    random_sample: bool,
) -> None:
    par = "h_coverage"
    voting = phases.get("voting", {"observations": 0, "stations": 0})
    home = [r["region"] for r in coverage["regions"] if not r["abroad"] and _seen(r, "voting")]
    abroad = [r["region"] for r in coverage["regions"] if r["abroad"] and _seen(r, "voting")]
    if home and abroad:
        where = w.text("where_both", places=_join(w, home), abroad=_join(w, abroad))
    elif home:
        where = w.text("where_in", places=_join(w, home))
    elif abroad:
        where = w.text("where_abroad", places=_join(w, abroad))
    else:
        where = ""
    w.say(
        par,
        "voting_at",
        {"phase": "voting", "counts": voting, "regions": home + abroad},
        stations=voting["stations"],
        where=where,
    )
    counts = {p: phases.get(p, {"observations": 0, "stations": 0}) for p in PHASE_ORDER}
    w.say(
        par,
        "phases_at",
        {"counts": counts},
        opening=counts["opening"]["stations"],
        voting_obs=counts["voting"]["observations"],
        voting=counts["voting"]["stations"],
        closing=counts["closing"]["stations"],
    )
    totals = findings["totals"]
    w.say(
        par,
        "total",
        {"counts": {"observations": totals["observations"], "stations": totals["stations"]}},
        observations=totals["observations"],
        stations=totals["stations"],
    )
    w.say(par, "random" if random_sample else "purposive", {})


PHASE_ORDER = ("opening", "voting", "closing")


def _seen(region: dict[str, Any], phase: str) -> bool:
    return bool(region["observed"].get(phase, {}).get("stations"))


def _join(w: Writer, items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {w.phrase('and')} " + items[-1]


def _scale(
    w: Writer,
    paragraph: str,
    q: dict[str, Any] | None,
    negative_key: str,
    positive_key: str,
    **values: Any,
) -> None:
    """A 4-point assessment: positive in all observations, or negative in a share of them
    (`values`: what else the sentence says)."""
    if not q or not q["answered"]:
        return
    neg = q["negative"]["count"]
    ev = _evidence(q, negative=neg)
    if neg == 0:
        w.say(paragraph, positive_key, ev, n=q["answered"], code=q["code"], **values)
    else:
        share = w.share(neg, q["answered"])
        w.say(paragraph, negative_key, ev, negative=share, code=q["code"], **values)


def _pooled(qi: dict[tuple[str, str], dict[str, Any]], code: str, value: str) -> tuple[int, int]:
    """(count of `value`, answered) for a question asked in several phases, pooled."""
    count = answered = 0
    for (_, c), q in qi.items():
        if c == code:
            count += _answer(q, value)
            answered += q["answered"]
    return count, answered


def _access(
    w: Writer, qi: dict[tuple[str, str], dict[str, Any]], roles: StatementQuestions
) -> None:
    a, r = roles.observers_admitted, roles.observers_restricted
    if a is None or r is None:
        return
    admitted, n = _pooled(qi, a, "yes")
    restricted, n3 = _pooled(qi, r, "yes")
    if not n:
        return
    ev = {
        "questions": [a, r],
        "counts": {
            f"{a}=yes": admitted,
            f"{a} answered": n,
            f"{r}=yes": restricted,
            f"{r} answered": n3,
        },
    }
    codes = f"{a}, {r}"
    if restricted == 0 and admitted == n:
        w.say("h_access", "access_full", ev, admitted=w.share(admitted, n), codes=codes)
    else:
        w.say(
            "h_access",
            "access_restricted",
            ev,
            admitted=w.share(admitted, n),
            restricted=w.share(restricted, n3),
            codes=codes,
        )


def _voting(
    w: Writer, qi: dict[tuple[str, str], dict[str, Any]], roles: StatementQuestions
) -> None:
    voting = qi.get(("voting", roles.voting_assessment or ""))
    _scale(w, "h_voting", voting, "voting_assessed", "voting_positive")
    secrecy = qi.get(("voting", roles.secrecy or ""))
    if secrecy and secrecy["answered"]:
        no = _answer(secrecy, "no")
        ev = _evidence(secrecy, no=no)
        if no:
            count = w.share(no, secrecy["answered"])
            w.say("h_voting", "secrecy", ev, count=count, code=secrecy["code"])
        else:
            w.say(
                "h_voting",
                "secrecy_ok",
                ev,
                n=secrecy["answered"],
                code=secrecy["code"],
            )
    pressure = qi.get(("voting", roles.intimidation or ""))
    if pressure and pressure["answered"] and _answer(pressure, "yes"):
        yes = _answer(pressure, "yes")
        w.say(
            "h_voting",
            "intimidation",
            _evidence(pressure, yes=yes),
            count=w.share(yes, pressure["answered"]),
            code=pressure["code"],
        )


def _accessibility(
    w: Writer, qi: dict[tuple[str, str], dict[str, Any]], roles: StatementQuestions
) -> None:
    for code in roles.accessibility:
        q = qi.get(("voting", code))
        if not q or not q["answered"]:
            continue
        yes = _answer(q, "yes")
        w.say(
            "h_accessibility",
            "accessibility",
            _evidence(q, yes=yes),
            label=q["label"],
            yes=w.share(yes, q["answered"]),
            code=code,
        )


def _irregularities(w: Writer, findings: dict[str, Any]) -> None:
    items = findings["irregularities"]
    if not items:
        return
    pooled: dict[str, dict[str, Any]] = {}
    for item in items:
        slot = pooled.setdefault(
            item["code"],
            {"label": item["label"], "observed": 0, "reported": 0, "answered": 0},
        )
        slot["observed"] += item["observed"]["count"]
        slot["reported"] += item["reported"]["count"]
        slot["answered"] += item["answered"]
    answered = max(s["answered"] for s in pooled.values())
    codes = list(pooled)
    if not any(s["observed"] or s["reported"] for s in pooled.values()):
        w.say(
            "h_irregularities",
            "irregular_none",
            {"questions": codes, "counts": {"answered": answered, "observed": 0, "reported": 0}},
            n=answered,
            kinds=len(codes),
            codes=f"{codes[0]}–{codes[-1]}" if len(codes) > 1 else codes[0],
        )
        return
    for code, s in pooled.items():
        if not (s["observed"] or s["reported"]):
            continue
        w.say(
            "h_irregularities",
            "irregular_one",
            {
                "questions": [code],
                "counts": {k: s[k] for k in ("observed", "reported", "answered")},
            },
            label=s["label"],
            observed=s["observed"],
            reported=s["reported"],
            n=s["answered"],
            code=code,
        )


def _count(
    w: Writer,
    qi: dict[tuple[str, str], dict[str, Any]],
    phases: dict[str, Any],
    counting: dict[str, Any],
    roles: StatementQuestions,
) -> None:
    par = "h_count"
    q = qi.get(("closing", roles.count_assessment or ""))
    closing = phases.get("closing")
    if closing and q and q["answered"]:
        if closing["stations"] == 1:
            neg = q["negative"]["count"]
            word = "count_one_negative" if neg else "count_one_positive"
            ev = _evidence(q, negative=neg)
            w.say(par, "count_one", ev, assessment=w.phrase(word), code=q["code"])
        else:
            stations = closing["stations"]
            _scale(w, par, q, "count_many", "count_many_positive", stations=stations)
    reports = counting.get("reports") or 0
    if not reports:
        return
    failing = counting["failing"]
    failed_checks = [c for c in counting["checks"] if c["failed"]]
    ids = [f["checklist_id"] for f in failing]
    if not failed_checks:
        w.say(
            par,
            "checks_pass",
            {"checks": [c["check"] for c in counting["checks"]], "counts": {"reports": reports}},
            reports=reports,
        )
    else:
        n_failed = len({f["checklist_id"] for f in failing})
        w.say(
            par,
            "checks_fail",
            {
                "checks": {c["check"]: c["failed"] for c in failed_checks},
                "counts": {"reports": reports, "failed": n_failed},
                "checklist_ids": ids,
            },
            failed=n_failed,
            reports=reports,
            checks="; ".join(
                f"{w.phrase('check_' + c['check'], c['rule'])} ({w.number(c['failed'])})"
                for c in failed_checks
            ),
        )
    if counting["conflicts"]:
        stations = [c["station"] for c in counting["conflicts"]]
        w.say(
            par,
            "conflicts",
            {
                "stations": stations,
                "checklist_ids": [
                    r["checklist_id"] for c in counting["conflicts"] for r in c["reports"]
                ],
            },
            stations=len(stations),
        )
    totals = counting.get("totals")
    if totals and totals["stations"] and totals["figures"]["valid"]:
        options = "; ".join(
            w.text(
                "votes_option",
                label=_label(qi, o["code"]),
                share=w.percent(Fraction(o["votes"], totals["figures"]["valid"])),
                votes=o["votes"],
            )
            for o in totals["options"]
        )
        w.say(
            par,
            "totals",
            {"counts": totals["figures"], "options": totals["options"]},
            stations=totals["stations"],
            options=options,
            turnout=w.phrase("unknown")
            if totals["turnout"] is None
            else w.percent(Fraction(totals["figures"]["in_box"], totals["figures"]["registered"])),
        )
    quick = counting.get("quick_count")
    if quick:
        w.say(
            par,
            "quick_count",
            {"quick_count": quick},
            n=quick["sampled_stations"],
            options="; ".join(
                w.text(
                    "quick_count_option",
                    label=_label(qi, o["code"]),
                    share=w.percent(o["share"]),
                    margin=w.percent(o["margin95"]),
                )
                for o in quick["options"]
            ),
        )


def _label(qi: dict[tuple[str, str], dict[str, Any]], code: str) -> str:
    q = qi.get(("closing", code))
    return f"{q['label']}:" if q else f"{code}:"


def _incidents(w: Writer, incidents: dict[str, Any]) -> None:
    if not incidents["count"]:
        w.say("h_incidents", "incidents_none", {"counts": {"incidents": 0}})
        return
    top = incidents["by_type"][0]
    w.say(
        "h_incidents",
        "incidents",
        {
            "counts": {t["type"]: t["count"] for t in incidents["by_type"]},
            "checklist_ids": [r["checklist_id"] for r in incidents["reports"]],
        },
        count=incidents["count"],
        top=top["label"],
        top_count=top["count"],
    )


def _critical(w: Writer, critical: dict[str, Any]) -> None:
    if not critical["count"]:
        w.say("h_critical", "critical_none", {"counts": {"critical": 0}})
        return
    ids_by: dict[tuple[str, str], list[Any]] = {}
    for c in critical["checklists"]:
        ids_by.setdefault((c["code"], c["value"]), []).append(c["checklist_id"])
    for p in critical["by_question"]:
        if p["pattern"] == "clustered":
            # From the counts, not the rounded `top_region_share`: rounding twice can move
            # the last digit.
            top = next(r["count"] for r in p["regions"] if r["region"] == p["top_region"])
            share = w.percent(Fraction(top, p["count"]))
            pattern = w.text("pattern_clustered", region=p["top_region"], share=share)
        elif p["pattern"] == "scattered":
            pattern = w.text("pattern_scattered", regions=p["regions_affected"])
        else:
            pattern = w.phrase("pattern_isolated")
        w.say(
            "h_critical",
            "critical",
            {
                "questions": [p["code"]],
                "counts": {"count": p["count"], "stations": p["stations"]},
                "regions": p["regions"],
                "checklist_ids": ids_by.get((p["code"], p["value"]), []),
            },
            label=p["label"].rstrip("?"),
            answer=p["answer"],
            count=p["count"],
            stations=p["stations"],
            pattern=pattern,
            code=p["code"],
        )


def _markdown(w: Writer) -> str:
    lines = [f"# {w.phrase('title')}", ""]
    notes: list[str] = []
    current = None
    paragraph: list[str] = []
    for s in w.sentences:
        if s.paragraph != current:
            if paragraph:
                lines += [" ".join(paragraph), ""]
            paragraph = []
            current = s.paragraph
            lines += [f"## {w.phrase(s.paragraph)}", ""]
        if s.evidence:
            notes.append(_note(w, s.evidence))
            paragraph.append(f"{s.text}[^{len(notes)}]")
        else:
            paragraph.append(s.text)
    if paragraph:
        lines += [" ".join(paragraph), ""]
    if notes:
        lines += [f"## {w.phrase('h_evidence')}", ""]
        lines += [f"[^{i}]: {n}" for i, n in enumerate(notes, start=1)]
        lines.append("")
    return "\n".join(lines)


def _note(w: Writer, evidence: dict[str, Any]) -> str:
    """The evidence footnote of a sentence: its questions, counts, checks and checklists."""
    parts = []
    if evidence.get("questions"):
        parts.append(w.text("note_questions", codes=", ".join(evidence["questions"])))
    counts = evidence.get("counts")
    if isinstance(counts, dict) and counts:
        flat = []
        for k, v in counts.items():
            if isinstance(v, dict):
                flat.append(f"{k}: " + ", ".join(f"{kk} {w.figure(vv)}" for kk, vv in v.items()))
            else:
                flat.append(f"{k} {w.figure(v)}")
        parts.append("; ".join(flat))
    if evidence.get("checks"):
        checks = evidence["checks"]
        listed = (
            ", ".join(f"{k} {w.figure(v)}" for k, v in checks.items())
            if isinstance(checks, dict)
            else ", ".join(checks)
        )
        parts.append(w.text("note_checks", checks=listed))
    ids = evidence.get("checklist_ids") or []
    if ids:
        shown = ", ".join(str(i) for i in ids[:10])
        if len(ids) > 10:
            shown = w.text("note_more", shown=shown, more=len(ids) - 10)
        parts.append(w.text("note_checklists", ids=shown))
    return "; ".join(parts) or w.text("note_totals")


def _whole(value: Any) -> bool:
    """A count (an int, and not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)
