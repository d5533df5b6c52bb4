"""POST /ingest and /messages over HTTP, against a real database (SQLite, or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import InboundMessage, Outbox, Resource
from tests.fhir_checks import validate_r4

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2"
ORU = FIXTURES / "oru"


def _post(
    client: TestClient,
    path: Path | bytes,
    source: str = "std-hl7v2",
    content_type: str = "x-application/hl7-v2+er7",
):
    body = path if isinstance(path, bytes) else path.read_bytes()
    return client.post(
        "/ingest", content=body, headers={"X-Source-System": source, "Content-Type": content_type}
    )


def test_ingest_stores_resources_and_serves_them_over_fhir(client: TestClient) -> None:
    response = _post(client, ORU / "std-hl7v2" / "cbc-basic.hl7")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "processed"
    assert response.headers["Location"] == f"/messages/{body['message_id']}"
    types = sorted(ref.split("/")[0] for ref in body["resources"])
    assert types == [
        "DiagnosticReport",
        "Observation",
        "Observation",
        "Observation",
        "Observation",
        "Organization",
        "Patient",
        "Specimen",
    ]
    for ref in body["resources"]:
        read = client.get(f"/fhir/{ref}")
        assert read.status_code == 200
        assert read.headers["content-type"].startswith("application/fhir+json")
        resource = read.json()
        assert resource["meta"]["versionId"] == "1"
        assert validate_r4(resource) == []
    patient_ref = next(r for r in body["resources"] if r.startswith("Patient/"))
    found = client.get("/fhir/Observation", params={"patient": patient_ref}).json()
    assert found["total"] == 4
    by_id = client.get(
        "/fhir/Patient", params={"identifier": "urn:oid:2.16.156.10011.1.3|430999196803151231"}
    )
    assert by_id.json()["total"] == 1


def test_same_bytes_twice_answer_the_first_message_and_store_nothing_new(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    first = _post(client, ORU / "std-hl7v2" / "two-orders.hl7").json()
    again = _post(client, ORU / "std-hl7v2" / "two-orders.hl7").json()
    assert again["message_id"] == first["message_id"]
    assert again["resources"] == first["resources"]
    assert again["duplicate"] is True
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
        # the adapter's own CodeSystems are stored when the app starts; one Provenance
        # traces what the message made
        stored = (
            select(func.count())
            .select_from(Resource)
            .where(
                Resource.resource_type.not_in(("CodeSystem", "OperationDefinition", "Provenance"))
            )
        )
        assert session.scalar(stored) == len(set(first["resources"]))


def test_gb18030_message_is_decoded_and_read_back(client: TestClient) -> None:
    response = _post(client, ORU / "std-hl7v2" / "gb18030-hba1c.hl7")
    assert response.status_code == 202, response.text
    patient_ref = next(r for r in response.json()["resources"] if r.startswith("Patient/"))
    patient = client.get(f"/fhir/{patient_ref}").json()
    raw = (ORU / "std-hl7v2" / "gb18030-hba1c.hl7").read_bytes()
    name = patient["name"][0]
    assert (name["family"] + "^" + name["given"][0]).encode("gb18030") in raw
    message = client.get(response.headers["Location"]).json()
    assert message["encoding"] == "gb18030"


def test_bad_message_is_quarantined_with_a_located_outcome(client: TestClient) -> None:
    raw = (ORU / "std-hl7v2" / "cbc-basic.hl7").read_bytes()
    # the first result's time of observation is no date (an NM holding text is a warning now)
    raw = raw.replace(b"|F|||20261120091500", b"|F|||2026112O0915", 1)
    response = _post(client, raw)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    errors = [i for i in outcome["issue"] if i["severity"] == "error"]
    assert errors and errors[0]["location"] == ["OBX[1]-14"]
    assert validate_r4(outcome) == []
    message_id = response.headers["X-Message-Id"]
    stored = client.get(f"/messages/{message_id}").json()
    assert stored["status"] == "quarantined"
    assert any(i.get("location") == "OBX[1]-14" for i in stored["issues"])
    assert stored["resources"] == []
    assert client.get(f"/messages/{message_id}/raw").content == raw
    listed = client.get("/messages", params={"status": "quarantined"}).json()
    assert [m["message_id"] for m in listed["items"]] == [message_id]


def test_unknown_source_and_missing_header_are_refused(client: TestClient) -> None:
    raw = (ORU / "std-hl7v2" / "cbc-basic.hl7").read_bytes()
    unknown = _post(client, raw, source="nobody")
    assert unknown.status_code == 400
    assert "nobody" in unknown.json()["issue"][0]["diagnostics"]
    missing = client.post("/ingest", content=raw)
    assert missing.status_code == 400
    assert missing.json()["issue"][0]["location"] == ["X-Source-System"]
    empty = client.post("/ingest", content=raw, headers={"X-Source-System": ""})
    assert empty.status_code == 400
    assert empty.json()["issue"][0]["location"] == ["X-Source-System"]
    # the header's first value, as FastAPI's Header() read it (decision 0129)
    twice = client.post(
        "/ingest", content=raw, headers=[("X-Source-System", "nobody"), ("X-Source-System", "x")]
    )
    assert twice.status_code == 400
    assert "nobody" in twice.json()["issue"][0]["diagnostics"]


def test_oversize_document_is_refused_with_413_and_kept(client: TestClient, settings) -> None:
    raw = (
        b"MSH|^~\\&|A|B|C|D|20261125||ORU^R01|1|P|2.5.1\r"
        + b"NTE|1||"
        + b"x" * (settings.max_message_bytes + 10)
    )
    response = _post(client, raw)
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-long"
    stored = client.get(response.headers["Location"]).json()
    assert stored["status"] == "quarantined"
    assert stored["size"] == len(raw)


def test_outbox_rows_written_with_the_resources(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    """Routes in the example consortium send township lab results to the county hospital."""
    body = _post(client, ORU / "shiqiao-lis" / "cbc-18-st.hl7", source="shiqiao-lis").json()
    assert body["status"] in ("processed", "processed-with-warnings")
    with session_factory() as session:
        rows = session.scalars(select(Outbox)).all()
        resources = session.scalar(
            select(func.count()).select_from(Resource).where(Resource.resource_type != "Provenance")
        )
    # one outbox row per resource per enabled destination of the route (0 when disabled)
    assert all(row.message_id == body["message_id"] for row in rows)
    assert len(rows) % resources == 0


def test_correction_updates_the_same_resources_to_a_new_version(client: TestClient) -> None:
    original = _post(client, ORU / "std-hl7v2" / "coag-correction_original.hl7").json()
    corrected = _post(client, ORU / "std-hl7v2" / "coag-correction_corrected.hl7").json()
    assert set(corrected["resources"]) == set(original["resources"])
    report_ref = next(r for r in corrected["resources"] if r.startswith("DiagnosticReport/"))
    report = client.get(f"/fhir/{report_ref}").json()
    assert report["status"] == "corrected"
    assert report["meta"]["versionId"] == "2"
    first = client.get(f"/fhir/{report_ref}/_history/1").json()
    assert first["status"] == "final"
    statuses = {
        client.get(f"/fhir/{r}").json().get("status")
        for r in corrected["resources"]
        if r.startswith("Observation/")
    }
    assert {"corrected", "entered-in-error"} <= statuses


def test_reprocess_after_a_mapping_fix(client: TestClient, tmp_path: Path, app) -> None:
    """A message quarantined for an unknown patient class goes through once the code table
    knows the code: the fix is a data change, then POST /messages/{id}/reprocess. (An
    unknown result status is no longer a quarantine: it is `unknown` with a warning.)"""
    admit = FIXTURES / "adt" / "county-his" / "a01-admit.hl7"
    raw = admit.read_bytes().replace(b"PV1|1|I|", b"PV1|1|Q|", 1)
    response = _post(client, raw, source="county-his")
    assert response.status_code == 422
    issue = next(i for i in response.json()["issue"] if i["severity"] == "error")
    assert "'Q'" in issue["diagnostics"]
    message_id = response.headers["X-Message-Id"]

    import shutil

    mappings = tmp_path / "mappings"
    shutil.copytree(app.state.pipeline.mappings_dir, mappings)
    table = mappings / "_shared" / "concept-maps" / "patient-class.yaml"
    known = "  I: {code: IMP, display: inpatient encounter}\n"
    table.write_text(
        table.read_text(encoding="utf-8").replace(known, known + known.replace("I:", "Q:")),
        encoding="utf-8",
    )
    app.state.pipeline.mappings_dir = mappings

    again = client.post(f"/messages/{message_id}/reprocess")
    assert again.status_code == 202, again.text
    assert again.json()["status"] in ("processed", "processed-with-warnings")
    assert client.get(f"/messages/{message_id}").json()["attempts"] == 2


def test_health_reports_database_and_mappings(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert "std-hl7v2" in body["checks"]["mappings"]["sources"]


@pytest.mark.db
def test_health_warns_when_postgresql_runs_without_autovacuum(app, client: TestClient) -> None:
    """The warning follows the server's real setting (this project's test server has
    autovacuum off; a production one has it on): stale statistics slow every query."""
    from sqlalchemy import text

    body = client.get("/health").json()
    database = body["checks"]["database"]
    assert database["status"] == "ok"
    if app.state.engine.dialect.name != "postgresql":
        assert "warnings" not in database
        return
    with app.state.engine.connect() as connection:
        autovacuum = connection.execute(text("SHOW autovacuum")).scalar_one()
    warnings = database.get("warnings", [])
    assert (autovacuum == "off") == any("autovacuum is off" in w for w in warnings)


def test_health_is_503_when_the_database_is_gone(app, client: TestClient) -> None:
    from sqlalchemy import create_engine

    app.state.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "down"


def test_reprocess_with_a_broken_mapping_changes_nothing(
    client: TestClient, tmp_path: Path, app
) -> None:
    """A mapping file being edited and broken: reprocess answers 409 naming file and line;
    the message stays as it was and new messages still use the mappings that loaded."""
    import shutil

    admit = FIXTURES / "adt" / "county-his" / "a01-admit.hl7"
    raw = admit.read_bytes().replace(b"PV1|1|I|", b"PV1|1|Q|", 1)  # quarantined: class Q
    message_id = _post(client, raw, source="county-his").headers["X-Message-Id"]
    mappings = tmp_path / "mappings"
    shutil.copytree(app.state.pipeline.mappings_dir, mappings)
    broken = mappings / "_shared" / "concept-maps" / "patient-class.yaml"
    broken.write_text("version: 1\nkind: concept-map\nmap: [unclosed\n", encoding="utf-8")
    app.state.pipeline.mappings_dir = mappings

    response = client.post(f"/messages/{message_id}/reprocess")
    assert response.status_code == 409
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "patient-class.yaml:" in diagnostics and "expected" in diagnostics
    stored = client.get(f"/messages/{message_id}").json()
    assert stored["status"] == "quarantined" and stored["attempts"] == 1
    fine = _post(client, ORU / "std-hl7v2" / "two-orders.hl7")
    assert fine.status_code == 202


def test_a_discharge_summary_bundle_is_served_over_fhir(client: TestClient) -> None:
    cda = Path(__file__).resolve().parents[2] / "fixtures" / "cda" / "discharge" / "std-cda"
    response = client.post(
        "/ingest",
        content=(cda / "basic.xml").read_bytes(),
        headers={"X-Source-System": "std-cda", "Content-Type": "application/xml"},
    )
    assert response.status_code == 202, response.text
    bundle_ref = next(r for r in response.json()["resources"] if r.startswith("Bundle/"))
    found = client.get("/fhir/Bundle", params={"type": "document"}).json()
    assert [e["fullUrl"].rsplit("/", 1)[-1] for e in found["entry"]] == [bundle_ref.split("/")[1]]
    bundle = client.get(f"/fhir/{bundle_ref}").json()
    assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    assert validate_r4(bundle) == []


def test_searches_read_dates_in_the_consortium_time_zone(tmp_path: Path, database_url: str) -> None:
    """The store indexes a date without a zone in the consortium's zone; searches must read
    the search date in the same zone, whatever ADAPTER_DEFAULT_TIMEZONE says."""
    from adapter.api.app import create_app
    from adapter.settings import Settings

    config = tmp_path / "consortium.yaml"
    config.write_text(
        (ORU.parents[1] / "consortium.yaml")
        .read_text(encoding="utf-8")
        .replace("timezone: Asia/Shanghai", "timezone: America/New_York"),
        encoding="utf-8",
    )
    settings = Settings(database_url=database_url, config=config, default_timezone="Asia/Shanghai")
    with TestClient(create_app(settings)) as other:
        assert _post(other, ORU / "std-hl7v2" / "cbc-basic.hl7").status_code == 202
        found = other.get("/fhir/Patient", params={"birthdate": "1968-03-15"}).json()
        assert found["total"] == 1
        assert other.get("/fhir/Patient", params={"birthdate": "1968-03-16"}).json()["total"] == 0


def test_a_chunked_oversize_body_is_cut_kept_as_a_prefix_and_not_reprocessed(
    client: TestClient, settings, session_factory: sessionmaker[Session]
) -> None:
    head = (ORU / "std-hl7v2" / "cbc-basic.hl7").read_bytes()

    def chunks():  # no Content-Length: the size is only known by counting
        yield head
        for _ in range(settings.max_message_bytes // 65536 + 20):
            yield b"x" * 65536

    response = client.post("/ingest", content=chunks(), headers={"X-Source-System": "std-hl7v2"})
    assert response.status_code == 413
    assert "reading stopped after" in response.json()["issue"][0]["diagnostics"]
    message_id = response.headers["X-Message-Id"]
    with session_factory() as session:
        kept = session.get(InboundMessage, message_id)
        assert kept is not None
        assert kept.raw == (head + b"x" * 65536)[: settings.oversize_keep_bytes]
        assert kept.size > settings.max_message_bytes  # read before reading stopped
    # only a prefix is kept: reprocessing cannot make it whole, the refusal stands
    again = client.post(f"/messages/{message_id}/reprocess")
    assert again.status_code == 413
    assert client.get(f"/messages/{message_id}").json()["status"] == "quarantined"


def test_metrics_count_unread_clinical_content_by_source_and_path(client: TestClient) -> None:
    # a ZLS segment (the instrument's review) no rule reads: a warning, counted per path
    response = _post(client, ORU / "county-lis" / "zls-segment.hl7", source="county-lis")
    assert response.json()["status"] == "processed-with-warnings", response.text
    metrics = client.get("/metrics").text
    assert 'adapter_unread_content_warnings{source="county-lis",path="ZLS"} 1' in metrics
    # an information-only leftover (a field of a read segment) is not counted
    assert 'path="PID-' not in metrics


def test_a_lab_report_published_as_an_hl7v3_document_registration_is_the_oru_report(
    client: TestClient,
) -> None:
    """The 互联互通 document registration (RCMR_IN000002UV02) carrying a 检验报告 CDA, posted
    to /ingest, stores the same DiagnosticReport, Observations, Specimen and Patient as the
    ORU^R01 of the same report: the second message only makes new versions of them."""
    v3 = Path(__file__).resolve().parents[2] / "fixtures" / "xml" / "hl7v3" / "std-cda"
    first = _post(
        client, v3 / "lab-report-register.xml", source="std-cda", content_type="application/xml"
    )
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "processed"
    published = set(first.json()["resources"])
    assert {ref.split("/")[0] for ref in published} == {
        "Condition",  # the document's 诊断记录章节 (肺炎), the report's reason
        "DiagnosticReport",
        "Observation",
        "Organization",
        "Patient",
        "Specimen",
    }
    report_ref = next(r for r in published if r.startswith("DiagnosticReport/"))
    report = client.get(f"/fhir/{report_ref}").json()
    assert validate_r4(report) == []
    assert [c["code"] for c in report["category"][0]["coding"]] == ["LAB"]
    assert len(report["result"]) == 4
    oru = _post(client, ORU / "std-hl7v2" / "cbc-basic.hl7")
    assert oru.status_code == 202, oru.text
    shared = {r for r in oru.json()["resources"] if not r.startswith(("Patient/", "Organization/"))}
    assert shared and shared <= published  # the same report, observations and specimen


def test_inpatient_orders_are_stored_with_their_provenances(client: TestClient) -> None:
    """住院医嘱 C0052: the orders and the Provenances of who reviewed, checked, stopped or
    cancelled them are stored and served; a Provenance names its order."""
    cda = Path(__file__).resolve().parents[2] / "fixtures" / "cda" / "documents" / "std-cda"
    response = _post(
        client, cda / "inpatient-orders.xml", source="std-cda", content_type="application/xml"
    )
    assert response.status_code == 202, response.text
    refs = response.json()["resources"]
    provenances = [client.get(f"/fhir/{r}").json() for r in refs if r.startswith("Provenance/")]
    assert len(provenances) == 5
    for provenance in provenances:
        target = provenance["target"][0]["reference"]
        assert target in refs and client.get(f"/fhir/{target}").status_code == 200


def test_two_messages_in_one_request_are_refused_naming_the_second_msh(
    client: TestClient,
) -> None:
    """POST /ingest takes one message per request (a file of several is split only by
    adapter ingest, the file drop and sync: issue 15); two are one quarantined document."""
    raw = (ORU / "std-hl7v2" / "cbc-basic.hl7").read_bytes()
    both = raw.rstrip(b"\r\n") + b"\r\n\r\n" + raw
    response = _post(client, both)
    assert response.status_code == 422, response.text
    errors = [i for i in response.json()["issue"] if i["severity"] == "error"]
    assert errors and "second MSH" in errors[0]["diagnostics"]
    assert errors[0]["location"][0].startswith("segment ")
    assert client.get(f"/messages/{response.headers['X-Message-Id']}/raw").content == both
