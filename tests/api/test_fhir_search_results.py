"""What a search returns: _include / _revinclude, _sort, _summary / _elements, _total."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.settings import Settings
from adapter.store import search_total
from tests.api.search_fixtures import seed


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        seed(app.state.session_factory)
        yield client
    app.state.engine.dispose()


def get(client: TestClient, url: str, status: int = 200) -> dict:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def entries(body: dict, mode: str) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in body.get("entry", [])
        if e["search"]["mode"] == mode
    ]


def links(body: dict) -> dict[str, str]:
    return {
        link["relation"]: link["url"].removeprefix("http://testserver") for link in body["link"]
    }


class TestInclude:
    def test_include_brings_the_patient_once(self, client: TestClient, fhir_valid) -> None:
        body = get(client, "/fhir/Observation?patient=pa&_include=Observation:patient")
        fhir_valid(body)
        assert sorted(entries(body, "match")) == [
            "Observation/oa1",
            "Observation/oa2",
            "Observation/oa3",
        ]
        assert entries(body, "include") == ["Patient/pa"]
        assert body["total"] == 3  # includes are not counted

    def test_same_target_by_two_parameters_is_listed_once(self, client: TestClient) -> None:
        body = get(
            client,
            "/fhir/Observation?_id=oa1&_include=Observation:patient&_include=Observation:subject"
            "&_include=Observation:*",
        )
        assert sorted(entries(body, "include")) == [
            "Encounter/enc1",
            "Patient/pa",
            "Practitioner/dr1",
        ]

    def test_target_type_narrows(self, client: TestClient) -> None:
        body = get(client, "/fhir/Observation?_id=oa1&_include=Observation:performer:Organization")
        assert entries(body, "include") == []

    def test_paging_never_leaks_includes_of_other_pages(self, client: TestClient) -> None:
        url = "/fhir/Observation?code=718-7&_sort=date&_count=1&_include=Observation:subject"
        first = get(client, url)
        assert entries(first, "match") == ["Observation/ob2"]
        assert entries(first, "include") == ["Patient/pb"]
        second = get(client, links(first)["next"])
        assert entries(second, "match") == ["Observation/oa1"]
        assert entries(second, "include") == ["Patient/pa"]
        assert "_include=Observation%3Asubject" in links(second)["self"]

    def test_revinclude(self, client: TestClient) -> None:
        body = get(client, "/fhir/Patient?_id=pa&_revinclude=Observation:patient")
        assert entries(body, "match") == ["Patient/pa"]
        assert sorted(entries(body, "include")) == [
            "Observation/oa1",
            "Observation/oa2",
            "Observation/oa3",
        ]
        body = get(client, "/fhir/Observation?_id=oa1&_revinclude=Provenance:target")
        assert entries(body, "include") == ["Provenance/prov1"]

    def test_iterate_follows_one_more_level(self, client: TestClient) -> None:
        base = "/fhir/DiagnosticReport?_id=rep1&_include=DiagnosticReport:result"
        plain = get(client, base)
        assert sorted(entries(plain, "include")) == ["Observation/oa1", "Observation/oa2"]
        body = get(client, base + "&_include:iterate=Observation:performer")
        assert sorted(entries(body, "include")) == [
            "Observation/oa1",
            "Observation/oa2",
            "Practitioner/dr1",
        ]
        # without :iterate the Observation include only applies to the matches (reports)
        flat = get(client, base + "&_include=Observation:performer")
        assert "Practitioner/dr1" not in entries(flat, "include")

    def test_a_match_is_not_repeated_as_an_include(self, client: TestClient) -> None:
        body = get(
            client,
            "/fhir/Observation?patient=pa&_revinclude=DiagnosticReport:result"
            "&_include:iterate=DiagnosticReport:result",
        )
        assert entries(body, "include") == ["DiagnosticReport/rep1"]

    @pytest.mark.parametrize(
        "value", ["Observation:code", "Observation", "Nope:subject", "Observation:subject:Nope"]
    )
    def test_bad_include_is_400(self, client: TestClient, value: str) -> None:
        body = get(client, f"/fhir/Observation?_include={value}", status=400)
        assert body["issue"][0]["location"] == ["_include"]


class TestSort:
    def test_latest_clinical_date_first(self, client: TestClient) -> None:
        body = get(client, "/fhir/Observation?_sort=-date")
        assert entries(body, "match") == [
            "Observation/oa2",  # 5 May
            "Observation/ob1",  # 4 May
            "Observation/oa1",  # 3 May
            "Observation/ob2",  # 1 May
            "Observation/oa3",  # April (a period)
        ]
        ascending = get(client, "/fhir/Observation?_sort=date")
        assert entries(ascending, "match") == entries(body, "match")[::-1]

    @pytest.mark.parametrize(
        "sort", ["-date", "date", "-_lastUpdated", "_id", "status", "", "patient", "-patient,date"]
    )
    def test_a_whole_type_pages_through_in_one_stable_order(
        self, client: TestClient, sort: str
    ) -> None:
        """No criterion but the sort: pages of 2 give every Observation once, in the order
        of the unpaged answer; equal keys (every status is final) fall back to the default
        order, newest change first, and ask twice, answer the same."""
        query = f"_sort={sort}&" if sort else ""
        whole = entries(get(client, f"/fhir/Observation?{query}_count=50"), "match")
        assert len(whole) == 5
        assert entries(get(client, f"/fhir/Observation?{query}_count=50"), "match") == whole
        paged: list[str] = []
        url: str | None = f"/fhir/Observation?{query}_count=2"
        while url:
            body = get(client, url)
            paged += entries(body, "match")
            url = links(body).get("next")
        assert paged == whole
        if sort in ("status", ""):
            # saved one by one, a minute apart, in the order oa1, oa2, oa3, ob1, ob2
            assert whole == [f"Observation/{i}" for i in ("ob2", "ob1", "oa3", "oa2", "oa1")]

    def test_several_keys_and_missing_values_last(self, client: TestClient) -> None:
        body = get(client, "/fhir/Observation?_sort=patient,-date")
        assert entries(body, "match") == [
            "Observation/oa2",
            "Observation/oa1",
            "Observation/oa3",
            "Observation/ob2",
            "Observation/ob1",  # no patient reference: last
        ]
        body = get(client, "/fhir/Observation?_sort=-patient,date")
        assert entries(body, "match")[:2] == ["Observation/ob2", "Observation/oa3"]
        assert entries(body, "match")[-1] == "Observation/ob1"

    @pytest.mark.parametrize("sort", ["patient,-date", "-patient", "-date"])
    def test_pages_of_one_cross_from_valued_to_missing_values(
        self, client: TestClient, sort: str
    ) -> None:
        """A sort led by an index parameter reads the resources with a value and then those
        without one (search_order.leading_rows): every offset gives the resource at that
        place of the unpaged answer, also the ones past the last valued resource."""
        whole = entries(get(client, f"/fhir/Observation?_sort={sort}&_count=50"), "match")
        for offset in range(len(whole) + 1):
            page = get(client, f"/fhir/Observation?_sort={sort}&_count=1&_offset={offset}")
            assert entries(page, "match") == whole[offset : offset + 1]
            assert page["total"] == len(whole)

    def test_string_token_and_date_parameters(self, client: TestClient) -> None:
        assert entries(get(client, "/fhir/Patient?_sort=birthdate"), "match") == [
            "Patient/pb",
            "Patient/pa",
        ]
        # the order of 张 and 李 is the database's collation; descending is its reverse
        family = entries(get(client, "/fhir/Patient?_sort=family"), "match")
        assert entries(get(client, "/fhir/Patient?_sort=-family"), "match") == family[::-1]
        assert entries(get(client, "/fhir/Patient?_sort=identifier"), "match") == [
            "Patient/pa",
            "Patient/pb",
        ]

    def test_unknown_sort_parameter_is_400(self, client: TestClient) -> None:
        body = get(client, "/fhir/Observation?_sort=nope", status=400)
        assert "nope" in body["issue"][0]["diagnostics"]


class TestSummaryAndElements:
    def test_summary_true_keeps_summary_elements_and_marks_subsetted(
        self, client: TestClient, fhir_valid
    ) -> None:
        body = get(client, "/fhir/Observation?_id=oa1&_summary=true")
        fhir_valid(body)
        resource = body["entry"][0]["resource"]
        assert "note" not in resource and "text" not in resource
        assert resource["code"]["coding"][0]["code"] == "718-7"
        assert resource["valueQuantity"]["value"] == 135
        assert {"code": "SUBSETTED"}.items() <= resource["meta"]["tag"][-1].items()
        assert resource["meta"]["versionId"] == "1"

    def test_summary_text_and_data(self, client: TestClient) -> None:
        text = get(client, "/fhir/Observation?_id=oa1&_summary=text")["entry"][0]["resource"]
        assert set(text) == {"resourceType", "id", "meta", "text", "status", "code"}
        data = get(client, "/fhir/Observation?_id=oa1&_summary=data")["entry"][0]["resource"]
        assert "text" not in data and data["note"] == [{"text": "复查"}]

    def test_elements_keep_what_was_asked_and_the_mandatory(self, client: TestClient) -> None:
        body = get(client, "/fhir/Observation?_id=oa1&_elements=subject,effective")
        resource = body["entry"][0]["resource"]
        assert set(resource) == {
            "resourceType",
            "id",
            "meta",
            "status",
            "code",
            "subject",
            "effectiveDateTime",
        }
        assert resource["meta"]["tag"][-1]["code"] == "SUBSETTED"

    def test_the_stored_resource_is_not_changed(self, client: TestClient) -> None:
        get(client, "/fhir/Observation?_id=oa1&_summary=true")
        stored = client.get("/fhir/Observation/oa1").json()
        assert "tag" not in stored["meta"] and stored["note"]

    def test_summary_count(self, client: TestClient) -> None:
        body = get(client, "/fhir/Observation?_summary=count")
        assert body["total"] == 5 and "entry" not in body

    def test_bad_summary_is_400(self, client: TestClient) -> None:
        get(client, "/fhir/Observation?_summary=some", status=400)
        get(client, "/fhir/Observation?_elements=1x", status=400)


class TestTotal:
    def test_default_total_is_exact_for_small_results(self, client: TestClient) -> None:
        assert get(client, "/fhir/Observation?_count=2")["total"] == 5
        assert get(client, "/fhir/Observation?_count=2&_offset=4")["total"] == 5
        assert get(client, "/fhir/Observation?_count=2&_offset=9")["total"] == 5

    def test_none_leaves_it_out_but_pages_on(self, client: TestClient) -> None:
        body = get(client, "/fhir/Observation?_count=2&_total=none")
        assert "total" not in body and "next" in links(body)
        last = get(client, "/fhir/Observation?_count=2&_offset=4&_total=none")
        assert "next" not in links(last)

    def test_accurate_and_estimate(self, client: TestClient) -> None:
        assert get(client, "/fhir/Observation?_count=1&_total=accurate")["total"] == 5
        estimate = get(client, "/fhir/Observation?_count=1&_total=estimate")["total"]
        assert isinstance(estimate, int) and estimate >= 2  # the planner's figure on PostgreSQL

    @pytest.mark.parametrize(
        "criterion", ["status:not=amended", "code:not=none-such", "category:missing=true"]
    )
    def test_an_excluding_search_is_not_counted_unless_asked(
        self, client: TestClient, criterion: str
    ) -> None:
        """Counting the matches of :not / :missing=true probes every resource of the type:
        by default the total is left out while pages remain, exact once a page shows the
        end, and counted when _total=accurate (or _summary=count) asks for it."""
        first = get(client, f"/fhir/Observation?{criterion}&_count=2")
        assert "total" not in first and "next" in links(first)
        assert len(entries(first, "match")) == 2
        assert get(client, f"/fhir/Observation?{criterion}&_count=50")["total"] == 5
        assert get(client, f"/fhir/Observation?{criterion}&_count=2&_offset=4")["total"] == 5
        assert get(client, f"/fhir/Observation?{criterion}&_count=2&_total=accurate")["total"] == 5
        assert get(client, f"/fhir/Observation?{criterion}&_summary=count")["total"] == 5
        # the same search without exclusion still counts up to the cap
        assert get(client, "/fhir/Observation?status=final&_count=2")["total"] == 5

    def test_past_the_count_cap_the_default_total_is_left_out(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(search_total, "COUNT_CAP", 3)
        body = get(client, "/fhir/Observation?_count=1")
        assert "total" not in body and "next" in links(body)
        assert get(client, "/fhir/Observation?_count=1&_total=accurate")["total"] == 5
        assert get(client, "/fhir/Patient?_count=1")["total"] == 2  # under the cap: counted
