"""Two well-known Python FHIR clients, fhirpy and fhirclient (SMART on FHIR), against a real
``adapter serve``: read, search, paging, _include, _sort, chained parameters, history,
$everything, $document. fhirclient parses every answer into its strict R4 models, so a
malformed Bundle or resource fails here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle as SmartBundle
from fhirclient.models.observation import Observation as SmartObservation
from fhirclient.models.patient import Patient as SmartPatient
from fhirpy import SyncFHIRClient
from sqlalchemy.pool import NullPool

from adapter.store import make_engine, save_resources, session_factory
from tests.live.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
DISCHARGE = ROOT / "fixtures" / "xml" / "discharge" / "county-emr" / "basic.xml"
T0 = datetime(2026, 5, 1, tzinfo=UTC)
OBSERVATIONS = 7
MRN = "http://hospital.example.cn/mrn"  # the county hospital's patient numbers (病案号)
LATEST_FIRST = [f"o{n}" for n in reversed(range(OBSERVATIONS))]  # o6 is on 7 May


def _observation(n: int) -> dict:
    return {
        "resourceType": "Observation",
        "id": f"o{n}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "血红蛋白"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": f"2026-05-{n + 1:02d}T09:00:00+08:00",
        "valueQuantity": {"value": 120 + n, "unit": "g/L"},
    }


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live server over: Patient p1 in two versions, seven of its Observations, and a
    discharge summary ingested over HTTP (its Composition and document Bundle)."""
    engine = make_engine(module_database_url, poolclass=NullPool)
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": MRN, "value": "BA-0001"}],
        "gender": "female",
    }
    writes = [([patient], T0), ([{**patient, "gender": "unknown"}], T0 + timedelta(days=1))]
    writes.append(([_observation(n) for n in range(OBSERVATIONS)], T0 + timedelta(days=2)))
    for resources, now in writes:
        with session_factory(engine).begin() as session:
            save_resources(session, resources, message_id=None, now=now)
    engine.dispose()
    with LiveServer(module_database_url, tmp_path_factory.mktemp("clients")) as live:
        answer = httpx.post(
            live.url("/ingest"),
            content=DISCHARGE.read_bytes(),
            headers={"X-Source-System": "county-emr", "Content-Type": "application/xml"},
            timeout=60,
        )
        assert answer.status_code == 202, answer.text
        yield live.url("/fhir")


def _composition_id(base: str) -> str:
    bundle = httpx.get(f"{base}/Bundle", params={"type": "document"}).json()
    return bundle["entry"][0]["resource"]["entry"][0]["resource"]["id"]


class TestFhirpy:
    def test_read_search_paging(self, server: str) -> None:
        client = SyncFHIRClient(server)
        patient = client.reference("Patient", "p1").to_resource()
        assert patient["gender"] == "unknown" and patient["meta"]["versionId"] == "2"
        search = client.resources("Observation").search(subject="Patient/p1").limit(3)
        assert len(search.fetch()) == 3
        everything = search.fetch_all()  # follows the next links page by page
        assert sorted(o["id"] for o in everything) == [f"o{n}" for n in range(OBSERVATIONS)]
        # (fhirpy's .count() adds Aidbox's _totalMethod, which a strict server refuses)
        assert search.fetch_raw()["total"] == OBSERVATIONS

    def test_include_sort_chain(self, server: str) -> None:
        client = SyncFHIRClient(server)
        search = client.resources("Observation").search(subject="Patient/p1")
        with_patient = search.include("Observation", "subject").limit(50).fetch_raw()
        modes = {(e["search"]["mode"], e["resource"]["resourceType"]) for e in with_patient.entry}
        assert modes == {("match", "Observation"), ("include", "Patient")}
        included = [e["resource"] for e in with_patient.entry if e["search"]["mode"] == "include"]
        assert [p["id"] for p in included] == ["p1"]
        assert with_patient["total"] == OBSERVATIONS  # included resources are not counted
        latest = search.sort("-date").limit(3).fetch()
        assert [o["id"] for o in latest] == LATEST_FIRST[:3]
        oldest = search.sort("date", "_id").fetch_all()
        assert [o["id"] for o in oldest] == LATEST_FIRST[::-1]
        # subject:Patient.identifier=... (SQ's subject__Patient__identifier) and patient.identifier
        chained = client.resources("Observation").search(
            subject__Patient__identifier=f"{MRN}|BA-0001"
        )
        assert sorted(o["id"] for o in chained.fetch_all()) == sorted(LATEST_FIRST)
        by_patient = client.resources("Observation").search(patient__identifier="BA-0001")
        assert len(by_patient.fetch_all()) == OBSERVATIONS
        nobody = client.resources("Observation").search(patient__identifier=f"{MRN}|BA-9999")
        assert nobody.fetch_all() == []

    def test_history_everything_document(self, server: str) -> None:
        client = SyncFHIRClient(server)
        history = client.execute("Patient/p1/_history", method="get")
        assert [e["resource"]["gender"] for e in history["entry"]] == ["unknown", "female"]
        since = client.execute(
            "Patient/p1/_history", method="get", params={"_since": "2026-05-01T12:00:00Z"}
        )
        assert since["total"] == 1
        typed = client.execute("Observation/_history", method="get", params={"_count": 2})
        assert typed["total"] == OBSERVATIONS and len(typed["entry"]) == 2
        everything = client.execute("Patient/p1/$everything", method="get")
        types = {e["resource"]["resourceType"] for e in everything["entry"]}
        assert types == {"Patient", "Observation"} and everything["total"] == 1 + OBSERVATIONS
        document = client.execute(f"Composition/{_composition_id(server)}/$document", "get")
        assert document["type"] == "document"
        assert document["entry"][0]["resource"]["resourceType"] == "Composition"


class TestFhirclient:
    @pytest.fixture
    def smart(self, server: str) -> smart_client.FHIRClient:
        # reads the CapabilityStatement into fhirclient's models at once
        return smart_client.FHIRClient(settings={"app_id": "adapter-tests", "api_base": server})

    def test_read_search_paging(self, smart: smart_client.FHIRClient) -> None:
        assert smart.server.capabilityStatement.fhirVersion == "4.0.1"
        patient = SmartPatient.read("p1", smart.server)
        assert patient.gender == "unknown"
        search = SmartObservation.where(struct={"subject": "Patient/p1", "_count": "3"})
        first = search.perform(smart.server)
        assert len(first.entry) == 3 and first.total == OBSERVATIONS
        found = list(search.perform_resources_iter(smart.server))  # follows the next links
        assert sorted(o.id for o in found) == [f"o{n}" for n in range(OBSERVATIONS)]
        assert all(o.valueQuantity.unit == "g/L" for o in found)

    def test_include_sort_chain(self, smart: smart_client.FHIRClient) -> None:
        search = SmartObservation.where(struct={"subject": "Patient/p1", "_count": "50"})
        bundle = search.include("subject").perform(smart.server)  # _include=Observation:subject
        included = [e.resource for e in bundle.entry if e.search.mode == "include"]
        assert [(r.resource_type, r.id) for r in included] == [("Patient", "p1")]
        assert included[0].identifier[0].value == "BA-0001"
        assert bundle.total == OBSERVATIONS
        sorted_search = SmartObservation.where(
            struct={"subject": "Patient/p1", "_sort": "-date", "_count": "3"}
        )
        pages = list(sorted_search.perform_iter(smart.server))  # the first page, then next
        latest = [e.resource for e in pages[0].entry]
        assert [o.id for o in latest] == LATEST_FIRST[:3]
        assert [e.resource.id for page in pages for e in page.entry] == LATEST_FIRST
        assert latest[0].effectiveDateTime.isostring.startswith("2026-05-07")
        chained = SmartObservation.where(
            struct={"subject:Patient.identifier": f"{MRN}|BA-0001", "_sort": "date"}
        )
        found = list(chained.perform_resources_iter(smart.server))
        assert [o.id for o in found] == LATEST_FIRST[::-1]
        other = SmartObservation.where(struct={"subject:Patient.identifier": f"{MRN}|BA-9999"})
        assert list(other.perform_resources_iter(smart.server)) == []

    def test_history_everything_document(self, smart: smart_client.FHIRClient) -> None:
        history = SmartBundle(smart.server.request_json("Patient/p1/_history"))
        assert history.type == "history" and history.total == 2
        assert [e.response.etag for e in history.entry] == ['W/"2"', 'W/"1"']
        system = SmartBundle(smart.server.request_json("_history?_count=5"))
        assert len(system.entry) == 5 and any(link.relation == "next" for link in system.link)
        everything = SmartBundle(smart.server.request_json("Patient/p1/$everything?_count=4"))
        assert everything.total == 1 + OBSERVATIONS and len(everything.entry) == 4
        path = f"Composition/{_composition_id(smart.server.base_uri.rstrip('/'))}/$document"
        document = SmartBundle(smart.server.request_json(path))
        assert document.type == "document"
        assert document.entry[0].resource.resource_type == "Composition"
