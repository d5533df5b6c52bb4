"""Facts that accumulate (the ``accumulate`` on_conflict policy of the Patient templates,
adapter/pipeline/merge.py): a record sent again keeps the numbers each message gave it; a
person known to the county hospital and to a township centre has two records, and the
consortium person has the numbers both gave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.identity import person_of
from adapter.identity.index.person import person_resource
from adapter.pipeline import Pipeline
from adapter.pipeline.merge import merge_stored, reads_stored
from adapter.pipeline.receipt import Receipt
from adapter.store import read_resource

ROOT = Path(__file__).resolve().parents[2]

NID = {"system": "urn:oid:2.16.156.10011.1.3", "value": "430999195001150822"}
COUNTY_MR = {"system": "https://county/sid/medical-record", "value": "MR001"}
TOWN_HC = {"system": "urn:oid:2.16.156.10011.1.19", "value": "JK001"}


# the policy every Patient template declares (mappings/*/resources/*patient*.yaml)
PATIENT_POLICY = {
    "Patient": {
        "policy": "update-given",
        "accumulate": ["identifier", "telecom", "address"],
        "in_message": "first-wins",
    }
}


def merge_with_stored(new: dict[str, Any], read: Any) -> dict[str, Any]:
    merged, issues = merge_stored(new, read, PATIENT_POLICY)
    assert issues == []
    return merged


def store(*resources: dict[str, Any]) -> Any:
    by_key = {(r["resourceType"], r["id"]): r for r in resources}
    return lambda resource_type, resource_id: by_key.get((resource_type, resource_id))


def test_patient_identifiers_accumulate_new_first_without_duplicates() -> None:
    stored = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [NID, COUNTY_MR],
        "telecom": [{"system": "phone", "value": "0731-1"}],
        "gender": "female",
    }
    new = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [TOWN_HC, dict(NID)],
        "gender": "unknown",
    }
    merged = merge_with_stored(new, store(stored))
    assert merged["identifier"] == [TOWN_HC, NID, COUNTY_MR]
    assert merged["telecom"] == [{"system": "phone", "value": "0731-1"}]
    assert merged["gender"] == "unknown"  # not an accumulating element: the newest wins
    assert new["identifier"] == [TOWN_HC, NID]  # the input is not changed


def test_key_order_does_not_make_a_duplicate() -> None:
    stored = {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "1", "system": "s"}]}
    new = {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "s", "value": "1"}]}
    assert merge_with_stored(new, store(stored))["identifier"] == [{"system": "s", "value": "1"}]


def test_other_types_and_unknown_patients_are_replaced() -> None:
    stored = {"resourceType": "Observation", "id": "o1", "identifier": [{"value": "old"}]}
    new = {"resourceType": "Observation", "id": "o1", "identifier": [{"value": "new"}]}
    assert merge_with_stored(new, store(stored)) is new
    patient = {"resourceType": "Patient", "id": "p2", "identifier": [NID]}
    assert merge_with_stored(patient, store(stored)) is patient


def test_only_policies_that_merge_read_the_stored_resource() -> None:
    patient = {"resourceType": "Patient", "id": "p1"}
    organization = {"resourceType": "Organization", "id": "o1"}
    replace = {"Organization": {"policy": "replace", "in_message": "first-wins"}}
    assert reads_stored(patient, PATIENT_POLICY)
    assert not reads_stored(organization, replace)
    assert not reads_stored(patient, {})  # no policy: replaced, nothing read


def test_every_patient_template_declares_the_accumulate_policy() -> None:
    for path in sorted((ROOT / "mappings").rglob("resources/*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        kind = data.get("resourceType")
        if kind == "Patient":
            assert data.get("on_conflict") == PATIENT_POLICY["Patient"], path
        elif kind in ("Organization", "Practitioner"):
            assert data.get("on_conflict", {}).get("in_message") == "first-wins", path


# -- through the pipeline: two facilities, one database ---------------------------------------

COUNTY = "\r".join(
    [
        "MSH|^~\\&|QSLIS|QSXRMYY|QSYGT|QSYGTPT|20261120093600||ORU^R01^ORU_R01|M1|P|2.5.1"
        "|||AL|NE|CHN|UNICODE UTF-8",
        "PID|1||430999195001150822^^^&2.16.156.10011.1.3&ISO^NNCHN~0000356721^^^QSXRMYY^PI"
        "||韩^秀兰||19500115|F",
        "OBR|1|SQ1|L1|CBC^血常规^99QSLIS|||20261120083000||||||||||||||20261120093512|||F",
        "OBX|1|NM|WBC^白细胞计数^99QSLIS||6.2|×10\\S\\9/L|3.5-9.5|N|||F|||20261120091500",
    ]
).encode("utf-8")

TOWNSHIP = "\r".join(
    [
        "MSH|^~\\&|YYLIS|SQZWSY|QSYGT|QSYGTPT|20261124104522||ORU^R01^ORU_R01|M2|P|2.5"
        "|||||CHN|UTF-8",
        "PID|1||430999195001150822^^^公安部^ID~JK4309990000816^^^青山县卫生健康局^HC"
        "||韩^秀兰||19500115000000|F",
        "OBR|1|SQ2|YY1|SHCG^生化常规|||20261124081000||||||||||||||20261124104300|||F",
        "OBX|1|ST|GLU^葡萄糖||6.1|mmol/L|3.9-6.1|正常||||||20261124101000",
    ]
).encode("utf-8")


def test_a_patient_known_to_two_facilities_keeps_both_numbers(
    session_factory: sessionmaker[Session],
) -> None:
    """Each facility's record stays its own (decision 0030); the patient index links them
    (same valid ID, birth date, sex and name), and the consortium person has both
    facilities' numbers, the national ID once."""
    consortium = load_consortium(ROOT / "fixtures" / "consortium.yaml")
    pipeline = Pipeline(
        consortium,
        session_factory,
        mappings_dir=ROOT / "mappings",
        max_bytes=1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    county = pipeline.ingest(COUNTY, Receipt("std-hl7v2", "cli"))
    township = pipeline.ingest(TOWNSHIP, Receipt("shiqiao-lis", "cli"))
    assert county.accepted and township.accepted, (county.issues, township.issues)
    (ours,) = {r.split("/")[1] for r in county.resources if r.startswith("Patient/")}
    (theirs,) = {r.split("/")[1] for r in township.resources if r.startswith("Patient/")}
    assert ours != theirs  # two facilities' records
    with session_factory() as session:
        record = read_resource(session, "Patient", ours)
        person = person_of(session, ours)
        assert person == person_of(session, theirs)
        body = person_resource(session, person)
    assert record is not None and "JK4309990000816" not in str(record["identifier"])
    values = [i["value"] for i in body["identifier"]]
    assert "0000356721" in values  # the county hospital's patient number
    assert "JK4309990000816" in values  # the township's health card
    assert values.count("430999195001150822") == 1  # the national ID once
