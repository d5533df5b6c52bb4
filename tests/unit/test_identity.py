"""Chinese resident identity numbers (GB 11643): check character, parsing, masking."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.identity import (
    mask_national_id,
    national_id_check_char,
    parse_national_id,
)

# the example number of GB 11643-1999
GB_EXAMPLE = "11010519491231002X"


def make_id(first17: str) -> str:
    return first17 + national_id_check_char(first17)


def test_gb11643_example_is_valid() -> None:
    nid = parse_national_id(GB_EXAMPLE)
    assert nid.value == GB_EXAMPLE
    assert nid.length == 18
    assert nid.valid_checksum is True
    assert nid.birth_date == date(1949, 12, 31)
    assert nid.sex == "female"  # sequence 002: even
    assert nid.problems == []
    assert nid.is_valid
    assert nid.eighteen is None  # already the 18-character form


@pytest.mark.parametrize(
    ("first17", "check"),
    [
        ("11010519491231002", "X"),  # GB 11643 example: remainder 2
        ("44030419900101001", None),
        ("33078119800101123", None),
    ],
)
def test_check_char_matches_the_weights(first17: str, check: str | None) -> None:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    remainder = sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11
    expected = "10X98765432"[remainder]
    assert national_id_check_char(first17) == expected
    if check is not None:
        assert expected == check


def test_every_remainder_maps_to_the_standard_check_char() -> None:
    # vary the last digit (weight 2) and the first (weight 7) to hit all 11 remainders
    seen: dict[str, str] = {}
    for a in range(10):
        for b in range(10):
            first17 = f"{a}1010519491231{b:03d}"
            weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
            rem = sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11
            seen[str(rem)] = national_id_check_char(first17)
    assert seen == {
        "0": "1",
        "1": "0",
        "2": "X",
        "3": "9",
        "4": "8",
        "5": "7",
        "6": "6",
        "7": "5",
        "8": "4",
        "9": "3",
        "10": "2",
    }


@pytest.mark.parametrize("bad", ["", "1234567890123456", "1101051949123100A", "１" * 17])
def test_check_char_refuses_anything_but_17_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        national_id_check_char(bad)


def test_male_number_built_with_the_function() -> None:
    value = make_id("33078119800101123")  # sequence 123: odd
    nid = parse_national_id(value)
    assert nid.valid_checksum is True and nid.problems == []
    assert nid.sex == "male"
    assert nid.birth_date == date(1980, 1, 1)


def test_normalisation_strips_and_upper_cases_x_and_full_width() -> None:
    assert parse_national_id("  11010519491231002x\n").value == GB_EXAMPLE
    full_width = "１１０１０５１９４９１２３１００２Ｘ"
    nid = parse_national_id(full_width)
    assert nid.value == GB_EXAMPLE
    assert nid.valid_checksum is True


def test_fifteen_digit_conversion() -> None:
    nid = parse_national_id("110105491231002")
    assert nid.length == 15
    assert nid.valid_checksum is None
    assert nid.eighteen == GB_EXAMPLE  # "19" inserted before the year, check char added
    assert nid.birth_date == date(1949, 12, 31)
    assert nid.sex == "female"
    assert nid.problems == []
    converted = parse_national_id(nid.eighteen)
    assert converted.valid_checksum is True


def test_fifteen_digit_male_and_its_check_char() -> None:
    nid = parse_national_id("330781800101123")
    assert nid.sex == "male"
    assert nid.eighteen == make_id("33078119800101123")


def test_bad_checksum_is_reported_without_the_number() -> None:
    nid = parse_national_id("110105194912310021")
    assert nid.valid_checksum is False
    assert nid.birth_date == date(1949, 12, 31)  # the rest is still read
    assert len(nid.problems) == 1
    assert "checksum" in nid.problems[0]
    assert "X" in nid.problems[0]  # the expected check char
    assert "11010519491231" not in nid.problems[0]


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("1101051949123100", "length"),
        ("11010519491231002XX", "length"),
        ("", "length"),
        ("1101051949123A002X", "non-digit"),
        ("110105194912310X2X", "non-digit"),
        ("11010519491231002Y", "non-digit"),
        ("1101054912310A2", "non-digit"),
        # ASCII only: other Unicode digits are not digits of an ID number
        ("11010519491231002٣", "non-digit"),
    ],
)
def test_malformed_numbers(value: str, word: str) -> None:
    nid = parse_national_id(value)
    assert any(word in p for p in nid.problems), nid.problems
    assert nid.valid_checksum is None
    assert nid.birth_date is None
    assert nid.eighteen is None


def test_impossible_birth_dates() -> None:
    feb30 = make_id("11010519490230002")
    nid = parse_national_id(feb30)
    assert nid.valid_checksum is True
    assert nid.birth_date is None
    assert any("birth date" in p for p in nid.problems)
    future = make_id("11010520990101002")
    nid = parse_national_id(future, today=date(2024, 1, 1))
    assert nid.birth_date is None
    assert any("future" in p for p in nid.problems)
    leap = parse_national_id(make_id("11010520000229002"))
    assert leap.birth_date == date(2000, 2, 29)
    assert parse_national_id("110105490230002").birth_date is None


def test_a_reading_is_kept_for_its_day_only() -> None:
    # a number read again the same day gives the same reading; on another day it is read
    # again: whether its birth date is in the future depends on the day (decision 0125)
    born = make_id("11010520300101002")
    before = parse_national_id(born, today=date(2029, 12, 31))
    after = parse_national_id(born, today=date(2030, 1, 1))
    assert any("future" in p for p in before.problems) and before.birth_date is None
    assert after.problems == [] and after.birth_date == date(2030, 1, 1)
    assert parse_national_id(born, today=date(2029, 12, 31)) == before
    assert parse_national_id(" " + born.lower() + " ", today=date(2030, 1, 1)) == after
    today = parse_national_id(born)  # today: years before 2030
    assert today.birth_date is None and today == before


def test_mask() -> None:
    assert mask_national_id(GB_EXAMPLE) == "110105********002X"
    assert mask_national_id(" 11010519491231002x ") == "110105********002X"
    assert mask_national_id("110105491231002") == "110105*****1002"
    assert mask_national_id("1234567890") == "**********"
    assert mask_national_id("") == ""


seventeen_digits = st.text(alphabet="0123456789", min_size=17, max_size=17)


@given(seventeen_digits)
def test_property_computed_check_char_is_valid(first17: str) -> None:
    nid = parse_national_id(make_id(first17))
    assert nid.valid_checksum is True
    assert not any("checksum" in p for p in nid.problems)


@given(seventeen_digits, st.integers(0, 16), st.integers(1, 9))
def test_property_changing_one_digit_breaks_validity(first17: str, pos: int, delta: int) -> None:
    value = make_id(first17)
    changed = str((int(value[pos]) + delta) % 10)
    mutated = value[:pos] + changed + value[pos + 1 :]
    assert parse_national_id(mutated).valid_checksum is False


@given(seventeen_digits, st.sampled_from("0123456789X"))
def test_property_changing_the_check_char_breaks_validity(first17: str, other: str) -> None:
    correct = national_id_check_char(first17)
    nid = parse_national_id(first17 + other)
    assert nid.valid_checksum is (other == correct)


@given(st.text())
def test_property_never_raises_and_mask_hides_the_middle(value: str) -> None:
    nid = parse_national_id(value)
    assert isinstance(nid.problems, list)
    assert (nid.valid_checksum is True) == (
        nid.length == 18 and not any("checksum" in p or "non-digit" in p for p in nid.problems)
    )
    masked = mask_national_id(value)
    assert len(masked) == len(nid.value)
    if len(nid.value) > 10:
        assert masked[6:-4] == "*" * (len(nid.value) - 10)


def test_features_as_json_is_asdict_and_a_copy() -> None:
    """``as_json`` is written out by hand (decision 0050, amended 2026-12-05 bulkcpu): the
    same dictionary as ``dataclasses.asdict``, every field, nothing shared."""
    from dataclasses import asdict, fields

    from adapter.identity.features import Features

    item = Features(
        record="p1",
        facility="f1",
        name="王芳",
        surname_len=1,
        birth="1980-05-03",
        sex="female",
        national_ids=["11010119800503002X"],
        weak_ids=["123"],
        id_birth_sex_agree=False,
        cards=[["urn:card", "C1"]],
        phones=["13800000000"],
        township="城关镇",
        identifiers=[{"system": "urn:card", "value": "C1"}],
    )
    made = item.as_json()
    assert made == asdict(item)
    assert list(made) == [f.name for f in fields(Features)]
    made["cards"][0].append("x")
    made["identifiers"][0]["value"] = "changed"
    made["phones"].append("x")
    assert item.cards == [["urn:card", "C1"]] and item.phones == ["13800000000"]
    assert item.identifiers == [{"system": "urn:card", "value": "C1"}]
    assert Features.from_json(asdict(item)) == item
