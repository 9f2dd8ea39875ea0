"""Every served form passes ODK Validate: JavaRosa, the engine inside ODK Collect, parses it,
and every bind, relevance and constraint expression compiles. The jar ships in the pyxform
wheel (a dev dependency); Java comes from Debian's default-jre-headless (.ci/run)."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from lxml import etree

from api.checklist_schema import TemplateDefinition
from api.services import templates
from api.services.openrosa import xform
from tests.api.test_exports import _hostile_template
from tests.factories import every_kind_template

JAR = Path(str(resources.files("pyxform"))) / "validators/odk_validate/bin/ODK_Validate.jar"
JAVA = shutil.which("java")
STATIONS = [xform.StationChoice("S-1", "School no. 1"), xform.StationChoice("S-2", "O'Hara hall")]

TEMPLATES: dict[str, TemplateDefinition] = {
    "default": templates.default_definition(),
    "every_kind": every_kind_template(),
    "hostile": _hostile_template(),
}


def _odk_validate(tmp_path: Path, forms: dict[str, bytes]) -> None:
    if JAVA is None:
        pytest.fail("ODK Validate needs Java: apt-get install default-jre-headless")
    paths = []
    for name, xml in forms.items():
        path = tmp_path / f"{name}.xml"
        path.write_bytes(xml)
        paths.append(str(path))
    run = subprocess.run(
        [JAVA, "-jar", str(JAR), *paths], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("Xform is valid!") == len(paths), run.stdout


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_served_form_passes_odk_validate(tmp_path: Path, name: str) -> None:
    definition = TEMPLATES[name]
    forms = {
        f"{name}-{lang}-{len(stations)}": xform.build(definition, stations, lang).xml
        for lang in ("en", "ru")
        for stations in (STATIONS, STATIONS[:1])
    }
    _odk_validate(tmp_path, forms)


def test_odk_validate_refuses_a_broken_form(tmp_path: Path) -> None:
    """The check can fail: a relevance that is not XPath is caught."""
    xml = xform.build(every_kind_template(), STATIONS, "en").xml
    broken = xml.replace(b'relevant="', b'relevant="((', 1)
    with pytest.raises(AssertionError):
        _odk_validate(tmp_path, {"broken": broken})


def test_form_has_every_language_the_phase_and_the_observers_stations() -> None:
    form = xform.build(every_kind_template(), STATIONS, "ru")
    root = etree.fromstring(form.xml)
    ns = {"x": xform.XF, "h": xform.H}
    langs = [t.get("lang") for t in root.iterfind(".//x:itext/x:translation", ns)]
    assert langs == ["Русский (ru)", "English (en)", "Қазақша (kk)"]  # the observer's first
    assert (
        root.find(
            ".//x:translation[@lang='Қазақша (kk)']/x:text[@id='q-K1:label']/x:value", ns
        ).text
        == "Open? (kk)"
    )
    station_values = [
        v.text
        for v in root.iterfind(".//h:body/x:select1[@ref='/data/pc-station']/x:item/x:value", ns)
    ]
    assert station_values == ["S-1", "S-2"]
    binds = {b.get("nodeset"): b for b in root.iterfind(".//x:bind", ns)}
    assert binds["/data/pc-sec-L"].get("relevant") == "/data/pc-phase = 'closing'"
    assert binds["/data/pc-sec-K/K2"].get("constraint") == ". >= 0 and . <= 5000"
    assert binds["/data/pc-sec-K/K2"].get("required") == "true()"
    assert binds["/data/pc-sec-K/K3"].get("relevant") == "(selected(/data/pc-sec-K/K1, 'no'))"
    assert binds["/data/pc-sec-K/K5"].get("type") == "time"
    data = root.find(".//x:instance/x:data", ns)
    assert data.get("id") == "every-v1" and data.get("version") == form.version


def test_form_id_version_and_hash_are_stable_and_follow_the_station_list() -> None:
    one = xform.build(every_kind_template(), STATIONS, "en")
    again = xform.build(every_kind_template(), list(STATIONS), "en")
    fewer = xform.build(every_kind_template(), STATIONS[:1], "en")
    later = xform.build(every_kind_template(version=2), STATIONS, "en")
    assert (one.form_id, one.version, one.md5) == (again.form_id, again.version, again.md5)
    assert fewer.form_id == one.form_id and fewer.version != one.version and fewer.md5 != one.md5
    assert later.form_id == "every-v2" and xform.parse_form_id(later.form_id) == ("every", 2)
