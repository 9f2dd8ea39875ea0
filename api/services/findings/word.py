"""The draft statement as a Word document, for the core team to edit overnight.

Built with python-docx from the statement view (the same sentences, headings, evidence and
annex as the Markdown). python-docx has no footnote API, so the footnotes part is written
here the way Word writes it: a `word/footnotes.xml` part related from the document, with
the separator and continuation separator footnotes (ids -1 and 0) that Word expects, the
settings' `footnotePr` naming them, and a `w:footnoteReference` run after each sentence.
The annex's checklist ids are hyperlinks to the checklists.
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from docx import Document
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import Part
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Pt
from docx.text.paragraph import Paragraph

from models.views import StatementSection

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FOOTNOTES_CT = "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"
_SEPARATORS = (
    '<w:footnote w:type="separator" w:id="-1"><w:p><w:pPr><w:spacing w:after="0" '
    'w:line="240" w:lineRule="auto"/></w:pPr><w:r><w:separator/></w:r></w:p></w:footnote>'
    '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:pPr><w:spacing w:after="0" '
    'w:line="240" w:lineRule="auto"/></w:pPr><w:r><w:continuationSeparator/></w:r></w:p>'
    "</w:footnote>"
)
_SUPERSCRIPT = '<w:rPr><w:vertAlign w:val="superscript"/></w:rPr>'


def _footnote(number: int, text: str) -> str:
    return (
        f'<w:footnote w:id="{number}"><w:p><w:pPr><w:spacing w:after="0"/></w:pPr>'
        f'<w:r><w:rPr><w:sz w:val="18"/><w:vertAlign w:val="superscript"/></w:rPr>'
        f'<w:footnoteRef/></w:r><w:r><w:rPr><w:sz w:val="18"/></w:rPr>'
        f'<w:t xml:space="preserve"> {escape(text)}</w:t></w:r></w:p></w:footnote>'
    )


def _add_footnote_reference(paragraph: Paragraph, number: int) -> None:
    paragraph._p.append(
        parse_xml(f'<w:r {nsdecls("w")}>{_SUPERSCRIPT}<w:footnoteReference w:id="{number}"/></w:r>')
    )


def _add_hyperlink(paragraph: Paragraph, text: str, url: str) -> None:
    r_id = paragraph.part.relate_to(url, RT.HYPERLINK, is_external=True)
    paragraph._p.append(
        parse_xml(
            f'<w:hyperlink {nsdecls("w", "r")} r:id="{r_id}"><w:r><w:rPr>'
            '<w:color w:val="0563C1"/><w:u w:val="single"/></w:rPr>'
            f'<w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:hyperlink>'
        )
    )


def statement_docx(drafted: StatementSection, base_url: str = "") -> bytes:
    """The statement view (`drafted`: its sentences, headings, annex) as .docx bytes; the
    annex links to `base_url` + `/checklists/{id}`."""
    doc = Document()
    doc.styles["Normal"].font.size = Pt(11)
    doc.add_heading(drafted.title, level=0)
    headings = drafted.headings
    notes: list[str] = []
    current = None
    paragraph: Paragraph | None = None
    for s in drafted.sentences:
        if s.paragraph != current or paragraph is None:
            current = s.paragraph
            doc.add_heading(headings.get(current, current), level=1)
            paragraph = doc.add_paragraph()
        elif paragraph.runs:
            paragraph.add_run(" ")
        paragraph.add_run(s.text)
        if s.note:
            notes.append(s.note)
            _add_footnote_reference(paragraph, len(notes))
    if drafted.annex:
        doc.add_page_break()
        doc.add_heading(headings.get("h_annex_critical", ""), level=1)
        for t in drafted.annex:
            doc.add_heading(t.title, level=2)
            table = doc.add_table(rows=1, cols=len(t.columns))
            table.style = doc.styles["Table Grid"]
            for cell, name in zip(table.rows[0].cells, t.columns, strict=True):
                cell.text = name
                for run in cell.paragraphs[0].runs:
                    run.bold = True
            for row, link in zip(t.rows, t.links, strict=True):
                cells = table.add_row().cells
                for cell, value in zip(cells[:-1], row[:-1], strict=True):
                    cell.text = value
                _add_hyperlink(cells[-1].paragraphs[0], row[-1], base_url + link)
    _footnotes_part(doc, notes)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _footnotes_part(doc: Any, notes: list[str]) -> None:
    """Word's footnotes part, related from the document, and named in the settings."""
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f"<w:footnotes {nsdecls('w', 'r')}>{_SEPARATORS}"
        + "".join(_footnote(i, text) for i, text in enumerate(notes, start=1))
        + "</w:footnotes>"
    )
    document_part = doc.part
    part = Part(
        PackURI("/word/footnotes.xml"), FOOTNOTES_CT, xml.encode("utf-8"), document_part.package
    )
    document_part.relate_to(part, RT.FOOTNOTES)
    settings = doc.settings.element
    if settings.find(qn("w:footnotePr")) is not None:
        return
    named = parse_xml(
        f'<w:footnotePr {nsdecls("w")}><w:footnote w:id="-1"/><w:footnote w:id="0"/></w:footnotePr>'
    )
    # The schema orders the settings' children: footnotePr comes before these.
    later = next((c for c in settings if _local(c.tag) in _AFTER_FOOTNOTE_PR), None)
    if later is None:
        settings.append(named)
    else:
        later.addprevious(named)


_AFTER_FOOTNOTE_PR = {
    "endnotePr",
    "compat",
    "docVars",
    "rsids",
    "mathPr",
    "attachedSchema",
    "themeFontLang",
    "clrSchemeMapping",
    "doNotIncludeSubdocsInStats",
    "doNotAutoCompressPictures",
    "forceUpgrade",
    "captions",
    "readModeInkLockDown",
    "smartTagType",
    "schemaLibrary",
    "shapeDefaults",
    "doNotEmbedSmartTags",
    "decimalSymbol",
    "listSeparator",
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
