"""FHIR dates as ranges, index values from the table, and search parameter parsing.

No database: these are the pure functions the store and the API share.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapter.errors import SearchError
from adapter.fhir.dates import (
    MAX_INSTANT,
    MIN_INSTANT,
    DateFormatError,
    format_instant,
    parse_range,
    period_range,
)
from adapter.fhir.index_values import (
    elements,
    index_values,
    normalize_reference,
    normalize_text,
    patient_key,
)
from adapter.fhir.search_query import (
    DateValue,
    QuantityValue,
    ReferenceValue,
    TokenValue,
    parse_search,
    split_escaped,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026", utc(2025, 12, 31, 16), utc(2026, 12, 31, 16)),
        ("2026-02", utc(2026, 1, 31, 16), utc(2026, 2, 28, 16)),
        ("2026-12", utc(2026, 11, 30, 16), utc(2026, 12, 31, 16)),
        ("2026-05-03", utc(2026, 5, 2, 16), utc(2026, 5, 3, 16)),
        ("2026-05-03T10:00+08:00", utc(2026, 5, 3, 2), utc(2026, 5, 3, 2, 1)),
        ("2026-05-03T10:00:00Z", utc(2026, 5, 3, 10), utc(2026, 5, 3, 10, 0, 1)),
        (
            "2026-05-03T10:00:00.5-05:00",
            utc(2026, 5, 3, 15, 0, 0, 500000),
            utc(2026, 5, 3, 15, 0, 0, 600000),
        ),
        (
            "2026-05-03T10:00:00.123456789Z",
            utc(2026, 5, 3, 10, 0, 0, 123456),
            utc(2026, 5, 3, 10, 0, 0, 123457),
        ),
        ("2026-05-03T10:00:00", utc(2026, 5, 3, 2), utc(2026, 5, 3, 2, 0, 1)),  # zone assumed
    ],
)
def test_parse_range_covers_the_written_precision(
    text: str, start: datetime, end: datetime
) -> None:
    assert parse_range(text, SHANGHAI) == (start, end)


def test_date_only_values_follow_the_zone() -> None:
    assert parse_range("2026-05-03", UTC) == (utc(2026, 5, 3), utc(2026, 5, 4))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "26",
        "2026-5",
        "2026-13",
        "2026-02-30",
        "2026-05-03T24:00:00Z",
        "2026-05-03T10:00:00+15:00",
        "2026-05-03 10:00",
        "now",
    ],
)
def test_parse_range_rejects_non_dates(text: str) -> None:
    with pytest.raises(DateFormatError):
        parse_range(text)


def test_extreme_years_stay_in_range() -> None:
    assert parse_range("9999", UTC)[1] == MAX_INSTANT
    assert parse_range("0001", SHANGHAI)[0] == MIN_INSTANT


def test_periods_with_open_ends() -> None:
    assert period_range({"start": "2026-05-01"}, UTC) == (utc(2026, 5, 1), MAX_INSTANT)
    assert period_range({"end": "2026-05-01"}, UTC) == (MIN_INSTANT, utc(2026, 5, 2))


def test_format_instant_is_utc_with_milliseconds() -> None:
    moment = datetime(2026, 11, 25, 21, 40, 0, 123999, tzinfo=SHANGHAI)
    assert format_instant(moment) == "2026-11-25T13:40:00.123+00:00"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Patient/p1", "Patient/p1"),
        ("http://h/fhir/Patient/p1", "Patient/p1"),
        ("Patient/p1/_history/3", "Patient/p1"),
        ("urn:uuid:8d3c0b06-5c8e-4f0e", "urn:uuid:8d3c0b06-5c8e-4f0e"),
        ("#contained", None),
    ],
)
def test_normalize_reference(text: str, expected: str | None) -> None:
    assert normalize_reference(text) == expected


def test_normalize_text_folds_case_accents_and_width() -> None:
    assert normalize_text("  Zoë   MÜLLER ") == "zoe muller"
    assert normalize_text("ＡＢＣ") == "abc"
    assert normalize_text("张三") == "张三"


def test_elements_walk_lists_and_filters() -> None:
    patient = {"telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "e"}]}
    assert elements(patient, "telecom[system=email].value") == ["e"]
    assert elements(patient, "telecom.value") == ["1", "e"]
    assert elements(patient, "name.family") == []


def test_index_values_of_a_patient() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "gender": "male",
        "birthDate": "1980-05-03",
        "name": [{"family": "张", "given": ["三"], "text": "张三"}],
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.1", "value": "X1"}],
        "telecom": [{"system": "phone", "value": "13800000000"}],
        "managingOrganization": {"reference": "Organization/org1"},
    }
    values = index_values(patient, SHANGHAI)
    by_param: dict[str, set] = {}
    for v in values:
        by_param.setdefault(v.param, set()).add(
            (v.system, v.code, v.value, v.reference, v.date_start)
        )
    assert by_param["gender"] == {(None, "male", None, None, None)}
    assert by_param["identifier"] == {("urn:oid:2.16.156.10011.1.1", "X1", None, None, None)}
    assert by_param["phone"] == {("phone", "13800000000", None, None, None)}
    assert "email" not in by_param
    assert {v[2] for v in by_param["name"]} == {"张", "三", "张三"}
    assert by_param["organization"] == {(None, None, None, "Organization/org1", None)}
    assert by_param["birthdate"] == {(None, None, None, None, utc(1980, 5, 2, 16))}
    assert len(values) == len(set(values))


def test_patient_only_references_are_filtered_by_target() -> None:
    group_obs = {"resourceType": "Observation", "id": "o", "subject": {"reference": "Group/g"}}
    params = {v.param for v in index_values(group_obs)}
    assert "subject" in params and "patient" not in params
    assert patient_key(group_obs) is None


@pytest.mark.parametrize(
    ("resource", "key"),
    [
        ({"resourceType": "Patient", "id": "p9"}, "Patient/p9"),
        ({"resourceType": "Task", "id": "t", "for": {"reference": "Patient/p1"}}, "Patient/p1"),
        (
            {
                "resourceType": "Provenance",
                "id": "v",
                "target": [{"reference": "Observation/o"}, {"reference": "Patient/p2"}],
            },
            "Patient/p2",
        ),
        ({"resourceType": "Organization", "id": "org"}, None),
        (
            {
                "resourceType": "Observation",
                "id": "o",
                "subject": {"reference": "http://x/fhir/Patient/p3"},
            },
            "Patient/p3",
        ),
    ],
)
def test_patient_key(resource: dict, key: str | None) -> None:
    assert patient_key(resource) == key


def test_invalid_dates_in_a_resource_are_not_indexed() -> None:
    values = index_values({"resourceType": "Patient", "id": "p", "birthDate": "1980-13-01"})
    assert [v for v in values if v.param == "birthdate"] == []


def test_token_forms_and_escapes() -> None:
    request = parse_search(
        "Observation",
        [
            ("code", "http://loinc.org|718-7,|x,s|,plain"),
            ("identifier", "urn:a\\|b|v\\,1"),
        ],
    )
    code, ident = request.criteria
    assert code.values == (
        TokenValue("718-7", "http://loinc.org", "given"),
        TokenValue("x", None, "none"),
        TokenValue(None, "s", "given"),
        TokenValue("plain", None, "any"),
    )
    assert ident.values == (TokenValue("v,1", "urn:a|b", "given"),)
    assert split_escaped("a\\,b,c", ",") == ["a\\,b", "c"]


def test_references_expand_bare_ids_to_the_target_types() -> None:
    request = parse_search(
        "Observation",
        [("patient", "p1"), ("subject", "p2"), ("subject:Group", "g1"), ("focus", "x")],
    )
    patient, subject, group, focus = (c.values[0] for c in request.criteria)
    assert patient == ReferenceValue(("Patient/p1",))
    assert "Patient/p2" in subject.references and "Group/p2" in subject.references
    assert group == ReferenceValue(("Group/g1",))
    assert focus == ReferenceValue((), id_only="x")  # focus may point to any type


def test_date_prefixes() -> None:
    request = parse_search("Observation", [("date", "ge2026-05"), ("date", "2026")], zone=UTC)
    assert request.criteria[0].values == (DateValue("ge", utc(2026, 5, 1), utc(2026, 6, 1)),)
    assert request.criteria[1].values[0].prefix == "eq"


def test_quantity_precision() -> None:
    (criterion,) = parse_search("Observation", [("value-quantity", "le5.40||mmol/L")]).criteria
    value = criterion.values[0]
    assert isinstance(value, QuantityValue)
    assert (value.prefix, value.number, value.code, value.system) == ("le", 5.4, "mmol/L", None)
    assert value.low == pytest.approx(5.395) and value.high == pytest.approx(5.405)
    (big,) = parse_search("Observation", [("value-quantity", "1e2")]).criteria
    assert big.values[0].low == pytest.approx(50) and big.values[0].high == pytest.approx(150)


def test_result_parameters() -> None:
    request = parse_search(
        "Patient",
        [("_count", "5"), ("_offset", "10"), ("_sort", "_lastUpdated,-_id"), ("_format", "json")],
    )
    sort = [(key.name, key.descending) for key in request.sort]
    assert (request.count, request.offset) == (5, 10)
    assert sort == [("_lastUpdated", False), ("_id", True)]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SearchError) as caught:
        parse_search(
            "Patient",
            [
                ("birthdate", "soon"),
                ("nope", "1"),
                ("_count", "x"),
                ("gender:below", "m"),
                ("_total", "some"),
                ("_format", "xml"),  # the negotiation's (adapter/api/negotiation.py): no error
            ],
        )
    issues = caught.value.issues
    assert [i.location for i in issues] == [
        "birthdate",
        "nope",
        "_count",
        "gender:below",
        "_total",
    ]
    assert caught.value.http_status == 400


def test_lenient_collects_unknown_parameters() -> None:
    request = parse_search("Patient", [("nope", "1"), ("gender", "male")], lenient=True)
    assert request.ignored == ["nope"] and len(request.criteria) == 1
    with pytest.raises(SearchError):  # malformed values stay errors when lenient
        parse_search("Patient", [("birthdate", "soon")], lenient=True)


def test_search_values_use_the_given_zone() -> None:
    (criterion,) = parse_search("Patient", [("birthdate", "2026-05-03")], zone=SHANGHAI).criteria
    assert criterion.values[0].start == utc(2026, 5, 2, 16)
    assert criterion.values[0].end - criterion.values[0].start == timedelta(days=1)


def test_an_unencoded_plus_in_a_zone_offset_is_read_as_plus() -> None:
    # curl '...?date=ge2026-05-03T10:00:00+08:00' sends '+', which decodes to a space
    (criterion,) = parse_search("Observation", [("date", "ge2026-05-03T10:00:00 08:00")]).criteria
    assert criterion.values[0].start == utc(2026, 5, 3, 2)
