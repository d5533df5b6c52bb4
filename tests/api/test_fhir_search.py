"""FHIR search over HTTP: every parameter form, paging, sorting, strict and lenient errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store import save_resources

ID_SYSTEM = "urn:oid:2.16.156.10011.1.1"  # 居民身份证号
MRN_SYSTEM = "urn:oid:1.2.156.1.qs.mrn"
LOINC = "http://loinc.org"
LOCAL = "urn:oid:1.2.156.1.qs.lab"
UCUM = "http://unitsofmeasure.org"
T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


def patients() -> list[dict]:
    return [
        {
            "resourceType": "Patient",
            "id": "p1",
            "gender": "female",
            "birthDate": "1980-05-03",
            "name": [{"family": "王", "given": ["芳"]}],
            "identifier": [
                {"system": ID_SYSTEM, "value": "11010119800503002X"},
                {"system": MRN_SYSTEM, "value": "MRN-001"},
            ],
            "telecom": [{"system": "phone", "value": "13800000001"}],
            "address": [{"city": "青山县", "line": ["城关镇解放路1号"]}],
        },
        {
            "resourceType": "Patient",
            "id": "p2",
            "gender": "male",
            "birthDate": "1975-12",
            "name": [{"family": "Müller", "given": ["Zoë"]}],
            "identifier": [{"value": "LOCAL-7"}],
        },
        {
            "resourceType": "Patient",
            "id": "p3",
            "gender": "male",
            "birthDate": "2000-01-01",
            "name": [{"family": "张", "given": ["三"]}],
            "identifier": [{"system": MRN_SYSTEM, "value": "MRN-003"}],
            "active": True,
        },
    ]


def obs(
    oid: str,
    patient: str,
    code: str,
    when: str,
    *,
    system: str | None = LOINC,
    value: float | None = None,
    category: str = "laboratory",
    **extra,
) -> dict:
    body = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": category,
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": system, "code": code} if system else {"code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
    }
    if value is not None:
        body["valueQuantity"] = {"value": value, "unit": "g/L", "system": UCUM, "code": "g/L"}
    body.update(extra)
    return body


def observations() -> list[dict]:
    return [
        obs("o1", "p1", "718-7", "2026-05-03T10:00:00+08:00", value=135),
        obs("o2", "p1", "2345-7", "2026-05-04T08:30:00+08:00", value=5.4),
        obs("o3", "p2", "718-7", "2026-04-30T23:59:59+08:00", value=98.5),
        obs("o4", "p3", "HB", "2025-12-31", system=LOCAL, category="vital-signs"),
        obs(
            "o5", "p3", "718-7", "2026-05-03T00:30:00+08:00", system=None, status="amended"
        ),  # a code without a system
    ]


def encounters() -> list[dict]:
    return [
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "period": {"start": "2026-05-01T08:00:00+08:00", "end": "2026-05-05T10:00:00+08:00"},
        },
        {
            "resourceType": "Encounter",
            "id": "e2",
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "http://other.example/fhir/Patient/p2"},
            "period": {"start": "2026-05-10T08:00:00+08:00"},
        },
    ]


def seed(factory: sessionmaker[Session]) -> None:
    # distinct lastUpdated times: p1 oldest ... e2 newest
    for i, resource in enumerate(patients() + observations() + encounters()):
        with factory.begin() as session:
            save_resources(session, [resource], message_id=None, now=T0 + timedelta(minutes=i))


@pytest.fixture(scope="module")
def seeded_client(module_database_url: str) -> Iterator[TestClient]:
    """One app over one seeded database for the read-only tests of this module."""
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        seed(app.state.session_factory)
        yield client
    app.state.engine.dispose()


@pytest.fixture
def client(seeded_client: TestClient) -> TestClient:
    """Here ``client`` is the shared seeded one; tests that write use ``app`` and ``save``."""
    return seeded_client


@pytest.fixture
def seeded(session_factory: sessionmaker[Session]) -> None:
    """The same data in the per-test database (for tests with their own settings)."""
    seed(session_factory)


def ids(body: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in body.get("entry", []) if e["search"]["mode"] == mode]


def links(body: dict) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in body["link"]}


def search(client: TestClient, path: str, fhir_valid=None, **kwargs) -> dict:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    if fhir_valid:
        fhir_valid(body)
    return body


def error(client: TestClient, path: str, status: int = 400, **kwargs) -> dict:
    response = client.get(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body


class TestTokens:
    def test_id_single_and_or(self, client: TestClient) -> None:
        assert ids(search(client, "/fhir/Patient?_id=p2")) == ["p2"]
        assert sorted(ids(search(client, "/fhir/Patient?_id=p1,p3,nope"))) == ["p1", "p3"]

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (f"{ID_SYSTEM}|11010119800503002X", ["p1"]),
            ("11010119800503002X", ["p1"]),  # any system
            ("|LOCAL-7", ["p2"]),  # identifier without a system
            ("|MRN-001", []),  # MRN-001 has a system
            (f"{MRN_SYSTEM}|", ["p1", "p3"]),  # any value in that system
            (f"{MRN_SYSTEM}|MRN-003", ["p3"]),
            (f"{ID_SYSTEM}|MRN-003", []),
        ],
    )
    def test_identifier_forms(self, client: TestClient, query: str, expected: list[str]) -> None:
        body = search(client, "/fhir/Patient", params={"identifier": query})
        assert sorted(ids(body)) == expected

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (f"{LOINC}|718-7", ["o1", "o3"]),
            ("718-7", ["o1", "o3", "o5"]),
            ("|718-7", ["o5"]),
            (f"{LOCAL}|", ["o4"]),
            (f"{LOINC}|718-7,{LOCAL}|HB", ["o1", "o3", "o4"]),  # comma = OR
        ],
    )
    def test_code_forms(self, client: TestClient, query: str, expected: list[str]) -> None:
        assert sorted(ids(search(client, "/fhir/Observation", params={"code": query}))) == (
            expected
        )

    def test_gender_status_category_active_telecom(self, client: TestClient) -> None:
        assert sorted(ids(search(client, "/fhir/Patient?gender=male"))) == ["p2", "p3"]
        assert ids(search(client, "/fhir/Observation?status=amended")) == ["o5"]
        assert ids(search(client, "/fhir/Observation?category=vital-signs")) == ["o4"]
        assert ids(search(client, "/fhir/Patient?active=true")) == ["p3"]
        assert ids(search(client, "/fhir/Patient?phone=13800000001")) == ["p1"]
        assert ids(search(client, "/fhir/Patient?telecom=phone|13800000001")) == ["p1"]

    def test_not_and_missing_modifiers(self, client: TestClient) -> None:
        assert sorted(ids(search(client, "/fhir/Patient?gender:not=male"))) == ["p1"]
        assert ids(search(client, "/fhir/Patient?active:missing=false")) == ["p3"]
        assert sorted(ids(search(client, "/fhir/Patient?active:missing=true"))) == ["p1", "p2"]

    def test_token_class_on_coding(self, client: TestClient) -> None:
        assert ids(search(client, "/fhir/Encounter?class=IMP")) == ["e1"]


class TestReferences:
    @pytest.mark.parametrize(
        "value", ["Patient/p1", "p1", "http://elsewhere.example/fhir/Patient/p1"]
    )
    def test_patient_forms(self, client: TestClient, value: str) -> None:
        body = search(client, "/fhir/Observation", params={"patient": value})
        assert sorted(ids(body)) == ["o1", "o2"]

    def test_subject_with_bare_id_and_type_modifier(self, client: TestClient) -> None:
        assert sorted(ids(search(client, "/fhir/Observation?subject=p3"))) == ["o4", "o5"]
        assert sorted(ids(search(client, "/fhir/Observation?subject:Patient=p3"))) == ["o4", "o5"]
        assert sorted(ids(search(client, "/fhir/Observation?subject=Patient/p3"))) == ["o4", "o5"]

    def test_absolute_references_are_indexed_as_type_and_id(self, client: TestClient) -> None:
        assert ids(search(client, "/fhir/Encounter?patient=p2")) == ["e2"]

    def test_or_of_references(self, client: TestClient) -> None:
        body = search(client, "/fhir/Observation?patient=p2,Patient/p3")
        assert sorted(ids(body)) == ["o3", "o4", "o5"]

    def test_reference_to_a_wrong_type_is_an_error(self, client: TestClient) -> None:
        body = error(client, "/fhir/Observation?patient=Group/g1")
        assert "patient" in body["issue"][0]["diagnostics"]
        assert "Group" in body["issue"][0]["diagnostics"]


class TestDates:
    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("2026", ["o1", "o2", "o3", "o5"]),
            ("2026-05", ["o1", "o2", "o5"]),  # o3 is 30 April in China
            ("2026-05-03", ["o1", "o5"]),
            ("eq2026-05-03", ["o1", "o5"]),
            ("2026-05-03T10:00:00+08:00", ["o1"]),
            ("2026-05-03T02:00:00Z", ["o1"]),  # the same instant in UTC
            ("ge2026-05-03", ["o1", "o2", "o5"]),
            ("gt2026-05-03", ["o2"]),
            ("le2026-04-30", ["o3", "o4"]),
            ("lt2026-05-01", ["o3", "o4"]),
            ("lt2026", ["o4"]),
            ("ne2026-05-03", ["o2", "o3", "o4"]),
            ("sa2026-05-03", ["o2"]),
            ("eb2026-01-01", ["o4"]),
        ],
    )
    def test_observation_date(self, client: TestClient, query: str, expected: list[str]) -> None:
        body = search(client, "/fhir/Observation", params={"date": query})
        assert sorted(ids(body)) == expected

    def test_unencoded_plus_of_a_zone_offset(self, client: TestClient) -> None:
        assert ids(search(client, "/fhir/Observation?date=2026-05-03T10:00:00+08:00")) == ["o1"]

    def test_repeated_parameter_is_and(self, client: TestClient) -> None:
        body = search(client, "/fhir/Observation?date=ge2026-05-01&date=lt2026-05-04")
        assert sorted(ids(body)) == ["o1", "o5"]

    def test_birthdate_precision(self, client: TestClient) -> None:
        assert ids(search(client, "/fhir/Patient?birthdate=1980-05-03")) == ["p1"]
        assert ids(search(client, "/fhir/Patient?birthdate=1975")) == ["p2"]
        # p2 was born some time in December 1975: not within 1975-12-10 ...
        assert ids(search(client, "/fhir/Patient?birthdate=1975-12-10")) == []
        # ... but the month overlaps days after the 10th: ge matches, eq does not
        assert "p2" in ids(search(client, "/fhir/Patient?birthdate=ge1975-12-10"))
        assert "p2" in ids(search(client, "/fhir/Patient?birthdate=ap1975-12-10"))

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("2026-05-03", []),  # a 4-day stay is not within one day
            ("ge2026-05-03", ["e1", "e2"]),  # ends after that day / open end
            ("le2026-05-03", ["e1"]),  # started before
            ("ap2026-05-03", ["e1"]),  # overlaps
            ("gt2026-06-01", ["e2"]),  # still open
        ],
    )
    def test_period_ranges(self, client: TestClient, query: str, expected: list[str]) -> None:
        assert sorted(ids(search(client, "/fhir/Encounter", params={"date": query}))) == (expected)

    def test_last_updated(self, client: TestClient) -> None:
        # p1 saved at T0, p2 at T0+1min, p3 at T0+2min
        assert ids(search(client, "/fhir/Patient?_lastUpdated=lt2026-05-01T00:01:00Z")) == ["p1"]
        assert sorted(ids(search(client, "/fhir/Patient?_lastUpdated=ge2026-05-01T00:01:00Z"))) == [
            "p2",
            "p3",
        ]
        assert sorted(ids(search(client, "/fhir/Patient?_lastUpdated=2026-05-01"))) == [
            "p1",
            "p2",
            "p3",
        ]
        assert ids(search(client, "/fhir/Patient?_lastUpdated=2026-05-02")) == []
        assert ids(search(client, "/fhir/Patient?_lastUpdated=2026-05-01T00:01:00Z")) == ["p2"]

    @pytest.mark.parametrize(
        "value", ["2026-13", "yesterday", "2026-02-30", "xx2026", "2026-05-03T25:00:00Z"]
    )
    def test_malformed_dates_name_parameter_and_value(
        self, client: TestClient, value: str, fhir_valid
    ) -> None:
        body = error(client, "/fhir/Observation", params={"date": value})
        fhir_valid(body)
        issue = body["issue"][0]
        assert issue["code"] == "value"
        assert "date" in issue["diagnostics"] and value in issue["diagnostics"]
        assert issue["location"] == ["date"]


class TestStrings:
    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("王", ["p1"]),
            ("张三", ["p3"]),  # family + given written together, as in Chinese
            ("mül", ["p2"]),  # starts-with, case-insensitive
            ("MULLER", ["p2"]),  # accents ignored
            ("zoe", ["p2"]),
            ("ller", []),  # not starts-with
        ],
    )
    def test_name(self, client: TestClient, query: str, expected: list[str]) -> None:
        assert ids(search(client, "/fhir/Patient", params={"name": query})) == expected

    def test_exact_and_contains(self, client: TestClient) -> None:
        assert ids(search(client, "/fhir/Patient?family:exact=Müller")) == ["p2"]
        assert ids(search(client, "/fhir/Patient?family:exact=müller")) == []
        assert ids(search(client, "/fhir/Patient?family:contains=ll")) == ["p2"]
        assert ids(search(client, "/fhir/Patient?address:contains=解放路")) == ["p1"]

    def test_given_family_address_city(self, client: TestClient) -> None:
        assert ids(search(client, "/fhir/Patient?given=芳")) == ["p1"]
        assert ids(search(client, "/fhir/Patient?family=张&gender=male")) == ["p3"]
        assert ids(search(client, "/fhir/Patient?address-city=青山")) == ["p1"]

    def test_like_wildcards_are_literal(self, client: TestClient) -> None:
        assert ids(search(client, "/fhir/Patient?name=%25")) == []
        assert ids(search(client, "/fhir/Patient?name=_")) == []


class TestQuantity:
    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("135", ["o1"]),
            ("5.4", ["o2"]),
            ("5.43", []),  # 5.4 is not within [5.425, 5.435)
            ("gt100", ["o1"]),
            ("le98.5", ["o2", "o3"]),
            (f"135|{UCUM}|g/L", ["o1"]),
            ("135||g/L", ["o1"]),
            ("135||mmol/L", []),
            ("ap100", ["o3"]),
        ],
    )
    def test_value_quantity(self, client: TestClient, query: str, expected: list[str]) -> None:
        body = search(client, "/fhir/Observation", params={"value-quantity": query})
        assert sorted(ids(body)) == expected


class TestPagingAndSorting:
    def test_default_sort_is_last_updated_descending(self, client: TestClient, fhir_valid) -> None:
        body = search(client, "/fhir/Patient", fhir_valid)
        assert ids(body) == ["p3", "p2", "p1"] and body["total"] == 3
        assert [e["fullUrl"] for e in body["entry"]] == [
            f"http://testserver/fhir/Patient/{i}" for i in ("p3", "p2", "p1")
        ]

    def test_sort_ascending_and_by_id(self, client: TestClient) -> None:
        assert ids(search(client, "/fhir/Patient?_sort=_lastUpdated")) == ["p1", "p2", "p3"]
        assert ids(search(client, "/fhir/Patient?_sort=-_id")) == ["p3", "p2", "p1"]
        error(client, "/fhir/Patient?_sort=nope")

    def test_ties_on_last_updated_are_broken_by_id(self, app: FastAPI, save: Callable) -> None:
        same = datetime(2026, 6, 1, tzinfo=UTC)
        save(
            [
                {"resourceType": "Organization", "id": i, "name": f"卫生院{i}"}
                for i in ("c", "a", "b")
            ],
            now=same,
        )
        with TestClient(app) as fresh:
            assert ids(search(fresh, "/fhir/Organization")) == ["a", "b", "c"]

    def test_pages_follow_next_and_previous_links(self, client: TestClient, fhir_valid) -> None:
        first = search(client, "/fhir/Observation?_count=2&status=final,amended", fhir_valid)
        assert first["total"] == 5 and len(ids(first)) == 2
        assert "previous" not in links(first)
        seen = ids(first)
        page = first
        while "next" in links(page):
            url = links(page)["next"]
            assert url.startswith("http://testserver/fhir/Observation?")
            query = parse_qs(urlsplit(url).query)
            assert query["status"] == ["final,amended"] and query["_count"] == ["2"]
            page = search(client, url.removeprefix("http://testserver"), fhir_valid)
            seen += ids(page)
        assert sorted(seen) == ["o1", "o2", "o3", "o4", "o5"] and len(seen) == 5
        assert len(ids(page)) == 1
        previous = links(page)["previous"]
        assert parse_qs(urlsplit(previous).query)["_offset"] == ["2"]
        assert parse_qs(urlsplit(links(page)["self"]).query)["_offset"] == ["4"]

    def test_offset_past_the_end_is_empty(self, client: TestClient) -> None:
        body = search(client, "/fhir/Patient?_offset=10")
        assert body["total"] == 3 and ids(body) == [] and "next" not in links(body)

    def test_count_zero_and_summary_count_give_only_the_total(self, client: TestClient) -> None:
        for query in ("_count=0", "_summary=count"):
            body = search(client, f"/fhir/Patient?{query}")
            assert body["total"] == 3 and "entry" not in body

    @pytest.mark.parametrize("query", ["_count=abc", "_count=-1", "_offset=x"])
    def test_bad_paging_values(self, client: TestClient, query: str) -> None:
        body = error(client, f"/fhir/Patient?{query}")
        assert query.split("=")[0] in body["issue"][0]["diagnostics"]


@pytest.fixture
def small_pages_client(settings: Settings) -> Iterator[TestClient]:
    tuned = settings.model_copy(update={"page_size_default": 2, "page_size_max": 3})
    with TestClient(create_app(tuned)) as client:
        yield client


@pytest.mark.usefixtures("seeded")
def test_count_default_and_maximum_come_from_settings(small_pages_client: TestClient) -> None:
    assert len(ids(search(small_pages_client, "/fhir/Observation"))) == 2
    body = search(small_pages_client, "/fhir/Observation?_count=100")
    assert len(ids(body)) == 3
    assert parse_qs(urlsplit(links(body)["next"]).query)["_count"] == ["3"]


class TestUnknownParameters:
    def test_strict_by_default_names_every_unknown_parameter(
        self, client: TestClient, fhir_valid
    ) -> None:
        body = error(client, "/fhir/Patient?foo=1&gender=male&bar:exact=2&_nope=x")
        fhir_valid(body)
        text = " ".join(i["diagnostics"] for i in body["issue"])
        assert "'foo'" in text and "'bar:exact'" in text and "'_nope'" in text
        assert {i["code"] for i in body["issue"]} == {"not-supported"}

    def test_lenient_ignores_and_reports_them(self, client: TestClient, fhir_valid) -> None:
        body = search(
            client,
            "/fhir/Patient?foo=1&gender=male",
            fhir_valid,
            headers={"Prefer": "handling=lenient"},
        )
        assert sorted(ids(body)) == ["p2", "p3"]
        outcome = [e["resource"] for e in body["entry"] if e["search"]["mode"] == "outcome"]
        assert len(outcome) == 1 and "'foo'" in outcome[0]["issue"][0]["diagnostics"]
        assert outcome[0]["issue"][0]["severity"] == "warning"
        assert "foo" not in links(body)["self"]  # self shows what was applied
        assert "gender=male" in links(body)["self"]

    def test_strict_handling_header_is_strict(self, client: TestClient) -> None:
        error(client, "/fhir/Patient?foo=1", headers={"Prefer": "handling=strict"})

    def test_unsupported_modifier_and_chain(self, client: TestClient) -> None:
        body = error(client, "/fhir/Patient?gender:below=male")
        assert "below" in body["issue"][0]["diagnostics"]
        body = error(client, "/fhir/Observation?subject.nope=王")
        assert "subject.nope" in body["issue"][0]["diagnostics"]
        body = error(client, "/fhir/Observation?subject.organization.name=x")
        assert "one level" in body["issue"][0]["diagnostics"]

    def test_empty_value_and_bad_missing_value(self, client: TestClient) -> None:
        error(client, "/fhir/Patient?gender=")
        error(client, "/fhir/Patient?gender:missing=maybe")

    def test_unknown_type(self, client: TestClient) -> None:
        body = error(client, "/fhir/Medication?code=x", status=404)
        assert body["issue"][0]["code"] == "not-supported"


def test_post_search_takes_form_parameters(client: TestClient, fhir_valid) -> None:
    response = client.post(
        "/fhir/Observation/_search", data={"patient": "p1", "code": f"{LOINC}|718-7"}
    )
    assert response.status_code == 200
    body = response.json()
    fhir_valid(body)
    assert ids(body) == ["o1"]


@pytest.mark.usefixtures("seeded")
def test_configured_base_url_is_used_for_links(settings: Settings) -> None:
    public = Settings(
        **{**settings.model_dump(), "base_url": "https://fhir.qs-yigongti.example/r4/"}
    )
    with TestClient(create_app(public)) as client:
        body = search(client, "/fhir/Patient?_count=1")
    assert links(body)["next"].startswith("https://fhir.qs-yigongti.example/r4/Patient?")
    assert body["entry"][0]["fullUrl"].startswith("https://fhir.qs-yigongti.example/r4/Patient/")
