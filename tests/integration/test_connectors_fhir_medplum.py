"""FHIR REST destination against an independent FHIR server (Medplum's router, in memory)."""

from __future__ import annotations

import pytest

from adapter.errors import FatalDeliveryError
from tests.integration.connector_helpers import destination, items, observation, patient
from tests.peers.fixtures import Medplum


@pytest.mark.parametrize("mode", ["transaction", "batch", "none"])
def test_put_read_back_and_resend_keeps_one_resource_per_id(medplum: Medplum, mode: str) -> None:
    dest = destination("fhir", {"base_url": medplum.base_url, "bundle": mode})
    try:
        batch = items(patient("p1"), observation("o1", 5.1), observation("o2", 7.2))
        results = dest.send(batch)
        assert [r.outbox_id for r in results] == [1, 2, 3]
        assert all(r.ok for r in results), results
        assert all(r.status in (200, 201) for r in results)

        stored = medplum.get("Observation/o1")
        assert stored["valueQuantity"]["value"] == 5.1
        assert stored["subject"] == {"reference": "Patient/p1"}
        # our meta.versionId is not sent; the server's own version is a UUID
        assert stored["meta"]["versionId"] != "1"
        assert stored["meta"]["profile"] == ["http://example.cn/StructureDefinition/lab"]

        # a resend (retry or replay) with a changed value updates, never duplicates
        again = dest.send(
            items(patient("p1"), observation("o1", 6.0), observation("o2", 7.2), first_id=10)
        )
        assert all(r.ok for r in again), again
        assert medplum.count("Patient") == 1
        assert medplum.count("Observation") == 2
        assert medplum.get("Observation/o1")["valueQuantity"]["value"] == 6.0
    finally:
        dest.close()

    log = [r for r in medplum.requests() if r["method"] in ("PUT", "POST")]
    if mode == "none":
        assert [r["method"] for r in log] == ["PUT"] * 6
        assert log[0]["url"] == "/fhir/Patient/p1"
    else:
        assert [r["bundleType"] for r in log] == [mode, mode]
        assert log[0]["entries"] == ["PUT Patient/p1", "PUT Observation/o1", "PUT Observation/o2"]
    # one kept-alive connection served every request
    assert len({r["remotePort"] for r in log}) == 1


def test_batch_size_splits_into_several_bundles(medplum: Medplum) -> None:
    dest = destination("fhir", {"base_url": medplum.base_url, "batch_size": 2})
    try:
        results = dest.send(items(*(observation(f"o{n}") for n in range(5))))
    finally:
        dest.close()
    assert all(r.ok for r in results)
    posts = [r for r in medplum.requests() if r["method"] == "POST"]
    assert [len(r["entries"]) for r in posts] == [2, 2, 1]
    assert medplum.count("Observation") == 5


def test_two_rows_of_one_resource_go_as_one_entry(medplum: Medplum) -> None:
    dest = destination("fhir", {"base_url": medplum.base_url})
    try:
        batch = items(observation("o1", 1.0), patient("p1"), observation("o1", 1.0))
        results = dest.send(batch)
    finally:
        dest.close()
    assert [(r.outbox_id, r.ok) for r in results] == [(1, True), (2, True), (3, True)]
    post = next(r for r in medplum.requests() if r["method"] == "POST")
    assert post["entries"] == ["PUT Observation/o1", "PUT Patient/p1"]


def test_transaction_refused_for_one_bad_resource_delivers_the_others(medplum: Medplum) -> None:
    dest = destination("fhir", {"base_url": medplum.base_url, "bundle": "transaction"})
    try:
        results = dest.send(items(patient("p1"), observation("bad", code=False), observation("o2")))
    finally:
        dest.close()
    by_id = {r.outbox_id: r for r in results}
    assert by_id[1].ok and by_id[3].ok
    bad = by_id[2]
    assert not bad.ok and isinstance(bad.error, FatalDeliveryError)
    assert bad.status == 400
    # the server's OperationOutcome is kept, naming the missing element
    assert bad.error.outcome_body["resourceType"] == "OperationOutcome"
    assert bad.error.outcome_body["issue"][0]["expression"] == ["Observation.code"]
    assert medplum.count("Observation") == 1
    assert medplum.count("Patient") == 1
    # first the transaction (refused as a whole: the server kept nothing of it) ...
    methods = [
        (r["method"], r.get("bundleType"))
        for r in medplum.requests()
        if r["method"] in ("PUT", "POST")
    ]
    assert methods[0] == ("POST", "transaction")
    # ... then one PUT each to find the bad one
    assert methods[1:] == [("PUT", None)] * 3


def test_batch_answers_each_entry_on_its_own(medplum: Medplum) -> None:
    dest = destination("fhir", {"base_url": medplum.base_url, "bundle": "batch"})
    try:
        results = dest.send(items(patient("p1"), observation("bad", code=False), observation("o2")))
    finally:
        dest.close()
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, FatalDeliveryError)
    assert results[1].error.outcome_body["issue"][0]["expression"] == ["Observation.code"]
    # one request: the batch
    assert [r["method"] for r in medplum.requests() if r["method"] in ("PUT", "POST")] == ["POST"]
    assert medplum.count("Observation") == 1


def test_medplum_transaction_is_all_or_nothing(medplum: Medplum) -> None:
    """The launcher's snapshot/restore: a refused transaction leaves nothing behind."""
    import httpx

    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient("p9"), "request": {"method": "PUT", "url": "Patient/p9"}},
            {
                "resource": observation("bad", code=False),
                "request": {"method": "PUT", "url": "Observation/bad"},
            },
        ],
    }
    response = httpx.post(medplum.base_url, json=bundle)
    assert response.status_code == 400
    assert medplum.count("Patient") == 0


def test_check_reports_reachable_and_unreachable(medplum: Medplum) -> None:
    dest = destination("fhir", {"base_url": medplum.base_url})
    down = destination(
        "fhir",
        {"base_url": "http://127.0.0.1:9/fhir", "connect_timeout_seconds": 1},
        destination_id="down",
    )
    try:
        ok, bad = dest.check(), down.check()
    finally:
        dest.close()
        down.close()
    assert (ok.name, ok.kind, ok.reachable, ok.error) == ("hospital", "fhir", True, None)
    assert ok.latency_ms is not None and ok.latency_ms >= 0
    assert (bad.name, bad.reachable) == ("down", False)
    assert "ConnectError" in bad.error
