"""Instances of a served XForm filled the way ODK Collect fills them (tests and benches)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from api.services.openrosa import xform

NS = {"x": xform.XF}
BOUNDARY = "pollcheck-bench-boundary"


def fill(
    form: bytes,
    answers: dict[str, Any],
    station: str = "S-1",
    phase: str = "voting",
    instance: str | None = None,
    deprecated: str | None = None,
    photos: tuple[str, ...] = (),
    device: str | None = "collect:Xk9PhoneOfDana",
) -> tuple[str, bytes]:
    """The form's instance filled as Collect fills it; returns (instance id, XML)."""
    root = etree.fromstring(form)
    data = copy.deepcopy(root.find(".//x:instance/x:data", NS))
    data.find("x:pc-station", NS).text = station
    data.find("x:pc-phase", NS).text = phase
    observed = datetime.now(UTC).astimezone() - timedelta(minutes=5)
    data.find("x:pc-observed", NS).text = observed.isoformat(timespec="milliseconds")
    for node in data.iter():
        name = etree.QName(node).localname
        code, na = name.removesuffix(xform.NA_SUFFIX), name.endswith(xform.NA_SUFFIX)
        if code not in answers:
            continue
        value = answers[code]
        if na:
            node.text = "na" if value == "na" else None
        elif value == "na" and data.find(f".//x:{code}{xform.NA_SUFFIX}", NS) is not None:
            node.text = None
        elif isinstance(value, list):
            node.text = " ".join(value)
        elif isinstance(value, str) and len(value) == 5 and value[2] == ":":
            node.text = f"{value}:00.000+06:00"  # JavaRosa's time
        else:
            node.text = str(value)
    template = data.find(f"x:{xform.PHOTOS}", NS)
    meta = data.find("x:meta", NS)
    data.remove(template)
    for name in photos:
        group = etree.Element(f"{{{xform.XF}}}{xform.PHOTOS}")
        etree.SubElement(group, f"{{{xform.XF}}}{xform.PHOTO}").text = name
        meta.addprevious(group)
    instance = instance or f"uuid:{uuid.uuid4()}"
    meta.find("x:instanceID", NS).text = instance
    meta.find("x:deviceID", NS).text = device
    if deprecated:
        etree.SubElement(meta, f"{{{xform.XF}}}deprecatedID").text = deprecated
    return instance, etree.tostring(data, xml_declaration=True, encoding="UTF-8")


def multipart(xml: bytes) -> tuple[str, bytes]:
    """A submission body with only the instance, as Collect sends a form without photos:
    (its Content-Type, its bytes)."""
    body = (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="xml_submission_file"; filename="submission.xml"'
            "\r\nContent-Type: text/xml\r\n\r\n"
        ).encode()
        + xml
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return f"multipart/form-data; boundary={BOUNDARY}", body
