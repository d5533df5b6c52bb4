"""The shared 民族 table (mappings/_shared/concept-maps/ethnic-group.yaml): besides the GB/T 3304
two-digit codes and the names, the standard's two-letter codes (瑞美 LIS send `HA^汉族`) and
numbers written without their leading zero (a HIS sends `1^汉族`) give the same code."""

from __future__ import annotations

import pytest
import yaml

from tests.mappings.conftest import ROOT

TABLE = yaml.safe_load(
    (ROOT / "mappings/_shared/concept-maps/ethnic-group.yaml").read_text(encoding="utf-8")
)["map"]


@pytest.mark.parametrize(
    ("written", "code", "display"),
    [
        ("HA", "01", "汉族"),
        ("MG", "02", "蒙古族"),
        ("ZH", "08", "壮族"),
        ("CS", "10", "朝鲜族"),
        ("TJ", "15", "土家族"),
        ("XB", "38", "锡伯族"),
        ("HZ", "53", "赫哲族"),
        ("JN", "56", "基诺族"),
        ("1", "01", "汉族"),
        ("9", "09", "布依族"),
        ("01", "01", "汉族"),
        ("汉", "01", "汉族"),
    ],
)
def test_written_forms_give_the_gb3304_code(written: str, code: str, display: str) -> None:
    assert TABLE[written] == {"code": code, "display": display}


def test_every_one_of_the_56_codes_has_exactly_one_letter_code() -> None:
    letters = {k: v["code"] for k, v in TABLE.items() if k.isascii() and k.isalpha()}
    assert all(len(k) == 2 and k.isupper() for k in letters)
    assert sorted(letters.values()) == [f"{n:02d}" for n in range(1, 57)]


def test_unpadded_numbers_only_where_a_leading_zero_was_dropped() -> None:
    short = {k: v["code"] for k, v in TABLE.items() if k.isdigit() and len(k) == 1}
    assert short == {str(n): f"{n:02d}" for n in range(1, 10)}
