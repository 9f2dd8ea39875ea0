"""A published template version as an XForm (ODK XForms 1.0), for ODK Collect and Enketo.

One form per template version and per observer: the station is a choice among the
observer's own stations, so Collect needs no media file, no entity list and no server-side
join, and the observer's language is the form's default. A form differs between two
observers only in those choices and that default; its id (`<code>-v<version>`) is the same
for everyone, its `version` says which station list it carries, and its MD5 (the
`hash` of the form list) changes exactly when its text does. Publishing a new template
version makes a new form id: Collect shows both until the older is retired.

The instance holds, besides one group per section, the station, the phase (which selects
the sections asked in it, as the web app does), the observation time (the moment the form
was opened, with the phone's UTC offset), photos (a repeat of image uploads, sent as
attachments), and the device id in `meta`. Node names that are not question codes carry a
hyphen, which a template code never has, so the two never clash.

An integer or time question that accepts "not applicable" gets a companion choice before it
(`<code>-na`): XForms types cannot hold the word `na` in a number.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lxml import etree

from api.checklist_schema import (
    NA,
    SCALE4,
    YES_NO,
    Question,
    QuestionType,
    Section,
    TemplateDefinition,
)
from api.services.findings.questions import BUILT_IN_LABELS

XF = "http://www.w3.org/2002/xforms"
H = "http://www.w3.org/1999/xhtml"
JR = "http://openrosa.org/javarosa"
ORX = "http://openrosa.org/xforms"
ODK = "http://www.opendatakit.org/xforms"
NSMAP = {None: XF, "h": H, "jr": JR, "orx": ORX, "odk": ODK}

ROOT = "data"
STATION = "pc-station"
PHASE = "pc-phase"
OBSERVED = "pc-observed"
PHOTOS = "pc-photos"
PHOTO = "pc-photo"
HEADING = "pc-heading"
NA_SUFFIX = "-na"
SECTION_PREFIX = "pc-sec-"
FORM_ID_RE = re.compile(r"(?P<code>[A-Za-z][A-Za-z0-9_]{0,31})-v(?P<version>[0-9]{1,7})")

# Texts the form itself adds (the template names only its own options), in the languages
# the observers' web app speaks (web/i18n.js); English for any other template language.
BUILT_IN: dict[str, dict[str, str]] = {
    "en": {
        **BUILT_IN_LABELS["en"],
        "station": "Polling station",
        "phase": "What are you reporting?",
        "phase_opening": "Opening",
        "phase_voting": "Voting",
        "phase_closing": "Closing and count",
        "phase_incident": "Incident",
        "photos": "Photos (optional)",
        "photo": "Photo",
        "required": "This question needs an answer",
        "between": "Enter a whole number from {min} to {max}",
        "at_least": "Enter a whole number of at least {min}",
        "at_most": "Enter a whole number of at most {max}",
        "too_long": "At most {n} characters",
        "na_alone": "'Not applicable' cannot be combined with other answers",
    },
    "ru": {
        **BUILT_IN_LABELS["ru"],
        "station": "Избирательный участок",
        "phase": "О чём вы сообщаете?",
        "phase_opening": "Открытие",
        "phase_voting": "Голосование",
        "phase_closing": "Закрытие и подсчёт",
        "phase_incident": "Инцидент",
        "photos": "Фотографии (по желанию)",
        "photo": "Фото",
        "required": "Этот вопрос требует ответа",
        "between": "Введите целое число от {min} до {max}",
        "at_least": "Введите целое число не меньше {min}",
        "at_most": "Введите целое число не больше {max}",
        "too_long": "Не больше {n} символов",
        "na_alone": "«Неприменимо» нельзя сочетать с другими ответами",
    },
}
PHASES = ("opening", "voting", "closing", "incident")
LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "kk": "Қазақша", "uk": "Українська"}


def built_in(language: str, key: str) -> str:
    return BUILT_IN.get(language, BUILT_IN["en"]).get(key) or BUILT_IN["en"][key]


@dataclass(frozen=True, slots=True)
class StationChoice:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class ServedForm:
    form_id: str
    version: str
    title: str
    xml: bytes

    @property
    def md5(self) -> str:
        return "md5:" + hashlib.md5(self.xml, usedforsecurity=False).hexdigest()


def form_id(code: str, version: int) -> str:
    return f"{code}-v{version}"


def parse_form_id(value: str) -> tuple[str, int] | None:
    """(template code, version) from a form id this server made; None for any other."""
    m = FORM_ID_RE.fullmatch(value)
    return (m["code"], int(m["version"])) if m else None


def form_version(template_version: int, stations: list[StationChoice], language: str) -> str:
    """Changes with the template version, the observer's stations and default language."""
    digest = hashlib.sha256(
        "\n".join([language, *(f"{s.code}\t{s.name}" for s in stations)]).encode()
    ).hexdigest()[:10]
    return f"{template_version}.{digest}"


def _lang_label(code: str) -> str:
    """`English (en)`: Collect shows the name and ODK tools read the code in parentheses."""
    return f"{LANGUAGE_NAMES.get(code, code)} ({code})"


class _Builder:
    def __init__(self, definition: TemplateDefinition, language: str) -> None:
        self.d = definition
        langs = list(definition.languages)
        # The observer's language, when the template has it, is what Collect opens with.
        self.default = language if language in langs else langs[0]
        self.langs = [self.default, *(x for x in langs if x != self.default)]
        self.texts: dict[str, dict[str, str]] = {}  # itext id -> language -> text
        self.binds: list[dict[str, str]] = []

    # --- itext -----------------------------------------------------------------------

    def text(self, tid: str, labels: dict[str, str]) -> str:
        """Register a text in every language (the template's default language fills gaps)."""
        fallback = labels.get(self.d.languages[0]) or next(iter(labels.values()))
        self.texts[tid] = {x: labels.get(x) or fallback for x in self.langs}
        return f"jr:itext('{tid}')"

    def built(self, tid: str, key: str, **fmt: object) -> str:
        return self.text(tid, {x: built_in(x, key).format(**fmt) for x in self.langs})

    # --- body pieces -----------------------------------------------------------------

    def label(self, parent: etree._Element, ref: str) -> None:
        etree.SubElement(parent, f"{{{XF}}}label", ref=ref)

    def items(self, parent: etree._Element, choices: list[tuple[str, str]]) -> None:
        for value, ref in choices:
            item = etree.SubElement(parent, f"{{{XF}}}item")
            self.label(item, ref)
            etree.SubElement(item, f"{{{XF}}}value").text = value

    def bind(self, nodeset: str, **attrs: str) -> None:
        self.binds.append({"nodeset": nodeset, **attrs})

    def closed_choices(self, q: Question) -> list[tuple[str, str]]:
        base = f"q-{q.code}"
        if q.type == QuestionType.yes_no:
            out = [(v, self.built(f"{base}-c-{v}", v)) for v in YES_NO]
        elif q.type == QuestionType.scale4:
            out = [(v, self.built(f"{base}-c-{v}", v)) for v in SCALE4]
        else:
            out = [(o.code, self.text(f"{base}-c-{o.code}", o.label)) for o in q.options or []]
        if q.allow_na and NA not in {v for v, _ in out}:
            out.append((NA, self.built(f"{base}-c-{NA}", NA)))
        return out


def _literal(value: str) -> str:
    """An XPath string literal (XPath 1.0 has no escapes: pick the other quote)."""
    return f'"{value}"' if "'" in value else f"'{value}'"


def _show_if_xpath(q: Question, target: Question, path: str) -> str:
    assert q.show_if is not None
    values = sorted(q.show_if.accepted())
    if target.type == QuestionType.integer:
        parts = [f"{path} = {int(v)}" for v in values if v.lstrip("-").isdigit()]
        parts += [f"{path}-na = 'na'" for v in values if v == NA]
    elif target.type == QuestionType.time:
        parts = [f"substr({path}, 0, 5) = {_literal(v)}" for v in values]
    elif target.type == QuestionType.text:
        parts = [f"{path} = {_literal(v)}" for v in values]
    else:  # closed: selected() reads a single choice and a multiple one alike
        parts = [f"selected({path}, {_literal(v)})" for v in values]
    return " or ".join(parts) or "false()"


def _phase_xpath(section: Section) -> str | None:
    phases = section.asked_in()
    if phases >= set(PHASES):
        return None
    return " or ".join(f"/{ROOT}/{PHASE} = '{p}'" for p in PHASES if p in phases)


def build(
    definition: TemplateDefinition,
    stations: list[StationChoice],
    language: str,
) -> ServedForm:
    """The template version as an XForm for an observer with these stations."""
    b = _Builder(definition, language)
    fid = form_id(definition.code, definition.version)
    version = form_version(definition.version, stations, b.default)
    title = definition.title.get(b.default) or definition.title[definition.languages[0]]

    html = etree.Element(f"{{{H}}}html", nsmap=NSMAP)
    head = etree.SubElement(html, f"{{{H}}}head")
    etree.SubElement(head, f"{{{H}}}title").text = title
    model = etree.SubElement(head, f"{{{XF}}}model", {f"{{{ODK}}}xforms-version": "1.0.0"})
    itext = etree.SubElement(model, f"{{{XF}}}itext")
    instance = etree.SubElement(model, f"{{{XF}}}instance")
    data = etree.SubElement(instance, f"{{{XF}}}{ROOT}", id=fid, version=version)
    body = etree.SubElement(html, f"{{{H}}}body")

    # The station, the phase, the time the form was opened.
    st = etree.SubElement(data, f"{{{XF}}}{STATION}")
    if len(stations) == 1:
        st.text = stations[0].code
    sel = etree.SubElement(body, f"{{{XF}}}select1", ref=f"/{ROOT}/{STATION}")
    b.label(sel, b.built("pc-station", "station"))
    b.items(
        sel,
        [
            (s.code, b.text(f"pc-station-{i}", {x: f"{s.code}: {s.name}" for x in b.langs}))
            for i, s in enumerate(stations)
        ],
    )
    required = b.built("pc-required", "required")
    b.bind(
        f"/{ROOT}/{STATION}",
        type="string",
        required="true()",
        **{f"{{{JR}}}requiredMsg": required},
    )
    etree.SubElement(data, f"{{{XF}}}{PHASE}")
    sel = etree.SubElement(body, f"{{{XF}}}select1", ref=f"/{ROOT}/{PHASE}")
    b.label(sel, b.built("pc-phase", "phase"))
    b.items(sel, [(p, b.built(f"pc-phase-{p}", f"phase_{p}")) for p in PHASES])
    b.bind(
        f"/{ROOT}/{PHASE}", type="string", required="true()", **{f"{{{JR}}}requiredMsg": required}
    )
    etree.SubElement(data, f"{{{XF}}}{OBSERVED}")
    b.bind(
        f"/{ROOT}/{OBSERVED}",
        type="dateTime",
        **{f"{{{JR}}}preload": "timestamp", f"{{{JR}}}preloadParams": "start"},
    )

    questions, _ = definition.questions_and_phases()
    path_of: dict[str, str] = {}
    for section in definition.sections:
        gpath = f"/{ROOT}/{SECTION_PREFIX}{section.code}"
        gnode = etree.SubElement(data, f"{{{XF}}}{SECTION_PREFIX}{section.code}")
        group = etree.SubElement(body, f"{{{XF}}}group", ref=gpath)
        relevant = _phase_xpath(section)
        if relevant:
            b.bind(gpath, relevant=relevant)
        etree.SubElement(gnode, f"{{{XF}}}{HEADING}")
        note = etree.SubElement(group, f"{{{XF}}}input", ref=f"{gpath}/{HEADING}")
        b.label(note, b.text(f"s-{section.code}:label", section.title))
        b.bind(f"{gpath}/{HEADING}", type="string", readonly="true()")
        for q in section.questions:
            path = path_of[q.code] = f"{gpath}/{q.code}"
            shown = None
            if q.show_if:
                target = questions[q.show_if.question]
                shown = _show_if_xpath(q, target, path_of[target.code])
            _question(b, data=gnode, group=group, q=q, path=path, shown=shown, required=required)

    # Photos, sent as the submission's attachments.
    photos = etree.SubElement(data, f"{{{XF}}}{PHOTOS}", {f"{{{JR}}}template": ""})
    etree.SubElement(photos, f"{{{XF}}}{PHOTO}")
    pgroup = etree.SubElement(body, f"{{{XF}}}group", ref=f"/{ROOT}/{PHOTOS}")
    b.label(pgroup, b.built("pc-photos", "photos"))
    repeat = etree.SubElement(pgroup, f"{{{XF}}}repeat", nodeset=f"/{ROOT}/{PHOTOS}")
    upload = etree.SubElement(
        repeat, f"{{{XF}}}upload", ref=f"/{ROOT}/{PHOTOS}/{PHOTO}", mediatype="image/*"
    )
    b.label(upload, b.built("pc-photo", "photo"))
    b.bind(f"/{ROOT}/{PHOTOS}/{PHOTO}", type="binary")

    meta = etree.SubElement(data, f"{{{XF}}}meta")
    etree.SubElement(meta, f"{{{XF}}}instanceID")
    etree.SubElement(meta, f"{{{XF}}}deviceID")
    b.bind(
        f"/{ROOT}/meta/instanceID",
        type="string",
        readonly="true()",
        **{f"{{{JR}}}preload": "uid"},
    )
    b.bind(
        f"/{ROOT}/meta/deviceID",
        type="string",
        **{f"{{{JR}}}preload": "property", f"{{{JR}}}preloadParams": "deviceid"},
    )

    for lang in b.langs:
        tr = etree.SubElement(itext, f"{{{XF}}}translation", lang=_lang_label(lang))
        if lang == b.default:
            tr.set("default", "true()")
        for tid, texts in b.texts.items():
            t = etree.SubElement(tr, f"{{{XF}}}text", id=tid)
            etree.SubElement(t, f"{{{XF}}}value").text = texts[lang]
    for attrs in b.binds:
        model.append(etree.Element(f"{{{XF}}}bind", attrs))
    xml = etree.tostring(html, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return ServedForm(fid, version, title, xml)


def _question(
    b: _Builder,
    *,
    data: etree._Element,
    group: etree._Element,
    q: Question,
    path: str,
    shown: str | None,
    required: str,
) -> None:
    base = f"q-{q.code}"
    na_path = f"{path}{NA_SUFFIX}"
    typed_na = q.allow_na and q.type in (QuestionType.integer, QuestionType.time)
    if typed_na:
        etree.SubElement(data, f"{{{XF}}}{q.code}{NA_SUFFIX}")
        sel = etree.SubElement(group, f"{{{XF}}}select", ref=na_path)
        b.label(sel, b.text(f"{base}:label-na", q.label))
        b.items(sel, [(NA, b.built(f"{base}-c-{NA}", NA))])
        b.bind(na_path, type="string", **({"relevant": shown} if shown else {}))
    etree.SubElement(data, f"{{{XF}}}{q.code}")
    attrs: dict[str, str] = {}
    relevant = [x for x in (shown, f"not(selected({na_path}, 'na'))" if typed_na else None) if x]
    if relevant:
        attrs["relevant"] = " and ".join(f"({x})" for x in relevant)
    if q.required:
        attrs["required"] = "true()"
        attrs[f"{{{JR}}}requiredMsg"] = required
    if q.type in (QuestionType.single, QuestionType.yes_no, QuestionType.scale4):
        ctrl = etree.SubElement(group, f"{{{XF}}}select1", ref=path)
        attrs["type"] = "string"
    elif q.type == QuestionType.multi:
        ctrl = etree.SubElement(group, f"{{{XF}}}select", ref=path)
        attrs["type"] = "string"
        if q.allow_na:
            attrs["constraint"] = "not(selected(., 'na')) or count-selected(.) = 1"
            attrs[f"{{{JR}}}constraintMsg"] = b.built(f"{base}:na-alone", "na_alone")
    elif q.type == QuestionType.integer:
        ctrl = etree.SubElement(group, f"{{{XF}}}input", ref=path)
        attrs["type"] = "int"
        bounds = [f". >= {q.min}"] if q.min is not None else []
        bounds += [f". <= {q.max}"] if q.max is not None else []
        if bounds:
            attrs["constraint"] = " and ".join(bounds)
            key = "between" if len(bounds) == 2 else "at_least" if q.min is not None else "at_most"
            attrs[f"{{{JR}}}constraintMsg"] = b.built(
                f"{base}:constraint", key, min=q.min, max=q.max
            )
    elif q.type == QuestionType.time:
        ctrl = etree.SubElement(group, f"{{{XF}}}input", ref=path)
        attrs["type"] = "time"
    else:
        ctrl = etree.SubElement(group, f"{{{XF}}}input", ref=path)
        attrs["type"] = "string"
        attrs["constraint"] = f"string-length(.) <= {q.max_length}"
        attrs[f"{{{JR}}}constraintMsg"] = b.built(f"{base}:too-long", "too_long", n=q.max_length)
    b.label(ctrl, b.text(f"{base}:label", q.label))
    if q.hint:
        etree.SubElement(ctrl, f"{{{XF}}}hint", ref=b.text(f"{base}:hint", q.hint))
    if q.type in (
        QuestionType.single,
        QuestionType.multi,
        QuestionType.yes_no,
        QuestionType.scale4,
    ):
        b.items(ctrl, b.closed_choices(q))
    b.bind(path, **attrs)
