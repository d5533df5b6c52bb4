"""The shared unit table (mappings/_shared/concept-maps/ucum.yaml): the enzyme, immunology
and tumour-marker units Chinese LIS send have their UCUM code, and every code is well-formed
UCUM text (printable ASCII, no space, brackets and braces balanced and not nested)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.mappings.conftest import ROOT

TABLE = yaml.safe_load(
    (ROOT / "mappings/_shared/concept-maps/ucum.yaml").read_text(encoding="utf-8")
)["map"]


def lookup(unit: str) -> str | None:
    """As the engine looks a code up: exact, else case-folded."""
    if unit in TABLE:
        return TABLE[unit]
    folded = {k.casefold(): v for k, v in TABLE.items()}
    return folded.get(unit.casefold())


@pytest.mark.parametrize(
    "written, ucum",
    [
        ("U/mL", "U/mL"),
        ("u/ml", "U/mL"),
        ("IU/mL", "[IU]/mL"),
        ("mIU/mL", "m[IU]/mL"),
        ("mIU/L", "m[IU]/L"),
        ("KU/L", "kU/L"),
        ("mU/L", "mU/L"),
        ("ng/mL", "ng/mL"),
        ("ng/L", "ng/L"),
        ("μg/mL", "ug/mL"),
        ("COI", "{COI}"),
        ("S/CO", "{s_co_ratio}"),
        ("copies/mL", "{copies}/mL"),
        ("AU/mL", "[arb'U]/mL"),
        ("mL/min/1.73m2", "mL/min/{1.73_m2}"),
        ("mg/24h", "mg/(24.h)"),
        ("/LP", "/[LPF]"),
    ],
)
def test_units_chinese_labs_send(written: str, ucum: str) -> None:
    assert lookup(written) == ucum


def test_every_code_is_well_formed_ucum_text() -> None:
    bad = []
    for written, code in TABLE.items():
        code = str(code)
        inner = re.sub(r"\{[^{}\[\]]*\}|\[[^{}\[\]]*\]", "", code)
        if (
            not code.isascii()
            or " " in code
            or not code.isprintable()
            or any(c in inner for c in "[]{}")
            or inner.count("(") != inner.count(")")
        ):
            bad.append((written, code))
    assert bad == []


def test_no_unit_is_written_twice_with_different_codes() -> None:
    """The lookup folds case: two spellings that fold alike must agree."""
    seen: dict[str, str] = {}
    for written, code in TABLE.items():
        key = written.strip().casefold()
        assert seen.setdefault(key, code) == code, (written, code, seen[key])
