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

import re
import string
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal, format_percent

from api.checklist_schema import StatementQuestions
from api.services.findings.counting import CHECKS_IN
from api.services.findings.questions import language_key
from api.services.findings.stats import Share, percent_value
from models.views import (
    AnnexTable,
    AnswerFindings,
    AnyQuestionFindings,
    ChoiceFindings,
    CountingSection,
    CoverageSection,
    CriticalChecklist,
    CriticalProblem,
    CriticalSection,
    FindingsSection,
    IncidentsSection,
    IrregularityFindings,
    PhaseTotals,
    RegionCoverage,
    ScaleFindings,
    StatementSection,
    StatementSentence,
)

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
        "h_annex_critical": "Annex: critical answers",
        "col_station": "Station",
        "col_region": "Region",
        "col_phase": "Phase",
        "col_observed": "Observed at",
        "col_checklist": "Checklist",
        "phase_opening": "opening",
        "phase_voting": "voting",
        "phase_closing": "count",
        "phase_incident": "incident",
        "during_opening": "During the opening",
        "during_voting": "During voting",
        "during_closing": "During the count",
        "voting_at": "The Mission observed voting at {stations:station}{where}.",
        "where_in": " in {places}",
        "where_abroad": " abroad ({places})",
        "where_both": " in {places} and abroad ({abroad})",
        "phases_at": "Observers reported {parts}.",
        "part_opening": "on the opening at {opening:station}",
        "part_voting": "on voting in {voting_obs:observation} at {voting:station}",
        "part_closing": "on the count at {closing:station}",
        "not_observed_opening": "The opening was not observed.",
        "not_observed_voting": "Voting was not observed.",
        "not_observed_closing": "The count was not observed.",
        "total": "In all, the Mission received {observations:observation} at {stations:station}.",
        "no_observations": "The Mission has not received any observations yet.",
        "purposive": "Observers were deployed purposively, so these findings describe what "
        "was observed and are not estimates for the country as a whole.",
        "random": "The observed polling stations are a random sample; intervals are 95% "
        "Wilson score intervals.",
        "opening_assessed": "The opening was assessed negatively in {negative} ({code}).",
        "opening_positive": "The opening was assessed positively in {n:all_observations} ({code}).",
        "access_full": "{during}, observers had full access: they were admitted without "
        "restriction in {admitted} and none of them was asked to leave or restricted ({codes}).",
        "access_restricted": "{during}, observers were admitted without restriction in "
        "{admitted}; they were asked to leave or restricted in {restricted} ({codes}).",
        "access_partial": "{during}, observers were admitted without restriction in "
        "{admitted}; none of them was asked to leave or restricted ({codes}).",
        "access_never_free": "{during}, observers were not admitted without restriction in "
        "any of {n:observations_of}; they were asked to leave or restricted in {restricted} "
        "({codes}).",
        "access_never_free_none": "{during}, observers were not admitted without restriction "
        "in any of {n:observations_of}, though none was asked to leave ({codes}).",
        "voting_assessed": "Voting was assessed negatively in {negative} ({code}).",
        "voting_positive": "Voting was assessed positively in {n:all_observations} ({code}).",
        "secrecy": "The secrecy of the vote was not respected in {count} ({code}).",
        "secrecy_ok": "The secrecy of the vote was respected in {n:all_observations} ({code}).",
        "intimidation": "Intimidation of or pressure on voters was seen in {count} ({code}).",
        "irregular_none": "{during}, no major irregularities were reported in "
        "{n:all_observations}: none of {kinds:listed_irregularity} was observed or reported to "
        "observers ({codes}).",
        "irregular_both": "{label} ({phase}): observed in {observed} and reported to observers "
        "in {reported} of {n:observation} ({code}).",
        "irregular_observed": "{label} ({phase}): observed in {observed} of {n:observation} "
        "({code}).",
        "irregular_reported": "{label} ({phase}): reported to observers in {reported} of "
        "{n:observation} ({code}).",
        "accessibility": "Asked “{label}”, observers answered yes in {yes} ({code}).",
        "accessibility_none": "Asked “{label}”, observers did not answer yes in any of "
        "{n:observations_of} ({code}).",
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
        "checks_fail_all": "{reports:report_all} failed at least one consistency check: {checks}.",
        "conflicts": "At {stations:station}, two reports of the same count disagree; the "
        "totals use one report per station (the latest verified, else the latest).",
        "totals_excluded": "The totals leave out counting reports: {reasons}.",
        "excluded_inconsistent": "{n} whose figures fail a consistency check",
        "excluded_incomplete": "{n} without every vote figure",
        "totals": "At the {stations:station} where the figures were copied, the valid votes "
        "were divided as follows: {options}; turnout there was {turnout}.",
        "quick_count": "Quick count from the random sample of {n} stations: {options}.",
        "incidents_none": "No incident reports were received.",
        "incidents": "Observers sent {count:incident_report}; the most frequent type was {top} "
        "({top_count}).",
        "critical_none": "No critical answers were recorded.",
        "critical_summary": "Observers recorded {count:critical_answer} in "
        "{observations:observation} at {stations:station}; the most frequent: {top} (each is "
        "listed in the annex).",
        "critical_top": "{label}: {answer} ({count})",
        "critical_clustered": "{label}: {answer} was concentrated in {region}, with {share} of "
        "its {count:case} there against {obs_share} of the observations ({code}).",
        "critical_scattered": "No critical answer given {min:time} or more was concentrated in "
        "one region beyond that region's share of the observations.",
        "critical_too_few": "Each critical answer was given fewer than {min:time}, too few to "
        "say whether it clusters in a region.",
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
        "all_observations": {
            "=2": "both observations",
            "one": "the one observation",
            "other": "all # observations",
        },
        "critical_answer": {"one": "one critical answer", "other": "# critical answers"},
        "case": {"one": "# case", "other": "# cases"},
        "time": {"one": "# time", "other": "# times"},
        "station": {"one": "one polling station", "other": "# polling stations"},
        "report": {"one": "one counting report", "other": "# counting reports"},
        "report_all": {
            "one": "The one counting report with protocol figures",
            "other": "All # counting reports with protocol figures",
        },
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
        "h_annex_critical": "Приложение: критические ответы",
        "col_station": "Участок",
        "col_region": "Регион",
        "col_phase": "Этап",
        "col_observed": "Время наблюдения",
        "col_checklist": "Анкета",
        "phase_opening": "открытие",
        "phase_voting": "голосование",
        "phase_closing": "подсчёт голосов",
        "phase_incident": "инцидент",
        "during_opening": "Во время открытия",
        "during_voting": "Во время голосования",
        "during_closing": "Во время подсчёта голосов",
        "voting_at": "Миссия наблюдала за голосованием на {stations:station_loc}{where}.",
        "where_in": " в стране ({places})",
        "where_abroad": " за рубежом ({places})",
        "where_both": " в стране ({places}) и за рубежом ({abroad})",
        "phases_at": "Наблюдатели сообщили {parts}.",
        "part_opening": "об открытии на {opening:station_loc}",
        "part_voting": "о голосовании — в {voting_obs:observation_loc} на {voting:station_loc}",
        "part_closing": "о подсчёте голосов на {closing:station_loc}",
        "not_observed_opening": "За открытием наблюдение не велось.",
        "not_observed_voting": "За голосованием наблюдение не велось.",
        "not_observed_closing": "За подсчётом голосов наблюдение не велось.",
        "no_observations": "Миссия пока не получила ни одного наблюдения.",
        "total": "Всего Миссия получила {observations:observation_acc} с {stations:station_gen}.",
        "purposive": "Наблюдатели были направлены на участки не по случайной выборке, поэтому "
        "эти выводы описывают увиденное и не являются оценками для страны в целом.",
        "random": "Наблюдаемые избирательные участки составляют случайную выборку; интервалы — "
        "95-процентные доверительные интервалы Уилсона.",
        "opening_assessed": "Открытие было оценено отрицательно в {negative} ({code}).",
        "opening_positive": "Открытие было оценено положительно {n:all_observations} ({code}).",
        "access_full": "{during} наблюдатели имели полный доступ: их допускали без ограничений "
        "в {admitted}, и ни в одном случае их не просили покинуть участок и не ограничивали "
        "({codes}).",
        "access_restricted": "{during} наблюдателей допускали без ограничений в {admitted}; их "
        "просили покинуть участок или ограничивали в {restricted} ({codes}).",
        "access_partial": "{during} наблюдателей допускали без ограничений в {admitted}; ни в "
        "одном случае их не просили покинуть участок и не ограничивали ({codes}).",
        "access_never_free": "{during} наблюдателей ни в одном из {n:observations_of} не "
        "допускали без ограничений; их просили покинуть участок или ограничивали в "
        "{restricted} ({codes}).",
        "access_never_free_none": "{during} наблюдателей ни в одном из {n:observations_of} не "
        "допускали без ограничений, хотя и не просили покинуть участок ({codes}).",
        "voting_assessed": "Голосование было оценено отрицательно в {negative} ({code}).",
        "voting_positive": "Голосование было оценено положительно {n:all_observations} ({code}).",
        "secrecy": "Тайна голосования не соблюдалась в {count} ({code}).",
        "secrecy_ok": "Тайна голосования соблюдалась {n:all_observations} ({code}).",
        "intimidation": "Запугивание избирателей или давление на них отмечены в {count} ({code}).",
        "irregular_none": "{during} серьёзных нарушений не выявлено {n:all_observations}: ни "
        "об одном из {kinds:listed_irregularity_gen} не сообщалось — ни как о замеченном, ни "
        "как о сообщённом наблюдателям ({codes}).",
        "irregular_both": "{label} ({phase}): замечено в {observed} и сообщено наблюдателям в "
        "{reported} из {n:observations_of} ({code}).",
        "irregular_observed": "{label} ({phase}): замечено в {observed} из {n:observations_of} "
        "({code}).",
        "irregular_reported": "{label} ({phase}): сообщено наблюдателям в {reported} из "
        "{n:observations_of} ({code}).",
        "accessibility": "На вопрос «{label}» наблюдатели ответили «да» в {yes} ({code}).",
        "accessibility_none": "На вопрос «{label}» наблюдатели ни в одном из "
        "{n:observations_of} не ответили «да» ({code}).",
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
        "checks_fail_all": "Данные протоколов {reports:report_gen_all} не прошли как минимум "
        "одну проверку на согласованность — {checks}.",
        "conflicts": "На {stations:station_loc} два отчёта об одном и том же подсчёте "
        "расходятся; в итогах учтён один отчёт на участок (последний проверенный, иначе "
        "последний).",
        "totals_excluded": "В итогах не учтены отчёты о подсчёте: {reasons}.",
        "excluded_inconsistent": "с несогласованными данными — {n}",
        "excluded_incomplete": "без всех данных о голосах — {n}",
        "totals": "На {stations:station_loc}, где были переписаны данные протоколов, "
        "действительные голоса распределились так: {options}; явка там — {turnout}.",
        "quick_count": "Параллельный подсчёт по случайной выборке из {n:station_gen}: {options}.",
        "incidents_none": "Сообщений об инцидентах не поступало.",
        "incidents": "Наблюдатели направили {count:incident_report_acc}; наиболее частый тип — "
        "«{top}» ({top_count}).",
        "critical_none": "Критических ответов не зафиксировано.",
        "critical_summary": "Наблюдатели зафиксировали {count:critical_answer_acc} в "
        "{observations:observation_loc} на {stations:station_loc}; чаще всего: {top} (все "
        "перечислены в приложении).",
        "critical_top": "{label}: «{answer}» ({count})",
        "critical_clustered": "{label}: «{answer}» — сосредоточено в регионе {region}: там "
        "{share} из {count:case_gen} при {obs_share} наблюдений ({code}).",
        "critical_scattered": "Ни один критический ответ, данный {min:time} и более, не "
        "сосредоточен в одном регионе сверх доли наблюдений в этом регионе.",
        "critical_too_few": "Каждый критический ответ дан менее {min:time_gen} — слишком редко, "
        "чтобы судить, сосредоточен ли он в одном регионе.",
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
        **{f"check_{name}": rule for name, rule in CHECKS_IN["ru"].items()},
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
            "=2": "в обоих наблюдениях",
            "one": "во всех # наблюдении",
            "few": "во всех # наблюдениях",
            "many": "во всех # наблюдениях",
            "other": "во всех # наблюдения",
        },
        "report_gen_all": {
            "=1": "единственного отчёта о подсчёте",
            "one": "всех # отчёта о подсчёте",
            "few": "всех # отчётов о подсчёте",
            "many": "всех # отчётов о подсчёте",
            "other": "всех # отчёта о подсчёте",
        },
        "report_gen": {
            "=1": "одного отчёта о подсчёте",
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
        "critical_answer_acc": {
            "=1": "один критический ответ",
            "one": "# критический ответ",
            "few": "# критических ответа",
            "many": "# критических ответов",
            "other": "# критического ответа",
        },
        "case_gen": {
            "one": "# случая",
            "few": "# случаев",
            "many": "# случаев",
            "other": "# случая",
        },
        "time": {"one": "# раз", "few": "# раза", "many": "# раз", "other": "# раза"},
        "time_gen": {"one": "# раза", "few": "# раз", "many": "# раз", "other": "# раза"},
    },
}


ROUTES = {
    "findings": "/findings",
    "coverage": "/findings/coverage",
    "counting": "/findings/counting",
    "critical": "/findings/critical",
    "incidents": "/findings/incidents",
}


class Fig(int):
    """A count read from a findings view, with where it was read (`path`, see
    `resolve_path`): the statement writes it and records it as evidence, so every number
    of the text can be checked against the view its footnote names."""

    path: str

    def __new__(cls, value: int, path: str) -> Fig:
        obj = super().__new__(cls, value)
        obj.path = path
        return obj


class ShareFig(float):
    """A share (0-1) read from a findings view, with its path."""

    path: str

    def __new__(cls, value: float, path: str) -> ShareFig:
        obj = super().__new__(cls, value)
        obj.path = path
        return obj


_STEP = re.compile(r"([^.\[]+)(?:\[([^\]]*)\](\*)?)?")


def resolve_path(data: Any, path: str) -> Any:
    """The value at `path` in a view: dotted keys; `list[key=value,…]` picks the item of a
    list whose keys have those values ("phases[phase=voting].questions[code=D4].answered"),
    `list[key=value]*` keeps every such item, and a last step `len` counts them."""
    for step in _split(path):
        if step == "len":
            data = len(data)
            continue
        m = _STEP.fullmatch(step)
        if m is None:
            raise KeyError(path)
        data = data[m.group(1)]
        if m.group(2):
            wanted = dict(kv.split("=", 1) for kv in m.group(2).split(","))
            chosen = [i for i in data if all(str(i.get(k)) == v for k, v in wanted.items())]
            data = chosen if m.group(3) else chosen[0]
    return data


def _split(path: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in path:
        if ch == "." and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += {"[": 1, "]": -1}.get(ch, 0)
        cur += ch
    return [*out, cur]


@dataclass(slots=True)
class Sentence:
    paragraph: str
    key: str
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Table:
    """A table of the annex: a title, column headings, rows of cells, each row's link."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    links: list[str]
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
        self.annex: list[Table] = []
        self.fallback: list[str] = []
        self._format = _Counted(self)
        self._written: list[dict[str, Any]] = []  # the numbers written since the last say

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

    def say(
        self, paragraph: str, key: str, evidence: dict[str, Any], route: str, **values: Any
    ) -> None:
        """A sentence; its evidence names the findings `route` its numbers come from and
        lists them (`figures`) with their paths in that route's view."""
        text = self.text(key, **values)
        figures, self._written = self._written, []
        if figures or evidence:
            evidence = {"route": route, **evidence, "figures": figures}
        self.sentences.append(Sentence(paragraph, key, text, evidence))

    def _note_figure(self, value: Any) -> None:
        path = getattr(value, "path", None)
        self._written.append({"value": value, "path": path})

    def number(self, n: int) -> str:
        self._note_figure(n)
        return str(format_decimal(n, locale=self.locale))

    def figure(self, value: Any) -> str:
        """A whole number as the language writes numbers; anything else as it is."""
        return self.number(value) if _whole(value) else str(value)

    def percent(self, share: Share) -> str:
        """A share as a percentage to one decimal (`stats.percent_value`'s rounding), trailing
        zero dropped, as the language writes it: "68.4%", "25%", "68,4 %"."""
        if isinstance(share, ShareFig):
            self._written.append({"share": float(share), "path": share.path})
        value = percent_value(share) / 100
        return str(format_percent(value, locale=self.locale, decimal_quantization=False))

    def ratio(self, count: Fig, n: Fig) -> str:
        """`count`/`n` as a percentage, recorded as the share of those two figures."""
        self._written.append({"share": count / n, "path": [count.path, n.path]})
        return self.percent(Fraction(int(count), int(n)))

    def counted(self, n: int, noun: str) -> str:
        """`n` with the form of `noun` for exactly `n` (`=1`: "одном" rather than "1"), else
        for its plural category in this language."""
        forms = self.phrase(noun)
        if not isinstance(forms, dict):
            raise KeyError(f"no noun {noun!r} in the statement's phrases")
        # English forms (a fallback) by English rules: "fr" counts 0 as singular.
        rules = self.locale if noun in self.table else _locale("en")
        form = forms.get(f"={n}") or forms.get(rules.plural_form(n)) or forms["other"]
        self._note_figure(n)
        return str(form).replace("#", str(format_decimal(n, locale=self.locale)))

    def share(self, count: int, n: int) -> str:
        """'3 of 24 observations', or '12.5% of 400 observations (50)' from the threshold."""
        if n < self.small:
            return self.text("share_small", count=count, n=n)
        if isinstance(count, Fig) and isinstance(n, Fig):
            pct = self.ratio(count, n)
        else:
            pct = self.percent(Fraction(count, n))
        return self.text("share", percent=pct, n=n, count=count)


@dataclass(frozen=True, slots=True)
class Parts:
    """The sections a statement is written from, each as its own view gives it."""

    findings: FindingsSection
    coverage: CoverageSection
    incidents: IncidentsSection
    critical: CriticalSection
    counting: CountingSection


@dataclass(frozen=True, slots=True)
class Asked:
    """A question's findings in one phase, and where they are in the findings view."""

    phase: str
    item: AnyQuestionFindings

    @property
    def path(self) -> str:
        return f"phases[phase={self.phase}].questions[code={self.item.code}]"


Index = dict[tuple[str, str], Asked]  # by (phase, question code)


def _index(findings: FindingsSection) -> Index:
    return {(p.phase, q.code): Asked(p.phase, q) for p in findings.phases for q in p.questions}


def _answers(q: Asked) -> list[AnswerFindings]:
    """A question's answers; none for a number or a time."""
    return q.item.answers if isinstance(q.item, ChoiceFindings | ScaleFindings) else []


def _answer(q: Asked, value: str) -> Fig:
    count = next((a.count for a in _answers(q) if a.value == value), 0)
    return Fig(count, f"{q.path}.answers[value={value}].count")


def _asked(qi: Index, phase: str, code: str | None, value: str) -> Asked | None:
    """The question a role names, in a phase, where it was answered and has the answer
    the role's sentence counts (`value`); else None, and the sentence is left out. (A later
    template may give the code to a question of another kind: a count of 0 read from it
    would say "in all observations" of something nobody was asked.)"""
    q = qi.get((phase, code or ""))
    if q is None or not q.item.answered:
        return None
    return q if any(a.value == value for a in _answers(q)) else None


def _answered(q: Asked) -> Fig:
    return Fig(q.item.answered, f"{q.path}.answered")


def _evidence(q: Asked, **counts: Any) -> dict[str, Any]:
    return {
        "questions": [q.item.code],
        "phase": q.phase,
        "counts": {"answered": q.item.answered, **{k: int(v) for k, v in counts.items()}},
        "stations": q.item.stations,
    }


def draft(parts: Parts, ctx: Any, roles: StatementQuestions) -> StatementSection:
    """The statement as Markdown plus its sentences with evidence; `roles` names the
    questions behind the assessments, observer access, secrecy, intimidation and
    accessibility (the template's `statement` block)."""
    findings = parts.findings
    w = Writer(ctx.language, ctx.config.small_denominator)
    qi = _index(findings)
    phases = {p.phase: p for p in findings.totals.phases}
    if not _coverage(w, findings, parts.coverage, phases, ctx.random_sample):
        return _drafted(w)
    opening = qi.get(("opening", roles.opening_assessment or ""))
    _scale(w, "h_opening", opening, "opening_assessed", "opening_positive")
    for phase in ("opening", "voting"):
        _access(w, "h_access", phase, qi, roles)
    _voting(w, qi, roles)
    _accessibility(w, qi, roles)
    _irregularities(w, "h_irregularities", findings, ("opening", "voting"))
    _count(w, qi, phases, parts.counting, roles, findings)
    _incidents(w, parts.incidents)
    _critical(w, parts.critical)
    return _drafted(w)


def _drafted(w: Writer) -> StatementSection:
    notes = [note(w, s.evidence) if s.evidence else None for s in w.sentences]
    paragraphs = list(dict.fromkeys(s.paragraph for s in w.sentences))
    headings = {p: w.phrase(p) for p in [*paragraphs, "h_annex_critical", "h_evidence"]}
    return StatementSection(
        markdown=_markdown(w, notes),
        title=w.phrase("title"),
        headings=headings,
        sentences=[
            StatementSentence(
                paragraph=s.paragraph, key=s.key, text=s.text, evidence=s.evidence, note=n
            )
            for s, n in zip(w.sentences, notes, strict=True)
        ],
        annex=[
            AnnexTable(
                title=t.title, columns=t.columns, rows=t.rows, links=t.links, evidence=t.evidence
            )
            for t in w.annex
        ],
        fallback=sorted(set(w.fallback)),
    )


PHASE_ORDER = ("opening", "voting", "closing")


def _coverage(
    w: Writer,
    findings: FindingsSection,
    coverage: CoverageSection,
    phases: dict[str, PhaseTotals],
    random_sample: bool,
) -> bool:
    """Where and when the Mission observed; False when it has observed nothing yet."""
    par = "h_coverage"
    totals = findings.totals
    if not totals.observations:
        w.say(par, "no_observations", {}, "findings")
        return False

    def counts(phase: str, key: str) -> Fig:
        found = phases.get(phase)
        value = getattr(found, key) if found is not None else 0
        return Fig(value, f"totals.phases[phase={phase}].{key}")

    home = [r.region for r in coverage.regions if not r.abroad and _seen(r, "voting")]
    abroad = [r.region for r in coverage.regions if r.abroad and _seen(r, "voting")]
    if counts("voting", "stations"):
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
            {
                "phase": "voting",
                "counts": {"stations": int(counts("voting", "stations"))},
                "regions": home + abroad,
            },
            "findings",
            stations=counts("voting", "stations"),
            where=where,
        )
    parts = []
    if counts("opening", "stations"):
        parts.append(w.text("part_opening", opening=counts("opening", "stations")))
    if counts("voting", "stations"):
        parts.append(
            w.text(
                "part_voting",
                voting_obs=counts("voting", "observations"),
                voting=counts("voting", "stations"),
            )
        )
    if counts("closing", "stations"):
        parts.append(w.text("part_closing", closing=counts("closing", "stations")))
    observed = {
        p: {"observations": phases[p].observations, "stations": phases[p].stations}
        for p in PHASE_ORDER
        if p in phases
    }
    if parts:
        w.say(par, "phases_at", {"counts": observed}, "findings", parts=_join(w, parts))
    for phase in PHASE_ORDER:
        if not counts(phase, "stations"):
            w.say(
                par,
                f"not_observed_{phase}",
                {"phase": phase, "counts": {"stations": 0}},
                "findings",
            )
    w.say(
        par,
        "total",
        {"counts": {"observations": totals.observations, "stations": totals.stations}},
        "findings",
        observations=Fig(totals.observations, "totals.observations"),
        stations=Fig(totals.stations, "totals.stations"),
    )
    w.say(par, "random" if random_sample else "purposive", {}, "findings")
    return True


def _seen(region: RegionCoverage, phase: str) -> bool:
    observed = region.observed.get(phase)
    return observed is not None and bool(observed.stations)


def _join(w: Writer, items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {w.phrase('and')} " + items[-1]


def _scale(
    w: Writer,
    paragraph: str,
    q: Asked | None,
    negative_key: str,
    positive_key: str,
    **values: Any,
) -> None:
    """A 4-point assessment: positive in all observations, or negative in a share of them
    (`values`: what else the sentence says)."""
    if not q or not q.item.answered:
        return
    neg = _negative(q)
    if neg is None:
        return
    ev = _evidence(q, negative=neg)
    code = q.item.code
    if neg == 0:
        w.say(paragraph, positive_key, ev, "findings", **values, n=_answered(q), code=code)
    else:
        share = w.share(neg, _answered(q))
        w.say(paragraph, negative_key, ev, "findings", **values, negative=share, code=code)


def _negative(q: Asked) -> Fig | None:
    """A 4-point assessment's negative answers; None for a question of another kind (a
    role renamed to one in a later template), of which the sentence cannot be said."""
    if not isinstance(q.item, ScaleFindings):
        return None
    return Fig(q.item.negative.count, f"{q.path}.negative.count")


def _access(
    w: Writer,
    paragraph: str,
    phase: str,
    qi: Index,
    roles: StatementQuestions,
) -> None:
    """Observers' access in one phase: the method reports each phase apart."""
    a, r = roles.observers_admitted, roles.observers_restricted
    if a is None or r is None:
        return
    qa, qr = _asked(qi, phase, a, "yes"), _asked(qi, phase, r, "yes")
    if not qa:
        return
    admitted, n = _answer(qa, "yes"), _answered(qa)
    if qr:
        restricted, n3 = _answer(qr, "yes"), _answered(qr)
    else:
        restricted, n3 = Fig(0, ""), Fig(0, "")
    ev = {
        "questions": [a, r],
        "phase": phase,
        "counts": {
            f"{a}=yes": int(admitted),
            f"{a} answered": int(n),
            f"{r}=yes": int(restricted),
            f"{r} answered": int(n3),
        },
    }
    during = w.phrase(f"during_{phase}")
    codes = f"{a}, {r}"
    values: dict[str, Any]
    if admitted == n and restricted == 0:
        key, values = "access_full", {"admitted": w.share(admitted, n)}
    elif admitted and restricted:
        values = {"admitted": w.share(admitted, n), "restricted": w.share(restricted, n3)}
        key = "access_restricted"
    elif admitted:
        key, values = "access_partial", {"admitted": w.share(admitted, n)}
    elif restricted:
        key, values = "access_never_free", {"n": n, "restricted": w.share(restricted, n3)}
    else:
        key, values = "access_never_free_none", {"n": n}
    w.say(paragraph, key, ev, "findings", during=during, codes=codes, **values)


def _voting(w: Writer, qi: Index, roles: StatementQuestions) -> None:
    voting = qi.get(("voting", roles.voting_assessment or ""))
    _scale(w, "h_voting", voting, "voting_assessed", "voting_positive")
    secrecy = _asked(qi, "voting", roles.secrecy, "no")
    if secrecy:
        no = _answer(secrecy, "no")
        ev = _evidence(secrecy, no=no)
        code = secrecy.item.code
        if no:
            count = w.share(no, _answered(secrecy))
            w.say("h_voting", "secrecy", ev, "findings", count=count, code=code)
        else:
            w.say("h_voting", "secrecy_ok", ev, "findings", n=_answered(secrecy), code=code)
    pressure = _asked(qi, "voting", roles.intimidation, "yes")
    if pressure and _answer(pressure, "yes"):
        yes = _answer(pressure, "yes")
        w.say(
            "h_voting",
            "intimidation",
            _evidence(pressure, yes=yes),
            "findings",
            count=w.share(yes, _answered(pressure)),
            code=pressure.item.code,
        )


def _accessibility(w: Writer, qi: Index, roles: StatementQuestions) -> None:
    for code in roles.accessibility:
        q = _asked(qi, "voting", code, "yes")
        if not q:
            continue
        yes = _answer(q, "yes")
        ev = _evidence(q, yes=yes)
        if yes:
            yes_text = w.share(yes, _answered(q))
            w.say(
                "h_accessibility",
                "accessibility",
                ev,
                "findings",
                label=q.item.label,
                yes=yes_text,
                code=code,
            )
        else:
            w.say(
                "h_accessibility",
                "accessibility_none",
                ev,
                "findings",
                label=q.item.label,
                n=_answered(q),
                code=code,
            )


def _irregularities(
    w: Writer, paragraph: str, findings: FindingsSection, phases: tuple[str, ...]
) -> None:
    """The irregularities of each phase apart (asked during voting and again at the count)."""
    for phase in phases:
        items = [i for i in findings.irregularities if i.phase == phase]
        if not items:
            continue
        codes = [i.code for i in items]

        def at(item: IrregularityFindings, key: str, phase: str = phase) -> str:
            return f"irregularities[phase={phase},code={item.code}].{key}"

        if not any(i.observed.count or i.reported.count for i in items):
            widest = max(items, key=lambda i: i.answered)
            w.say(
                paragraph,
                "irregular_none",
                {
                    "questions": codes,
                    "phase": phase,
                    "counts": {"answered": widest.answered, "observed": 0, "reported": 0},
                },
                "findings",
                during=w.phrase(f"during_{phase}"),
                n=Fig(widest.answered, at(widest, "answered")),
                kinds=Fig(len(codes), f"irregularities[phase={phase}]*.len"),
                codes=f"{codes[0]}–{codes[-1]}" if len(codes) > 1 else codes[0],
            )
            continue
        for item in items:
            observed = Fig(item.observed.count, at(item, "observed.count"))
            reported = Fig(item.reported.count, at(item, "reported.count"))
            if not (observed or reported):
                continue
            key = (
                "irregular_both"
                if observed and reported
                else "irregular_observed"
                if observed
                else "irregular_reported"
            )
            w.say(
                paragraph,
                key,
                {
                    "questions": [item.code],
                    "phase": phase,
                    "counts": {
                        "observed": int(observed),
                        "reported": int(reported),
                        "answered": item.answered,
                    },
                },
                "findings",
                label=item.label,
                phase=w.phrase(f"phase_{phase}"),
                observed=observed,
                reported=reported,
                n=Fig(item.answered, at(item, "answered")),
                code=item.code,
            )


def _count(
    w: Writer,
    qi: Index,
    phases: dict[str, PhaseTotals],
    counting: CountingSection,
    roles: StatementQuestions,
    findings: FindingsSection,
) -> None:
    par = "h_count"
    q = qi.get(("closing", roles.count_assessment or ""))
    closing = phases.get("closing")
    if closing and q and q.item.answered:
        stations = Fig(closing.stations, "totals.phases[phase=closing].stations")
        neg = _negative(q)
        if stations == 1 and neg is not None:
            word = "count_one_negative" if neg else "count_one_positive"
            ev = _evidence(q, negative=neg)
            w.say(par, "count_one", ev, "findings", assessment=w.phrase(word), code=q.item.code)
        else:
            _scale(w, par, q, "count_many", "count_many_positive", stations=stations)
    # Access and irregularities at the count, apart from the voting day's.
    _access(w, par, "closing", qi, roles)
    _irregularities(w, par, findings, ("closing",))
    _protocols(w, par, qi, counting)


def _protocols(w: Writer, par: str, qi: Index, counting: CountingSection) -> None:
    """The protocol figures: checks, reports left out of the totals, conflicts, totals."""
    reports = Fig(counting.reports, "reports")
    if not reports:
        return
    failed_checks = [c for c in counting.checks if c.failed]
    ids = [str(f.checklist_id) for f in counting.failing]
    if not failed_checks:
        w.say(
            par,
            "checks_pass",
            {"checks": [c.check for c in counting.checks], "counts": {"reports": reports}},
            "counting",
            reports=reports,
        )
    else:
        failed = Fig(counting.failing_reports, "failing_reports")
        w.say(
            par,
            "checks_fail_all" if failed == reports else "checks_fail",
            {
                "checks": {c.check: c.failed for c in failed_checks},
                "counts": {"reports": int(reports), "failed": int(failed)},
                "checklist_ids": ids,
            },
            "counting",
            failed=failed,
            reports=reports,
            checks="; ".join(
                f"{w.phrase('check_' + c.check, c.rule)} "
                f"({w.number(Fig(c.failed, 'checks[check=' + c.check + '].failed'))})"
                for c in failed_checks
            ),
        )
    inclusion = counting.inclusion
    left_out = inclusion.excluded_by_reason if inclusion else {}
    reasons = [
        w.text(
            f"excluded_{reason}", n=Fig(left_out[reason], f"inclusion.excluded_by_reason.{reason}")
        )
        for reason in ("inconsistent", "incomplete")
        if left_out.get(reason)
    ]
    if reasons and inclusion:
        w.say(
            par,
            "totals_excluded",
            {
                "counts": {r: left_out[r] for r in ("inconsistent", "incomplete")},
                "checklist_ids": [
                    str(e.checklist_id)
                    for e in inclusion.excluded
                    if e.reason in ("inconsistent", "incomplete")
                ],
            },
            "counting",
            reasons=_join(w, reasons),
        )
    if counting.conflicts:
        w.say(
            par,
            "conflicts",
            {
                "stations": [c.station for c in counting.conflicts],
                "checklist_ids": [
                    str(r.checklist_id) for c in counting.conflicts for r in c.reports
                ],
            },
            "counting",
            stations=Fig(counting.conflict_stations, "conflict_stations"),
        )
    totals = counting.totals
    if totals and totals.stations and totals.figures["valid"]:
        valid = Fig(totals.figures["valid"], "totals.figures.valid")
        options = "; ".join(
            w.text(
                "votes_option",
                label=_label(qi, o.code),
                share=w.ratio(Fig(o.votes, f"totals.options[code={o.code}].votes"), valid),
                votes=Fig(o.votes, f"totals.options[code={o.code}].votes"),
            )
            for o in totals.options
        )
        turnout = (
            w.phrase("unknown")
            if totals.turnout is None
            else w.ratio(
                Fig(totals.figures["in_box"], "totals.figures.in_box"),
                Fig(totals.figures["registered"], "totals.figures.registered"),
            )
        )
        w.say(
            par,
            "totals",
            {
                "counts": totals.figures,
                "options": [o.model_dump() for o in totals.options],
            },
            "counting",
            stations=Fig(totals.stations, "totals.stations"),
            options=options,
            turnout=turnout,
        )
    quick = counting.quick_count
    if quick:
        w.say(
            par,
            "quick_count",
            {"quick_count": quick.model_dump()},
            "counting",
            n=Fig(quick.sampled_stations, "quick_count.sampled_stations"),
            options="; ".join(
                w.text(
                    "quick_count_option",
                    label=_label(qi, o.code),
                    share=w.percent(ShareFig(o.share, f"quick_count.options[code={o.code}].share")),
                    margin=w.percent(
                        ShareFig(o.margin95, f"quick_count.options[code={o.code}].margin95")
                    ),
                )
                for o in quick.options
            ),
        )


def _label(qi: Index, code: str) -> str:
    q = qi.get(("closing", code))
    return f"{q.item.label}:" if q else f"{code}:"


def _incidents(w: Writer, incidents: IncidentsSection) -> None:
    if not incidents.count:
        w.say("h_incidents", "incidents_none", {"counts": {"incidents": 0}}, "incidents")
        return
    top = incidents.by_type[0]
    w.say(
        "h_incidents",
        "incidents",
        {
            "counts": {t.type: t.count for t in incidents.by_type},
            "checklist_ids": [str(r.checklist_id) for r in incidents.reports],
        },
        "incidents",
        count=Fig(incidents.count, "count"),
        top=top.label,
        top_count=Fig(top.count, f"by_type[type={top.type}].count"),
    )


def _critical(w: Writer, critical: CriticalSection) -> None:
    """A short summary (how many, where, the three most frequent, clustered or not) and a
    table per question and answer in the annex, each row linked to its checklist."""
    par = "h_critical"
    if not critical.count:
        w.say(par, "critical_none", {"counts": {"critical": 0}}, "critical")
        return
    problems = critical.by_question

    def at(p: CriticalProblem, key: str) -> str:
        return f"by_question[code={p.code},value={p.value}].{key}"

    # Labels may hold commas: the items are set apart by semicolons.
    top = "; ".join(
        w.text(
            "critical_top",
            label=p.label.rstrip("?"),
            answer=p.answer,
            count=Fig(p.count, at(p, "count")),
        )
        for p in problems[:3]
    )
    w.say(
        par,
        "critical_summary",
        {
            "questions": [p.code for p in problems],
            "counts": {f"{p.code}={p.value}": p.count for p in problems},
            "checklist_ids": list(dict.fromkeys(str(c.checklist_id) for c in critical.checklists)),
        },
        "critical",
        count=Fig(critical.count, "count"),
        observations=Fig(critical.observations, "observations"),
        stations=Fig(critical.stations, "stations"),
        top=top,
    )
    listed_by: dict[tuple[str, str], list[CriticalChecklist]] = {}
    for c in critical.checklists:
        listed_by.setdefault((c.code, c.value), []).append(c)
    clustering = critical.clustering.model_dump()
    clustered = [p for p in problems if p.pattern == "clustered"]
    for p in clustered:
        w.say(
            par,
            "critical_clustered",
            {
                "questions": [p.code],
                "regions": [r.model_dump() for r in p.regions],
                "clustering": clustering,
                "checklist_ids": [
                    str(c.checklist_id) for c in listed_by.get((p.code, p.value), [])
                ],
            },
            "critical",
            label=p.label.rstrip("?"),
            answer=p.answer,
            region=p.top_region,
            # From the counts, not the rounded `top_region_share`: rounding twice can move
            # the last digit.
            share=w.ratio(
                Fig(
                    next(r.count for r in p.regions if r.region == p.top_region),
                    at(p, f"regions[region={p.top_region}].count"),
                ),
                Fig(p.count, at(p, "count")),
            ),
            count=Fig(p.count, at(p, "count")),
            obs_share=w.percent(
                ShareFig(p.top_region_observation_share, at(p, "top_region_observation_share"))
            ),
            code=p.code,
        )
    minimum = Fig(critical.clustering.min_cases, "clustering.min_cases")
    if not clustered:
        key = (
            "critical_too_few"
            if all(p.pattern == "too_few" for p in problems)
            else "critical_scattered"
        )
        w.say(par, key, {"clustering": clustering}, "critical", min=minimum)
    columns = [
        w.phrase(f"col_{c}") for c in ("station", "region", "phase", "observed", "checklist")
    ]
    for p in problems:
        listed = listed_by.get((p.code, p.value), [])
        w.annex.append(
            Table(
                title=f"{p.label.rstrip('?')}: {p.answer} ({p.code})",
                columns=columns,
                rows=[
                    [
                        c.station,
                        c.region,
                        w.phrase(f"phase_{c.phase}", c.phase),
                        _minute(c.observed_at),
                        str(c.checklist_id)[:8],
                    ]
                    for c in listed
                ],
                links=[f"/checklists/{c.checklist_id}" for c in listed],
                evidence={"questions": [p.code], "count": p.count},
            )
        )
    w._written = []  # the annex's cells are not a sentence's figures


def _minute(value: Any) -> str:
    """An observation time to the minute, as stored (UTC): "2026-03-15 09:40"."""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text[:16].replace("T", " ")


def _markdown(w: Writer, sentence_notes: list[str | None]) -> str:
    lines = [f"# {w.phrase('title')}", ""]
    notes: list[str] = []
    current = None
    paragraph: list[str] = []
    for s, n in zip(w.sentences, sentence_notes, strict=True):
        if s.paragraph != current:
            if paragraph:
                lines += [" ".join(paragraph), ""]
            paragraph = []
            current = s.paragraph
            lines += [f"## {w.phrase(s.paragraph)}", ""]
        if n is not None:
            notes.append(n)
            paragraph.append(f"{s.text}[^{len(notes)}]")
        else:
            paragraph.append(s.text)
    if paragraph:
        lines += [" ".join(paragraph), ""]
    if w.annex:
        lines += [f"## {w.phrase('h_annex_critical')}", ""]
        for t in w.annex:
            lines += [f"### {t.title}", ""]
            lines.append("| " + " | ".join(t.columns) + " |")
            lines.append("|" + "---|" * len(t.columns))
            for row, link in zip(t.rows, t.links, strict=True):
                cells = [*row[:-1], f"[{row[-1]}]({link})"]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
            lines.append("")
    if notes:
        lines += [f"## {w.phrase('h_evidence')}", ""]
        lines += [f"[^{i}]: {n}" for i, n in enumerate(notes, start=1)]
        lines.append("")
    w._written = []
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def note(w: Writer, evidence: dict[str, Any]) -> str:
    """The evidence footnote of a sentence: the findings route its numbers come from, then
    its questions, counts, checks and checklists."""
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
    route = ROUTES.get(evidence.get("route", ""), "")
    body = "; ".join(parts) or w.text("note_totals")
    return f"{route}: {body}" if route else body


def _whole(value: Any) -> bool:
    """A count (an int, and not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)
