"""FHIR REST pull against Medplum: resources changed since the bookmark, every page, and a
bookmark that is committed with the data it covers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium
from adapter.errors import ConfigError
from adapter.inbound import build_source
from adapter.inbound.fhir_pull import FhirPullSource
from adapter.inbound.poller import poll_once
from adapter.pipeline import IngestResult, Pipeline
from adapter.pipeline.receipt import Receipt
from adapter.store.models import InboundMessage
from tests.peers.fault_server import Answer, FaultServer
from tests.peers.fixtures import Medplum

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ID = "county-his-pull"


def _consortium(connector: dict[str, Any]) -> Consortium:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    data["facilities"][0]["sources"].append(
        {"id": SOURCE_ID, "format": "json", "mapping": "_shared", "connector": connector}
    )
    return Consortium.model_validate(data)


def _setup(
    base_url: str, factory: sessionmaker[Session], **connector: Any
) -> tuple[FhirPullSource, Pipeline]:
    consortium = _consortium(
        {
            "kind": "fhir-pull",
            "base_url": base_url,
            "resource_types": ["Patient", "Observation"],
            "page_size": 2,
            **connector,
        }
    )
    pipeline = Pipeline(
        consortium,
        factory,
        mappings_dir=ROOT / "mappings",
        max_bytes=5_000_000,
        default_timezone="Asia/Shanghai",
    )
    facility, system = consortium.source(SOURCE_ID)  # type: ignore[misc]
    source = build_source(facility, system)
    assert isinstance(source, FhirPullSource)
    return source, pipeline


def _put(medplum: Medplum, resource: dict[str, Any]) -> dict[str, Any]:
    response = httpx.put(
        f"{medplum.base_url}/{resource['resourceType']}/{resource['id']}", json=resource
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def _observation(oid: str, value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"text": "glucose"},
        "valueQuantity": {"value": value},
    }


def _seed(medplum: Medplum) -> None:
    for n in range(5):
        _put(medplum, {"resourceType": "Patient", "id": f"p{n}", "active": True})
    for n in range(4):
        _put(medplum, _observation(f"o{n}", n))


def _stored(factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with factory() as session:
        raws = session.scalars(
            select(InboundMessage.raw).where(InboundMessage.source_system == SOURCE_ID)
        ).all()
    return [json.loads(bytes(r)) for r in raws]


def _keys(resources: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{r['resourceType']}/{r['id']}@{r['meta']['versionId'][:8]}" for r in resources)


def test_pull_follows_pages_and_reads_only_changes_after_the_bookmark(
    medplum: Medplum, session_factory: sessionmaker[Session]
) -> None:
    _seed(medplum)
    source, pipeline = _setup(medplum.base_url, session_factory)
    try:
        assert source.bookmark(session_factory) is None
        first = poll_once(source, pipeline)
        assert first.error is None
        assert (first.read, first.failed) == (9, 0)
        stored = _stored(session_factory)
        assert len(stored) == 9
        newest = max(r["meta"]["lastUpdated"] for r in stored)
        assert source.bookmark(session_factory) == newest

        # nothing changed: only what sits at the bookmark is read again, and recognised
        again = poll_once(source, pipeline)
        assert again.read == again.duplicates >= 1
        assert len(_stored(session_factory)) == 9

        changed = _put(medplum, {"resourceType": "Patient", "id": "p1", "active": False})
        added = _put(medplum, _observation("o9", 9.0))
        third = poll_once(source, pipeline)
        assert third.read - third.duplicates == 2
    finally:
        source.close()
    stored = _stored(session_factory)
    assert len(stored) == 11
    assert changed in stored and added in stored
    assert source.bookmark(session_factory) == max(
        added["meta"]["lastUpdated"], changed["meta"]["lastUpdated"]
    )

    gets = [r["url"] for r in medplum.requests() if r["method"] == "GET"]
    # page by page: 5 patients in pages of 2 (offsets 0, 2, 4), 4 observations (0, 2)
    assert sum("/fhir/Patient?" in u and "_offset=2" in u for u in gets[:5]) == 1
    assert sum("/fhir/Patient?" in u and "_offset=4" in u for u in gets[:5]) == 1
    assert any(f"_lastUpdated=ge{newest.replace(':', '%3A')}" in u for u in gets), gets


def test_the_bookmark_never_passes_what_was_not_stored(
    medplum: Medplum, session_factory: sessionmaker[Session]
) -> None:
    _seed(medplum)
    source, pipeline = _setup(medplum.base_url, session_factory)

    class FailingThird(Pipeline):
        calls = 0

        def ingest(self, raw: bytes, receipt: Receipt) -> IngestResult:
            FailingThird.calls += 1
            if FailingThird.calls == 3:
                raise OSError("database went away")
            return super().ingest(raw, receipt)

    failing = FailingThird(
        pipeline.consortium,
        session_factory,
        mappings_dir=ROOT / "mappings",
        max_bytes=5_000_000,
        default_timezone="Asia/Shanghai",
    )
    try:
        interrupted = poll_once(source, failing)
        assert (interrupted.read, interrupted.failed) == (3, 1)
        stored = _stored(session_factory)
        assert len(stored) == 2
        # the bookmark is what the two stored documents cover, nothing more
        assert source.bookmark(session_factory) == max(r["meta"]["lastUpdated"] for r in stored)
        resumed = poll_once(source, pipeline)
        assert resumed.error is None
    finally:
        source.close()
    stored = _stored(session_factory)
    # every resource once: nothing lost, nothing twice
    assert len(stored) == 9
    assert len({(r["resourceType"], r["id"]) for r in stored}) == 9


def test_pull_stops_on_a_server_error_and_keeps_what_it_stored(
    fault_server: FaultServer, session_factory: sessionmaker[Session]
) -> None:
    fault_server.plan(Answer(503, headers={"Retry-After": "30"}))
    source, pipeline = _setup(fault_server.base_url, session_factory)
    try:
        summary = poll_once(source, pipeline)
    finally:
        source.close()
    assert summary.read == 0
    assert "503" in summary.error


def test_next_links_to_another_server_are_not_followed(
    fault_server: FaultServer, session_factory: sessionmaker[Session]
) -> None:
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": "p1",
                    "meta": {"lastUpdated": "2026-11-20T00:00:00Z"},
                }
            }
        ],
        "link": [{"relation": "next", "url": "http://other.invalid/fhir/Patient?page=2"}],
    }
    fault_server.default = Answer(200, body={"resourceType": "Bundle", "type": "searchset"})
    fault_server.plan(Answer(200, body=page))
    source, pipeline = _setup(fault_server.base_url, session_factory, resource_types=["Patient"])
    try:
        summary = poll_once(source, pipeline)
    finally:
        source.close()
    assert "leaves" in summary.error
    assert len(fault_server.requests) == 1


def test_pull_settings_are_checked(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(ConfigError) as caught:
        _setup("http://127.0.0.1:9/fhir", session_factory, resource_types=["patient"])
    assert caught.value.key == f"sources.{SOURCE_ID}.connector.resource_types"
    with pytest.raises(ConfigError) as caught:
        _setup("http://127.0.0.1:9/fhir", session_factory, since="2026-01-01T00:00:00")
    assert caught.value.key == f"sources.{SOURCE_ID}.connector.since"
    source, _ = _setup(
        "http://127.0.0.1:9/fhir", session_factory, since="2026-01-01T00:00:00+08:00"
    )
    try:
        assert source.bookmark(session_factory) == "2026-01-01T00:00:00+08:00"
        assert not source.check().reachable
    finally:
        source.close()
