"""facility_of / level_direction read the consortium as data; @original carries the bytes."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from types import SimpleNamespace

from adapter.consortium import load_consortium
from adapter.mapping.functions.facilities import facility_of, level_direction
from adapter.pipeline.readers import consortium_variables, original_variables

ROOT = Path(__file__).resolve().parents[2]
CONSORTIUM = load_consortium(ROOT / "fixtures" / "consortium.yaml")


def ev() -> SimpleNamespace:
    return SimpleNamespace(vars={"consortium": consortium_variables(CONSORTIUM)})


def test_facility_found_by_code_id_or_name() -> None:
    assert facility_of(ev(), "453102982")["id"] == "shiqiao-township-centre"
    assert facility_of(ev(), " qingshan-county-hospital ")["id"] == "qingshan-county-hospital"
    assert facility_of(ev(), "青山县柳河镇卫生院")["id"] == "liuhe-township-centre"
    assert facility_of(ev(), "12430999453103053w")["id"] == "liuhe-township-centre"  # case
    assert facility_of(ev(), "青山县 人民医院")["level"] == "county"  # spaces ignored


def test_unknown_or_blank_facility_is_nothing() -> None:
    assert facility_of(ev(), "999999999") is None
    assert facility_of(ev(), "") is None
    assert facility_of(SimpleNamespace(vars={}), "453102982") is None


def test_direction_from_levels() -> None:
    assert level_direction(ev(), "453102982", "453102712") == "up"
    assert level_direction(ev(), "青山县人民医院", "liuhe-township-centre") == "down"
    assert level_direction(ev(), "453102982", "453103053") is None  # same level
    assert level_direction(ev(), "453102982", "某市中心医院") is None  # not a member
    found = facility_of(ev(), "453102982")
    assert level_direction(ev(), found, "453102712") == "up"  # a facility found before


def test_original_variables() -> None:
    raw = "转诊单".encode("gb18030")
    original = original_variables(raw, "application/xml")
    assert base64.b64decode(original["data"]) == raw
    assert original["size"] == len(raw)
    assert base64.b64decode(original["sha1"]) == hashlib.sha1(raw).digest()
    assert original["sha256"] == hashlib.sha256(raw).hexdigest()
    assert original["content_type"] == "application/xml"
