"""The keep-first-and-warn merge policy (a template's on_conflict) for copies of a document."""

from __future__ import annotations

from adapter.pipeline.merge import keep_first, merge_stored

POLICY = {
    "policy": "keep-first-and-warn",
    "compare": ["subject", "reasonCode", "authoredOn"],
    "accumulate": ["supportingInfo"],
}
STORED = {
    "resourceType": "ServiceRequest",
    "id": "sr1",
    "meta": {"versionId": "1"},
    "subject": {"reference": "Patient/a"},
    "authoredOn": "2026-11-20",
    "supportingInfo": [{"reference": "DocumentReference/d1"}],
}


def test_first_copy_is_stored_as_is() -> None:
    new = {"resourceType": "ServiceRequest", "id": "sr1", "status": "active"}
    assert keep_first(new, None, POLICY) == (new, [])


def test_later_copy_adds_and_accumulates_but_never_overwrites() -> None:
    new = {
        "resourceType": "ServiceRequest",
        "id": "sr1",
        "subject": {"reference": "Patient/b"},
        "authoredOn": "2026-11-20",
        "note": [{"text": "存根"}],
        "supportingInfo": [
            {"reference": "DocumentReference/d2"},
            {"reference": "DocumentReference/d1"},
        ],
    }
    merged, issues = keep_first(new, STORED, POLICY)
    assert merged["subject"] == {"reference": "Patient/a"}  # the stored copy wins
    assert merged["note"] == [{"text": "存根"}]  # what the first lacked is added
    assert merged["supportingInfo"] == [
        {"reference": "DocumentReference/d1"},
        {"reference": "DocumentReference/d2"},
    ]
    assert "meta" not in merged
    assert [(i.severity, i.code, i.expression) for i in issues] == [
        ("warning", "conflict", "ServiceRequest.subject")
    ]
    assert "subject" in issues[0].diagnostics


def test_an_element_only_the_later_copy_gives_is_no_conflict() -> None:
    stored = {"resourceType": "ServiceRequest", "id": "sr1"}
    new = {"resourceType": "ServiceRequest", "id": "sr1", "reasonCode": [{"text": "肺炎"}]}
    merged, issues = keep_first(new, stored, POLICY)
    assert merged["reasonCode"] == [{"text": "肺炎"}] and issues == []


def test_resources_without_a_policy_of_their_own_use_their_types() -> None:
    stored = {"resourceType": "Patient", "id": "p", "identifier": [{"value": "1"}]}
    new = {"resourceType": "Patient", "id": "p", "identifier": [{"value": "2"}]}
    policies = {
        ("Patient", "other"): POLICY,
        "Patient": {"policy": "update-given", "accumulate": ["identifier"]},
    }
    merged, issues = merge_stored(new, lambda t, i: stored, policies)
    assert merged["identifier"] == [{"value": "2"}, {"value": "1"}] and issues == []
    # and without any policy the new resource replaces the stored one
    assert merge_stored(new, lambda t, i: stored, {}) == (new, [])


def test_the_policy_is_that_of_the_resource_made() -> None:
    new = {"resourceType": "ServiceRequest", "id": "sr1", "subject": {"reference": "Patient/b"}}
    kept, issues = merge_stored(new, lambda t, i: STORED, {("ServiceRequest", "sr1"): POLICY})
    assert kept["subject"] == {"reference": "Patient/a"} and len(issues) == 1
    # another ServiceRequest (made by a template without on_conflict) is replaced as usual
    other = {"resourceType": "ServiceRequest", "id": "sr2", "subject": {"reference": "Patient/b"}}
    replaced, issues = merge_stored(
        other, lambda t, i: {**STORED, "id": "sr2"}, {("ServiceRequest", "sr1"): POLICY}
    )
    assert replaced == other and issues == []


def test_a_compared_list_that_is_only_added_to_is_joined_without_a_warning() -> None:
    """performer of a referral: the receiver's answer naming the receiving doctor adds to
    it; an answer naming another receiver is a conflict and the stored list is kept."""
    policy = {"compare": ["performer"], "accumulate": ["performer"]}
    org = {"reference": "Organization/county"}
    dept = {"display": "青山县人民医院 心内科"}
    stored = {**STORED, "performer": [org, dept]}
    doctor = {"reference": "Practitioner/zhao"}
    added, issues = keep_first({**STORED, "performer": [org, dept, doctor]}, stored, policy)
    assert added["performer"] == [org, dept, doctor] and issues == []
    other = {"reference": "Organization/city"}
    kept, issues = keep_first({**STORED, "performer": [other, doctor]}, stored, policy)
    assert kept["performer"] == [org, dept]  # nothing of the disagreeing copy joins
    assert [i.expression for i in issues] == ["ServiceRequest.performer"]
    fewer, issues = keep_first({**STORED, "performer": [org]}, stored, policy)
    assert fewer["performer"] == [org, dept] and len(issues) == 1  # a stub without the dept


def _one_person(a: object, b: object) -> bool:  # every Patient is one person here
    return all(isinstance(v, dict) and v["reference"].startswith("Patient/") for v in (a, b))


def test_a_value_naming_the_same_thing_is_a_note_not_a_conflict() -> None:
    """The receiver's answer names its own record of the slip's patient: one person in the
    patient index (``same``), so the stored subject is kept with a note, not a warning; a
    value ``same`` does not vouch for is still a warning."""
    new = {k: v for k, v in STORED.items() if k != "meta"}
    new.update(subject={"reference": "Patient/b"}, authoredOn="2026-11-21")
    merged, issues = keep_first(new, STORED, POLICY, same=_one_person)
    assert merged["subject"] == {"reference": "Patient/a"}
    assert {i.expression: i.severity for i in issues} == {
        "ServiceRequest.subject": "information",
        "ServiceRequest.authoredOn": "warning",
    }
    _, issues = keep_first(new, STORED, POLICY, same=lambda a, b: False)
    assert {i.severity for i in issues} == {"warning"}
