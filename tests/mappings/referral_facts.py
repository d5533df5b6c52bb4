"""Checking the hand-written facts of fixtures/<format>/referral/cases.yaml against FHIR.

Facts are written from the slips themselves, never from adapter output: a golden file can
be regenerated from a wrong mapping, the facts cannot. Each check returns readable problems
so one run shows every wrong fact of a case.
"""

from __future__ import annotations

import base64
from typing import Any

from adapter.mapping.ids import deterministic_id

NATIONAL_ID = "urn:oid:2.16.156.10011.1.3"
ORG_CODE = "urn:oid:2.16.156.10011.1.5"
ICD10 = "urn:oid:2.16.156.10011.2.3.3.11"
REASON_KIND = "http://terminology.hl7.org/CodeSystem/v2-0336"
SNOMED = "http://snomed.info/sct"
DIRECTION = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-direction"
FLAG = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-flag"
INCOMPLETE = "https://yigongti-fhir-adapter.github.io/fhir/StructureDefinition/incomplete-source"
NOTE_HEADINGS = ("主要现病史", "主要既往史", "治疗经过", "下一步治疗方案及康复建议")


def by_type(resources: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == rtype]


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _index(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {_ref(r): r for r in resources}


def _org_codes(org: dict[str, Any] | None) -> set[str]:
    return {
        i.get("value") for i in (org or {}).get("identifier", []) if i.get("system") == ORG_CODE
    }


def check_case(
    resources: list[dict[str, Any]],
    issues: list[dict[str, Any]],
    expect: dict[str, Any],
    raw: bytes,
) -> list[str]:
    problems: list[str] = []
    counts: dict[str, int] = {}
    for r in resources:
        counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
    if "counts" in expect and counts != expect["counts"]:
        problems.append(f"counts {counts} != {expect['counts']}")
    index = _index(resources)
    for fact in expect.get("warnings", []):
        if not any(fact in i["diagnostics"] for i in issues if i["severity"] == "warning"):
            problems.append(f"no warning saying {fact!r}")
    if "warning_count" in expect:
        found = sum(1 for i in issues if i["severity"] == "warning")
        if found != expect["warning_count"]:
            problems.append(f"{found} warnings, expected {expect['warning_count']}")
    if "patient" in expect:
        problems += _patient(by_type(resources, "Patient"), expect["patient"])
    for item, fact in zip(
        by_type(resources, "ServiceRequest"), expect.get("referrals", []), strict=False
    ):
        problems += _referral(item, fact, index)
    if "encounter" in expect:
        problems += _encounter(by_type(resources, "Encounter"), expect["encounter"], index)
    elif by_type(resources, "Encounter"):
        problems.append("an Encounter was made; the document carries no admission")
    if "original" in expect:
        problems += _original(by_type(resources, "DocumentReference"), expect["original"], raw)
    return problems


def _patient(patients: list[dict[str, Any]], fact: dict[str, Any]) -> list[str]:
    if len(patients) != 1:
        return [f"{len(patients)} Patients, expected one"]
    patient = patients[0]
    out: list[str] = []
    ids = [i["value"] for i in patient.get("identifier", []) if i.get("system") == NATIONAL_ID]
    for nid in (
        [fact["national_id"]]
        if isinstance(fact.get("national_id"), str)
        else fact.get("national_id", [])
    ):
        if nid not in ids:
            out.append(f"Patient lacks national ID {nid} (has {ids})")
    names = [n.get("text") for n in patient.get("name", [])]
    if "name" in fact and fact["name"] not in names:
        out.append(f"Patient name {names} lacks {fact['name']!r}")
    for key in ("gender", "birthDate"):
        if key in fact and patient.get(key) != fact[key]:
            out.append(f"Patient.{key} {patient.get(key)!r} != {fact[key]!r}")
    return out


def _referral(
    sr: dict[str, Any], fact: dict[str, Any], index: dict[str, dict[str, Any]]
) -> list[str]:
    out: list[str] = []
    if sr.get("status") != "active" or sr.get("intent") != "order":
        out.append(f"ServiceRequest status/intent {sr.get('status')}/{sr.get('intent')}")
    codings = [c for cat in sr.get("category", []) for c in cat.get("coding", [])]
    if not any(c.get("system") == SNOMED and c.get("code") == "3457005" for c in codings):
        out.append("ServiceRequest.category lacks SNOMED CT 3457005")
    direction = [c.get("code") for c in codings if c.get("system") == DIRECTION]
    if direction != ([fact["direction"]] if fact.get("direction") else []):
        out.append(f"direction {direction} != {fact.get('direction')!r}")
    slips = [i.get("value") for i in sr.get("identifier", [])]
    if fact["slip_no"] not in slips:
        out.append(f"identifier {slips} lacks slip number {fact['slip_no']}")
    if "requisition" in fact and sr.get("requisition", {}).get("value") != fact["requisition"]:
        out.append(f"requisition {sr.get('requisition')} != {fact['requisition']}")
    for key in ("priority", "authoredOn"):
        if key in fact and sr.get(key) != fact[key]:
            out.append(f"ServiceRequest.{key} {sr.get(key)!r} != {fact[key]!r}")
    requester = index.get(sr.get("requester", {}).get("reference", ""))
    sender_org = requester
    if requester and requester["resourceType"] == "PractitionerRole":
        sender_org = index.get(requester.get("organization", {}).get("reference", ""))
        doctor = index.get(requester.get("practitioner", {}).get("reference", ""))
        names = [n.get("text") for n in (doctor or {}).get("name", [])]
        if fact.get("doctor") not in names:
            out.append(f"requesting doctor {names} != {fact.get('doctor')!r}")
    elif fact.get("doctor"):
        out.append(f"requester is {sr.get('requester')}, expected the doctor {fact['doctor']}")
    if "sender" in fact and fact["sender"] not in _org_codes(sender_org):
        out.append(f"sending Organization codes {_org_codes(sender_org)} lack {fact['sender']}")
    performers = [index.get(p.get("reference", "")) for p in sr.get("performer", [])]
    receiver = next((p for p in performers if p and p["resourceType"] == "Organization"), None)
    if (
        fact.get("receiver")
        and fact["receiver"] not in _org_codes(receiver)
        and (receiver or {}).get("name") != fact["receiver"]
    ):
        out.append(
            f"receiving Organization {receiver and receiver.get('name')} "
            f"{_org_codes(receiver)} is not {fact['receiver']}"
        )
    if fact.get("receiver") is None and receiver is not None:
        out.append("a receiving Organization was made, the slip names none")
    # the receiving doctor (接诊医生), the insurance type (医保类型), the green channel: every
    # case says what the slip has; a slip without them must not get them
    doctors = [
        n.get("text")
        for p in performers
        if p and p["resourceType"] == "Practitioner"
        for n in p.get("name", [])
    ]
    if doctors != ([fact["receiver_doctor"]] if fact.get("receiver_doctor") else []):
        out.append(f"receiving doctor {doctors} != {fact.get('receiver_doctor')!r}")
    insurance = [i.get("display") for i in sr.get("insurance", [])]
    if insurance != ([fact["insurance"]] if fact.get("insurance") else []):
        out.append(f"insurance {insurance} != {fact.get('insurance')!r}")
    green = [c for c in codings if c.get("system") == FLAG and c.get("code") == "green-channel"]
    if bool(green) != bool(fact.get("green_channel")):
        out.append(f"green-channel flag {bool(green)} != {bool(fact.get('green_channel'))}")
    displays = " ".join(p.get("display", "") for p in sr.get("performer", []))
    if fact.get("receiver_dept") and fact["receiver_dept"] not in displays:
        out.append(f"performer {displays!r} does not name department {fact['receiver_dept']}")
    reasons = []
    for rc in sr.get("reasonCode", []):
        codes = [c.get("code") for c in rc.get("coding", []) if c.get("system") == ICD10]
        reasons.append([codes[0] if codes else None, rc.get("text")])
    if reasons != [list(r) for r in fact.get("reasons", [])]:
        out.append(f"reasons {reasons} != {fact.get('reasons', [])}")
    if "reason_kinds" in fact:
        kinds = [
            next(
                (c.get("code") for c in rc.get("coding", []) if c.get("system") == REASON_KIND),
                None,
            )
            for rc in sr.get("reasonCode", [])
        ]
        if kinds != fact["reason_kinds"]:
            out.append(f"reason kinds (v2-0336) {kinds} != {fact['reason_kinds']}")
    notes = [n["text"] for n in sr.get("note", [])]
    headings = [h for h in NOTE_HEADINGS if any(n.startswith(h + "：") for n in notes)]
    if headings != list(fact.get("notes", [])):
        out.append(f"note headings {headings} != {fact.get('notes', [])}")
    for text in fact.get("note_text", []):
        if not any(text in n for n in notes):
            out.append(f"no note contains {text!r}")
    listed = [s.get("display") for s in sr.get("supportingInfo", []) if "display" in s]
    if listed != list(fact.get("supporting", [])):
        out.append(f"supportingInfo {listed} != {fact.get('supporting', [])}")
    originals = [
        s
        for s in sr.get("supportingInfo", [])
        if s.get("reference", "").startswith("DocumentReference/")
    ]
    if len(originals) != 1:
        out.append(f"{len(originals)} originals in supportingInfo, expected 1")
    if "based_on" in fact:
        sender, number = fact["based_on"]
        wanted = "ServiceRequest/" + deterministic_id(
            "ServiceRequest", ["referral", sender, number]
        )
        if [b.get("reference") for b in sr.get("basedOn", [])] != [wanted]:
            out.append(f"basedOn {sr.get('basedOn')} does not name {sender} {number}")
    elif sr.get("basedOn"):
        out.append(f"unexpected basedOn {sr['basedOn']}")
    flags = [e.get("valueString") for e in sr.get("extension", []) if e.get("url") == INCOMPLETE]
    if bool(flags) != bool(fact.get("incomplete")):
        out.append(f"incomplete flag {flags} != {fact.get('incomplete')}")
    for part in fact.get("incomplete") or []:
        if not flags or part not in flags[0]:
            out.append(f"incomplete flag {flags} does not name {part}")
    out += _task(sr, receiver, index)
    return out


def _task(
    sr: dict[str, Any], receiver: dict[str, Any] | None, index: dict[str, dict[str, Any]]
) -> list[str]:
    tasks = [
        r
        for r in index.values()
        if r["resourceType"] == "Task" and r.get("focus", {}).get("reference") == _ref(sr)
    ]
    if len(tasks) != 1:
        return [f"{len(tasks)} Tasks focus the ServiceRequest, expected 1"]
    task, out = tasks[0], []
    if task.get("status") != "requested":
        out.append(f"Task.status {task.get('status')}")
    if task.get("for") != sr.get("subject"):
        out.append("Task.for is not the ServiceRequest's patient")
    if task.get("requester") != sr.get("requester"):
        out.append("Task.requester is not the sender")
    if receiver is not None and task.get("owner", {}).get("reference") != _ref(receiver):
        out.append("Task.owner is not the receiving Organization")
    return out


def _original(docs: list[dict[str, Any]], fact: dict[str, Any], raw: bytes) -> list[str]:
    if len(docs) != 1:
        return [f"{len(docs)} DocumentReferences, expected the one original"]
    doc = docs[0]
    attachment = doc["content"][0]["attachment"]
    out = []
    if base64.b64decode(attachment.get("data", "")) != raw:
        out.append("the DocumentReference does not carry the original bytes")
    if attachment.get("size") != len(raw):
        out.append(f"attachment.size {attachment.get('size')} != {len(raw)}")
    if doc.get("type", {}).get("text") != fact.get("type"):
        out.append(
            f"DocumentReference.type.text {doc.get('type', {}).get('text')!r} != "
            f"{fact.get('type')!r}"
        )
    return out


def _encounter(
    encounters: list[dict[str, Any]], fact: dict[str, Any], index: dict[str, dict[str, Any]]
) -> list[str]:
    if len(encounters) != 1:
        return [f"{len(encounters)} Encounters, expected the receiver's admission"]
    enc, out = encounters[0], []
    if fact["number"] not in [i.get("value") for i in enc.get("identifier", [])]:
        out.append(f"Encounter.identifier lacks {fact['number']}")
    if enc.get("period", {}).get("start") != fact["start"]:
        out.append(f"Encounter.period.start {enc.get('period')} != {fact['start']}")
    if enc.get("class", {}).get("code") != fact["class"]:
        out.append(f"Encounter.class {enc.get('class')} != {fact['class']}")
    provider = index.get(enc.get("serviceProvider", {}).get("reference", ""))
    if fact["provider"] not in _org_codes(provider):
        out.append(f"Encounter.serviceProvider is not {fact['provider']}")
    based = [b.get("reference", "") for b in enc.get("basedOn", [])]
    if not any(b.startswith("ServiceRequest/") and b in index for b in based):
        out.append("Encounter.basedOn does not name the referral")
    return out
