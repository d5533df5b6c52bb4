"""The patient index through the real pipeline and database: records of one person from
several facilities linked to one consortium person, conflicts queued for review, the
national ID's birth date and sex checked on every Patient."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.identity import person_of, records_of
from adapter.identity.index.person import PERSON_SYSTEM, person_resource
from adapter.pipeline import Receipt
from adapter.store import read_resource
from adapter.store.identity_tables import IdentityHistory, IdentityRecord, IdentityReview
from tests.identity.hl7 import national_id, oru
from tests.integration.connector_helpers import example_pipeline

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
NID = national_id("430999", "19500115", "082")  # a woman born 1950-01-15


def _patient(result) -> str:
    return next(r for r in result.resources if r.startswith("Patient/")).split("/", 1)[1]


def test_one_person_from_three_facilities(session_factory: sessionmaker[Session]) -> None:
    pipeline = example_pipeline(session_factory)
    ids = []
    for source, nid, local in (
        ("std-hl7v2", NID, "MZ1"),
        ("shiqiao-lis", None, "SQ1"),  # no national ID: the health card links it
        ("liuhe-lis", None, "LH1"),
    ):
        msg = oru(name="韩秀兰", birth="19500115", sex="F", nid=nid, local=local, card="JK77")
        result = pipeline.ingest(msg, Receipt(source, "cli", received_at=NOW))
        assert result.status == "processed", result.issues
        ids.append(_patient(result))
    assert len(set(ids)) == 3  # each facility's record stays its own
    with session_factory() as session:
        persons = {person_of(session, pid) for pid in ids}
        assert len(persons) == 1
        person = persons.pop()
        assert person not in ids
        assert sorted(records_of(session, person)) == sorted(ids)
        body = person_resource(session, person)
        assert read_resource(session, "Patient", person) is None  # publish_persons: false
        links = session.scalars(select(IdentityRecord).order_by(IdentityRecord.created_at)).all()
        history = session.scalars(select(IdentityHistory)).all()
    assert body is not None and body["active"] is True
    assert {link["other"]["reference"] for link in body["link"]} == {f"Patient/{i}" for i in ids}
    assert all(link["type"] == "seealso" for link in body["link"])
    assert {"system": PERSON_SYSTEM, "value": person, "use": "official"} in body["identifier"]
    assert any(i.get("value") == NID for i in body["identifier"])
    # the first record founded the person; the others joined under the card key
    assert [r.rule for r in links] == ["no-match", "card-key", "card-key"]
    assert all(r.rule_version == 2 for r in links)
    assert links[1].evidence["card"] == "agree" and links[1].evidence["nationalId"] == "missing"
    assert links[2].score == 1.0
    assert len(history) == 3 and {h.person_id for h in history} == {person}


def test_same_id_other_person_is_a_located_warning(session_factory: sessionmaker[Session]) -> None:
    """A child sent under the mother's ID at another facility: its own record (the
    facility's number keys it, decision 0030), never linked to the mother's, an ID conflict
    for review; the message says the ID disagrees with the record."""
    pipeline = example_pipeline(session_factory)
    mother = pipeline.ingest(
        oru(name="韩秀兰", birth="19500115", sex="F", nid=NID, local="M1"),
        Receipt("std-hl7v2", "cli", received_at=NOW),
    )
    child = pipeline.ingest(
        oru(name="李小宝", birth="20250301", sex="M", nid=NID, local="C1"),
        Receipt("shiqiao-lis", "cli", received_at=NOW),
    )
    assert child.status == "processed-with-warnings"
    warnings = [i for i in child.issues if i.code == "business-rule"]
    texts = " / ".join(i.diagnostics for i in warnings)
    assert "birth date in the national ID differs" in texts
    assert "sex in the national ID" in texts
    assert all(i.location for i in warnings)
    assert NID not in texts and "李小宝" not in texts and "2025" not in texts
    assert _patient(child) != _patient(mother)
    with session_factory() as session:
        assert person_of(session, _patient(child)) != person_of(session, _patient(mother))
        [item] = session.scalars(select(IdentityReview)).all()
    assert (item.reason, item.state) == ("id-conflict", "open")


def test_one_facility_sending_a_child_under_the_mothers_id_is_told(
    session_factory: sessionmaker[Session],
) -> None:
    """Without a local number the facility's record is keyed by the ID alone: the child
    becomes the mother's record at that facility, and the message says so."""
    pipeline = example_pipeline(session_factory)
    source = Receipt("std-hl7v2", "cli", received_at=NOW)
    pipeline.ingest(oru(name="韩秀兰", birth="19500115", sex="F", nid=NID), source)
    child = pipeline.ingest(oru(name="李小宝", birth="20250301", sex="M", nid=NID), source)
    texts = " / ".join(i.diagnostics for i in child.issues if i.code == "business-rule")
    assert "another person registered under the same ID" in texts
    assert NID not in texts and "李小宝" not in texts


def test_reprocessing_keeps_the_person(session_factory: sessionmaker[Session]) -> None:
    pipeline = example_pipeline(session_factory)
    msg = oru(name="韩秀兰", birth="19500115", sex="F", nid=NID, local="M1")
    first = pipeline.ingest(msg, Receipt("std-hl7v2", "cli", received_at=NOW))
    again = pipeline.reprocess(first.message_id)
    with session_factory() as session:
        assert person_of(session, _patient(first)) == person_of(session, _patient(again))
        assert len(session.scalars(select(IdentityHistory)).all()) == 1


def test_published_persons_are_stored_and_delivered(session_factory: sessionmaker[Session]) -> None:
    """publish_persons: the person is a stored Patient, found by any identifier of its
    records, and each change is one outbox row per subscribed destination."""
    from adapter.consortium import load_consortium
    from adapter.fhir.search_query import parse_search
    from adapter.pipeline import Pipeline
    from adapter.store import search
    from adapter.store.models import Outbox  # the test reads the table it checks

    consortium = load_consortium(ROOT / "fixtures" / "consortium.yaml")
    index = consortium.patient_index.model_copy(
        update={"publish_persons": True, "deliver_to": ["county-hospital-fhir"]}
    )
    consortium = consortium.model_copy(update={"patient_index": index})
    pipeline = Pipeline(
        consortium,
        session_factory,
        mappings_dir=ROOT / "mappings",
        max_bytes=5 << 20,
        default_timezone="Asia/Shanghai",
    )
    first = pipeline.ingest(
        oru(name="韩秀兰", birth="19500115", sex="F", nid=NID, local="A9", card="JK5"),
        Receipt("std-hl7v2", "cli", received_at=NOW),
    )
    second = pipeline.ingest(
        oru(name="韩秀兰", birth="19500115", sex="F", local="B9", card="JK5"),
        Receipt("shiqiao-lis", "cli", received_at=NOW),
    )
    with session_factory() as session:
        person = person_of(session, _patient(first))
        assert person == person_of(session, _patient(second))
        stored = read_resource(session, "Patient", person)
        request = parse_search("Patient", [("identifier", "urn:oid:2.16.156.10011.1.19|JK5")])
        _, found = search(session, "Patient", request.criteria, count=10, offset=0)
        rows = session.scalars(
            select(Outbox).where(Outbox.resource_id == person).order_by(Outbox.version_id)
        ).all()
    assert stored is not None and stored["meta"]["versionId"] == "2"
    assert len(stored["link"]) == 2
    assert person in {b["id"] for b in found} and _patient(first) in {b["id"] for b in found}
    assert [(r.destination, r.version_id) for r in rows] == [
        ("county-hospital-fhir", 1),
        ("county-hospital-fhir", 2),
    ]
