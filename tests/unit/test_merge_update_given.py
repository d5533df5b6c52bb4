"""The ``update-given`` storing policy: a later message that gives only part of a resource
(an order's cancel or status change) updates what it gives and keeps the rest."""

from __future__ import annotations

from adapter.pipeline.merge import merge_stored

ORDER = {
    "resourceType": "ServiceRequest",
    "id": "o1",
    "identifier": [{"system": "s", "value": "YZ1"}],
    "status": "active",
    "requester": {"display": "周建国"},
    "note": [{"text": "次日晨空腹"}],
}
POLICY = {
    ("ServiceRequest", "o1"): {"policy": "update-given", "accumulate": ["identifier", "note"]}
}


def _read(stored):
    return lambda rtype, rid: stored


def test_first_message_is_stored_as_made() -> None:
    merged, issues = merge_stored(ORDER, _read(None), POLICY)
    assert merged == ORDER and issues == []


def test_a_cancel_changes_the_status_keeps_the_rest_and_adds_its_note() -> None:
    cancel = {
        "resourceType": "ServiceRequest",
        "id": "o1",
        "identifier": [{"system": "s", "value": "YZ1"}, {"system": "f", "value": "L9"}],
        "status": "revoked",
        "note": [{"text": "医生撤销"}],
    }
    merged, issues = merge_stored(cancel, _read({**ORDER, "meta": {"versionId": "1"}}), POLICY)
    assert issues == []
    assert merged["status"] == "revoked"
    assert merged["requester"] == {"display": "周建国"}
    assert merged["identifier"] == [{"system": "s", "value": "YZ1"}, {"system": "f", "value": "L9"}]
    assert merged["note"] == [{"text": "医生撤销"}, {"text": "次日晨空腹"}]
    assert "meta" not in merged


def test_an_element_the_new_message_gives_replaces_the_stored_one() -> None:
    update = {**ORDER, "requester": {"display": "龙海"}, "note": []}
    merged, _ = merge_stored(update, _read(ORDER), POLICY)
    assert merged["requester"] == {"display": "龙海"}
    assert merged["note"] == [{"text": "次日晨空腹"}]
