"""The example consortium (fixtures/consortium.yaml) loads and says what the fixtures rely on;
the broken examples (fixtures/consortium-bad/) fail with a ConfigError naming file:line and key.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapter.consortium import Level, load_consortium
from adapter.errors import ConfigError
from adapter.routing import destinations_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CONSORTIUM = FIXTURES / "consortium.yaml"
BAD = FIXTURES / "consortium-bad"

ORG_CODE_OID = "urn:oid:2.16.156.10011.1.5"
USCC_SYSTEM = "https://qingshan.example.cn/fhir/sid/uscc"

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _uscc_valid(code: str) -> bool:
    """GB 32100 check character: weights 3^i mod 31 over the first 17 characters."""
    if len(code) != 18 or any(c not in _USCC_CHARS for c in code):
        return False
    total = sum(_USCC_CHARS.index(c) * pow(3, i, 31) for i, c in enumerate(code[:17]))
    return _USCC_CHARS[(31 - total % 31) % 31] == code[17]


def _org_code_valid(code: str) -> bool:
    """GB 11714 check character of the 9-character organisation code."""
    if len(code) != 9:
        return False
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in code[:8]]
    check = 11 - sum(v * w for v, w in zip(values, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    return code[8] == {10: "X", 11: "0"}.get(check, str(check))


@pytest.fixture(scope="module")
def consortium():
    return load_consortium(CONSORTIUM)


def test_facilities_and_levels(consortium):
    levels = {f.id: (f.name, f.level) for f in consortium.facilities}
    assert levels == {
        "qingshan-county-hospital": ("青山县人民医院", Level.county),
        "shiqiao-township-centre": ("青山县石桥镇卫生院", Level.township),
        "liuhe-township-centre": ("青山县柳河镇卫生院", Level.township),
    }
    assert consortium.timezone == "Asia/Shanghai"


def test_organisation_identifiers_are_well_formed_and_distinct(consortium):
    seen: set[str] = set()
    for facility in consortium.facilities:
        by_system = {i.system: i.value for i in facility.identifiers}
        uscc, org_code = by_system[USCC_SYSTEM], by_system[ORG_CODE_OID]
        assert _uscc_valid(uscc), uscc
        assert _org_code_valid(org_code), org_code
        # the organisation code is characters 9-17 of the credit code
        assert uscc[8:17] == org_code
        assert uscc not in seen
        seen.add(uscc)
        assert facility.namespace.startswith("https://qingshan.example.cn/fhir/sid/")


def test_source_systems(consortium):
    expected = {
        "std-hl7v2": ("qingshan-county-hospital", "hl7v2", "_shared"),
        "county-his": ("qingshan-county-hospital", "hl7v2", "_shared"),
        "county-pacs-hl7": ("qingshan-county-hospital", "hl7v2", "ruiying-pacs"),
        "county-lis": ("qingshan-county-hospital", "hl7v2", "huikang-lis"),
        "county-lis-xinda": ("qingshan-county-hospital", "hl7v2", "xinda-lis"),
        "county-lis-boheng": ("qingshan-county-hospital", "hl7v2", "boheng-lis"),
        "std-cda": ("qingshan-county-hospital", "cda", "_shared"),
        "county-lis-xml": ("qingshan-county-hospital", "xml", "huikang-lis"),
        "county-pacs": ("qingshan-county-hospital", "xml", "ruiying-pacs"),
        "county-emr": ("qingshan-county-hospital", "xml", "jiahe-emr"),
        "ccda-gateway": ("qingshan-county-hospital", "cda", "ccda"),
        "shiqiao-lis": ("shiqiao-township-centre", "hl7v2", "yunyi-lis"),
        "shiqiao-his": ("shiqiao-township-centre", "xml", "yunyi-his"),
        "liuhe-lis": ("liuhe-township-centre", "hl7v2", "yunyi-lis"),
        "liuhe-his-json": ("liuhe-township-centre", "json", "kangning-his"),
        "liuhe-his-csv": ("liuhe-township-centre", "csv", "kangning-his"),
    }
    for source_id, (facility_id, fmt, mapping) in expected.items():
        found = consortium.source(source_id)
        assert found is not None, source_id
        facility, source = found
        assert (facility.id, source.format, source.mapping) == (facility_id, fmt, mapping)
    all_sources = {s.id for f in consortium.facilities for s in f.sources}
    assert all_sources == set(expected)


def test_local_identifier_systems(consortium):
    county = consortium.facility("qingshan-county-hospital")
    assert county.identifier_system("patient") == (
        "https://qingshan.example.cn/fhir/sid/county-hospital/patient"
    )
    shiqiao = consortium.facility("shiqiao-township-centre")
    assert shiqiao.identifier_system("patient") == (
        "https://qingshan.example.cn/fhir/sid/shiqiao-his-patient"
    )
    assert shiqiao.identifier_system("lab-report") == (
        "https://qingshan.example.cn/fhir/sid/shiqiao/lab-report"
    )


def test_one_disabled_loopback_fhir_destination_per_facility(consortium):
    pairs = consortium.destinations()
    assert sorted(f.id for f, _ in pairs) == sorted(f.id for f in consortium.facilities)
    for _, destination in pairs:
        assert destination.kind == "fhir"
        assert destination.enabled is False
        assert destination.settings["base_url"].startswith("http://127.0.0.1:")
    # nothing is delivered while every destination is disabled
    assert destinations_for(consortium, "shiqiao-township-centre", "Observation") == []


def test_routes_with_destinations_enabled(consortium):
    enabled = consortium.model_copy(
        update={
            "facilities": [
                f.model_copy(
                    update={
                        "destinations": [
                            d.model_copy(update={"enabled": True}) for d in f.destinations
                        ]
                    }
                )
                for f in consortium.facilities
            ]
        }
    )
    assert destinations_for(enabled, "shiqiao-township-centre", "Observation") == [
        "county-hospital-fhir"
    ]
    assert destinations_for(enabled, "liuhe-township-centre", "DiagnosticReport") == [
        "county-hospital-fhir"
    ]
    assert destinations_for(enabled, "qingshan-county-hospital", "Observation") == [
        "shiqiao-fhir",
        "liuhe-fhir",
    ]
    # routes carry lab results only
    assert destinations_for(enabled, "shiqiao-township-centre", "ServiceRequest") == []


def _error_for(name: str) -> ConfigError:
    path = BAD / name
    with pytest.raises(ConfigError) as caught:
        load_consortium(path)
    error = caught.value
    assert error.file is not None and error.file.startswith(f"{path}:"), error.file
    return error


def _line(error: ConfigError) -> int:
    return int(error.file.rsplit(":", 1)[1])


def test_bad_unknown_level():
    error = _error_for("unknown-level.yaml")
    assert _line(error) == 8
    assert error.key == "facilities.0.level"
    assert "district" in error.message


def test_bad_yaml_syntax():
    error = _error_for("yaml-syntax.yaml")
    # the unclosed "[" is on line 8; the parser notices it on line 9
    assert _line(error) in (8, 9)
    assert "]" in error.message


def test_bad_duplicate_source_id():
    error = _error_for("duplicate-source.yaml")
    assert "'lis'" in error.message
    assert error.key == "facilities.1.sources.0.id"
    assert _line(error) == 19


def test_bad_route_to_unknown_destination():
    error = _error_for("unknown-destination.yaml")
    assert "city-platform" in error.message
    assert error.key is not None and error.key.startswith("routes.0.to")
    assert _line(error) == 16


@pytest.mark.parametrize("name", ["duplicate-source.yaml", "unknown-destination.yaml"])
def test_bad_cross_references_are_refused(name):
    # what holds today, whatever line the error names
    error = _error_for(name)
    assert "used twice" in error.message or "unknown destination" in error.message


@pytest.mark.parametrize("cases_file", ["hl7v2/oru/cases.yaml", "hl7v2/bad/cases.yaml"])
def test_fixture_cases_name_configured_sources_and_existing_files(consortium, cases_file):
    path = FIXTURES / cases_file
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))
    listed = [case["file"] for case in cases]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    for case in cases:
        assert consortium.source(case["source"]) is not None, case["source"]
        assert (path.parent / case["file"]).is_file(), case["file"]
    on_disk = {str(p.relative_to(path.parent)) for p in path.parent.rglob("*.hl7")}
    assert on_disk == set(listed)


def test_unknown_time_zone_names_the_key_and_line(tmp_path):
    text = (
        (FIXTURES / "consortium.yaml")
        .read_text(encoding="utf-8")
        .replace("timezone: Asia/Shanghai", "timezone: Asia/Beijing")
    )
    bad = tmp_path / "consortium.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_consortium(bad)
    assert caught.value.key == "timezone"
    assert "Asia/Beijing" in caught.value.message
    assert caught.value.file.endswith(
        ":" + str(text.splitlines().index("timezone: Asia/Beijing") + 1)
    )
