"""A corrected discharge summary (CDA relatedDocument typeCode="RPLC") through the real
pipeline and store: the new version replaces the earlier one in place. The ids come from the
document set (setId) and the stay (住院号), so the Composition and the document Bundle get a
new version (history kept), the Composition says `amended` and `relatesTo replaces` the earlier
document, unchanged resources keep their version, and nothing is duplicated. An older version
arriving after its correction does not undo it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.pipeline import Pipeline
from adapter.pipeline.receipt import Receipt
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import read_resource, read_version
from adapter.store.models import Resource
from tests.fhir_checks import validate_r4

CDA = Path(__file__).resolve().parents[2] / "fixtures" / "cda" / "discharge" / "std-cda"


@pytest.fixture
def pipeline(settings: Settings, session_factory: sessionmaker[Session]) -> Pipeline:
    return make_pipeline(settings, load_consortium(settings.config), session_factory)


def _ingest(pipeline: Pipeline, name: str) -> dict[str, str]:
    result = pipeline.ingest((CDA / name).read_bytes(), Receipt("std-cda", "cli"))
    assert result.status == "processed", [i.as_dict() for i in result.issues]
    return {
        ref.split("/")[0]: ref.split("/")[1]
        for ref in result.resources
        if ref.split("/")[0] in ("Composition", "Bundle")
    }


def _count(session: Session, resource_type: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Resource)
            .where(Resource.resource_type == resource_type)
        )
        or 0
    )


def _metformin(bundle: dict[str, Any]) -> dict[str, Any]:
    [request] = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
        and e["resource"]["medicationCodeableConcept"]["coding"][0]["code"] == "YP0203117"
    ]
    return request


def test_the_corrected_summary_replaces_the_first(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    first = _ingest(pipeline, "basic.xml")
    second = _ingest(pipeline, "corrected-rplc.xml")
    assert first == second  # same Composition and Bundle ids

    with session_factory() as session:
        composition = read_resource(session, "Composition", first["Composition"])
        bundle = read_resource(session, "Bundle", first["Bundle"])
        earlier = read_version(session, "Composition", first["Composition"], 1)
        earlier_bundle = read_version(session, "Bundle", first["Bundle"], 1)
        counts = {
            t: _count(session, t)
            for t in ("Composition", "Bundle", "Encounter", "Condition", "MedicationRequest")
        }
        patient = read_resource(
            session, "Patient", composition["subject"]["reference"].split("/")[1]
        )
    assert composition is not None and bundle is not None and earlier is not None
    assert earlier_bundle is not None and patient is not None

    # the current version is the correction, the first one stays in the history
    assert composition["meta"]["versionId"] == "2"
    assert composition["status"] == "amended"
    assert composition["relatesTo"] == [
        {
            "code": "replaces",
            "targetIdentifier": {
                "system": "https://qingshan.example.cn/fhir/sid/county-hospital/document",
                "value": "CYXJ-20261118-0001",
            },
        }
    ]
    assert earlier["status"] == "final" and "relatesTo" not in earlier

    # the document Bundle: same id, new version, this version's identifier and content
    assert bundle["meta"]["versionId"] == "2"
    assert bundle["identifier"]["value"] == "CYXJ-20261119-0002"
    assert earlier_bundle["identifier"]["value"] == "CYXJ-20261118-0001"
    assert bundle["entry"][0]["resource"]["status"] == "amended"
    assert _metformin(bundle)["dispenseRequest"]["quantity"]["value"] == 112
    assert _metformin(earlier_bundle)["dispenseRequest"]["quantity"]["value"] == 56
    assert validate_r4(bundle) == []

    # nothing duplicated; the unchanged Patient keeps its version
    assert counts == {
        "Composition": 1,
        "Bundle": 1,
        "Encounter": 1,
        "Condition": 3,
        "MedicationRequest": 2,
    }
    assert patient["meta"]["versionId"] == "1"


def test_the_same_summary_again_changes_nothing(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    ids = _ingest(pipeline, "basic.xml")
    raw = (CDA / "basic.xml").read_bytes()
    # byte-identical: recognised as already received
    assert pipeline.ingest(raw, Receipt("std-cda", "cli")).duplicate
    # re-sent with different bytes (whitespace) but the same content: no new version
    again = pipeline.ingest(raw.replace(b"<title>", b"  <title>"), Receipt("std-cda", "cli"))
    assert again.status == "processed" and not again.duplicate
    with session_factory() as session:
        composition = read_resource(session, "Composition", ids["Composition"])
        bundle = read_resource(session, "Bundle", ids["Bundle"])
    assert composition is not None and bundle is not None
    assert composition["meta"]["versionId"] == "1"
    assert bundle["meta"]["versionId"] == "1"


def test_the_first_version_arriving_after_its_correction_does_not_undo_it(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    """Out of order (a resend, a queue): the correction is stored first; the older version
    then keeps the stored Composition, Bundle and MedicationRequests (on_conflict
    keep-newer-and-warn), with a warning per kept resource."""
    ids = _ingest(pipeline, "corrected-rplc.xml")
    late = pipeline.ingest((CDA / "basic.xml").read_bytes(), Receipt("std-cda", "cli"))
    assert late.status == "processed-with-warnings"
    kept = sorted(i.expression for i in late.issues if i.code == "conflict")
    assert kept == [
        "Bundle.timestamp",
        "Composition.date",
        "MedicationRequest.authoredOn",
        "MedicationRequest.authoredOn",
    ]
    with session_factory() as session:
        composition = read_resource(session, "Composition", ids["Composition"])
        bundle = read_resource(session, "Bundle", ids["Bundle"])
    assert composition is not None and bundle is not None
    assert composition["status"] == "amended" and composition["meta"]["versionId"] == "1"
    assert bundle["identifier"]["value"] == "CYXJ-20261119-0002"
    assert bundle["meta"]["versionId"] == "1"
    assert _metformin(bundle)["dispenseRequest"]["quantity"]["value"] == 112
