"""Small builders shared by the connector tests."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Destination, Facility, load_consortium
from adapter.outbound import DeliveryItem, build_destination
from adapter.pipeline import Pipeline, Translator

ROOT = Path(__file__).resolve().parents[2]

FACILITY = Facility.model_validate(
    {
        "id": "test-hospital",
        "name": "测试医院",
        "level": "county",
        "namespace": "https://example.cn/fhir/sid/test-hospital",
    }
)


@functools.cache
def example_translator() -> Translator:
    """The example consortium's translator with its mappings loaded once (no database)."""
    translator = Translator(
        load_consortium(ROOT / "fixtures" / "consortium.yaml"),
        mappings_dir=ROOT / "mappings",
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    translator.load_all_mappings()
    return translator


def example_pipeline(factory: sessionmaker[Session]) -> Pipeline:
    """A pipeline storing with ``factory``, sharing the loaded mapping sets."""
    return Pipeline.of(example_translator(), factory)


def destination(
    kind: str,
    settings: dict[str, Any],
    *,
    destination_id: str = "hospital",
    session_factory: Any = None,
) -> Any:
    config = Destination.model_validate({"id": destination_id, "kind": kind, "settings": settings})
    return build_destination(FACILITY, config, session_factory=session_factory)


def patient(pid: str, family: str = "Zhang") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family}],
        "meta": {"versionId": "3", "lastUpdated": "2026-11-20T01:02:03.000+00:00"},
    }


def observation(oid: str, value: float = 5.1, *, code: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": value, "unit": "mmol/L"},
        "meta": {
            "versionId": "1",
            "lastUpdated": "2026-11-20T01:02:03.000+00:00",
            "profile": ["http://example.cn/StructureDefinition/lab"],
        },
    }
    if code:
        body["code"] = {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}
    return body


def items(
    *resources: dict[str, Any],
    destination_id: str = "hospital",
    first_id: int = 1,
    message_id: str | None = None,
) -> list[DeliveryItem]:
    return [
        DeliveryItem(
            outbox_id=first_id + n,
            destination=destination_id,
            resource_type=r["resourceType"],
            resource_id=r["id"],
            version_id=int(r.get("meta", {}).get("versionId", 1)),
            resource=r,
            patient_key="Patient/p1",
            message_id=message_id,
        )
        for n, r in enumerate(resources)
    ]
