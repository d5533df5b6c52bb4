"""The recognition catalogue (互认目录): the example loads and says what the recognition tests
rely on; broken files fail with a ConfigError naming file:line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.consortium import load_consortium
from adapter.errors import ConfigError
from adapter.recognition.catalogue import (
    Kind,
    Scope,
    load_catalogue,
    load_configured_catalogue,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CONSORTIUM = load_consortium(FIXTURES / "consortium.yaml")
FACILITIES = {f.id for f in CONSORTIUM.facilities}

GOOD = """\
version: 1
kind: recognition-catalogue
edition: "t1"
effective: 2026-01-01
items:
  - code: A
    name: 白细胞计数
    kind: 检验
    group: 临床血液
    loinc: 6690-2
    local:
      shiqiao-township-centre: WBC
    validity_days: {outpatient: 7, inpatient: 3}
  - code: B
    name: 胸部 CT 平扫
    kind: 检查
    group: 放射
    local:
      qingshan-county-hospital: [CT0105]
    validity_days: 30
    scope: 市域
    recognises: result
qualifications:
  - facility: shiqiao-township-centre
    eqa:
      - groups: [临床血液]
        programme: 省临检中心
        result: pass
        date: 2026-01-10
        valid_until: 2026-12-31
reasons:
  - code: other
    display: 其他
    needs_text: true
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recognition.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_catalogue_loads_with_what_the_tests_rely_on():
    catalogue = load_catalogue(FIXTURES / "recognition.yaml", FACILITIES)
    assert catalogue.edition == "2026.2"
    assert len({i.code for i in catalogue.items}) == len(catalogue.items) >= 20
    assert {i.kind for i in catalogue.items} == {Kind.lab, Kind.exam}
    wbc = catalogue.item("QS-JY-001")
    assert wbc is not None and wbc.days_for("inpatient") == 3 and wbc.days_for("outpatient") == 7
    # a care setting the item does not name gets the shortest window
    assert wbc.days_for("emergency") == 3
    assert catalogue.item_for_local("qingshan-county-hospital", "1001") is wbc
    assert catalogue.item_for_loinc("6690-2") is wbc
    assert catalogue.item_for_local("shiqiao-township-centre", "1001") is None
    assert catalogue.item("QS-JY-101").specimen == ["SER", "PLAS"]
    liuhe = catalogue.qualification("liuhe-township-centre")
    assert liuhe is not None and {a.result for a in liuhe.eqa} == {"pass", "fail"}
    codes = {r.code for r in catalogue.reasons}
    assert {
        "condition-changed",
        "fast-changing",
        "critical-importance",
        "emergency",
        "forensic",
        "other",
        "eqa-failed",
        "too-old",
    } <= codes


def test_chinese_kind_and_scope_names_are_read(tmp_path):
    catalogue = load_catalogue(_write(tmp_path, GOOD), FACILITIES)
    assert [i.kind for i in catalogue.items] == [Kind.lab, Kind.exam]
    assert catalogue.items[1].scope is Scope.city
    assert catalogue.items[0].local == {"shiqiao-township-centre": ["WBC"]}
    assert catalogue.qualifications[0].scopes == [Scope.consortium]  # the default


def test_configured_catalogue_beside_the_consortium_file_or_none(tmp_path):
    consortium_file = tmp_path / "consortium.yaml"
    assert load_configured_catalogue(None, consortium_file, CONSORTIUM) is None
    _write(tmp_path, GOOD)
    found = load_configured_catalogue(None, consortium_file, CONSORTIUM)
    assert found is not None and found.edition == "t1"
    with pytest.raises(ConfigError, match="cannot read"):
        load_configured_catalogue(tmp_path / "missing.yaml", consortium_file, CONSORTIUM)


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "message"),
    [
        # a field of the wrong kind: its own line
        ("    kind: 检验\n", "    kind: 化验\n", 8, "items.0.kind", "'lab' or 'exam'"),
        # validity windows: non-positive days, unknown care setting
        ("validity_days: 30\n", "validity_days: 0\n", 20, "items.1.validity_days", "1 or more"),
        (
            "{outpatient: 7, inpatient: 3}",
            "{outpatient: 7, ward: 3}",
            13,
            "items.0.validity_days",
            "unknown care setting 'ward'",
        ),
        # cross-references found after the fields, located at the offending key
        ("  - code: B\n", "  - code: A\n", 14, "items.1.code", "item code 'A' is used twice"),
        (
            "      qingshan-county-hospital: [CT0105]\n",
            "      qingshan-hospital: [CT0105]\n",
            19,
            "items.1.local.qingshan-hospital",
            "unknown facility 'qingshan-hospital'",
        ),
        (
            "      - groups: [临床血液]\n",
            "      - groups: [临床生化]\n",
            26,
            "qualifications.0.eqa.0.groups.0",
            "no item is in group '临床生化'",
        ),
        (
            "        valid_until: 2026-12-31\n",
            "        valid_until: 2025-12-31\n",
            30,
            "qualifications.0.eqa.0.valid_until",
            "valid_until is before date",
        ),
        ("        result: pass\n", "        result: passed\n", 28, "", "'pass' or 'fail'"),
        ("  - code: other\n", "  - code: 其他\n", 32, "reasons.0.code", "should match pattern"),
        (
            "    name: 白细胞计数\n",
            "    name: 白细胞计数\n    unit: x\n",
            8,
            "items.0.unit",
            "Extra",
        ),
    ],
)
def test_bad_catalogue_names_file_line_and_key(tmp_path, old, new, line, key, message):
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_catalogue(path, FACILITIES)
    error = caught.value
    assert error.file == f"{path}:{line}"
    if key:
        assert error.key == key
    assert message in str(error)


def test_local_code_claimed_by_two_items_is_refused(tmp_path):
    text = GOOD.replace(
        "      qingshan-county-hospital: [CT0105]\n", "      shiqiao-township-centre: WBC\n"
    )
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="local code 'WBC' of shiqiao-township-centre already"):
        load_catalogue(path, FACILITIES)


def test_loinc_code_claimed_by_two_items_is_refused(tmp_path):
    text = GOOD.replace("    group: 放射\n", "    group: 放射\n    loinc: 6690-2\n")
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="LOINC 6690-2 is already item A's") as caught:
        load_catalogue(path, FACILITIES)
    assert caught.value.file == f"{path}:18"


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, GOOD.replace("    loinc: 6690-2\n", "    loinc: [6690-2\n"))
    with pytest.raises(ConfigError) as caught:
        load_catalogue(path, FACILITIES)
    assert caught.value.file is not None and caught.value.file.startswith(f"{path}:")


def test_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_catalogue(_write(tmp_path, "- a\n- b\n"), FACILITIES)


def test_a_catalogue_of_300_items_loads_and_finds_every_local_code(tmp_path):
    """The 2027 target is over 300 items per province: a generated catalogue of that size."""
    lines = [
        "version: 1",
        "kind: recognition-catalogue",
        'edition: "gen"',
        "effective: 2026-01-01",
        "items:",
    ]
    for n in range(300):
        lines += [
            f"  - code: G{n:03d}",
            f"    name: 项目 {n}",
            f"    kind: {'检验' if n % 3 else '检查'}",
            f"    group: g{n % 7}",
            f"    local: {{liuhe-township-centre: [L{n}], shiqiao-township-centre: S{n}}}",
            f"    validity_days: {1 + n % 90}",
        ]
    lines += [
        "qualifications:",
        "  - facility: liuhe-township-centre",
        "    eqa:",
        "      - groups: [g0, g1, g2, g3, g4, g5, g6]",
        "        programme: p",
        "        result: pass",
        "        date: 2026-01-01",
        "        valid_until: 2026-12-31",
        "reasons:",
        "  - code: other",
        "    display: 其他",
    ]
    catalogue = load_catalogue(_write(tmp_path, "\n".join(lines) + "\n"), FACILITIES)
    assert len(catalogue.items) == 300
    for n in (0, 151, 299):
        item = catalogue.item_for_local("shiqiao-township-centre", f"S{n}")
        assert item is not None and item.code == f"G{n:03d}" and item.days_for("x") == 1 + n % 90
