"""Checking the hand-written facts of fixtures/hl7v2/adt/cases.yaml (ADT) and
fixtures/hl7v2/orders/cases.yaml (ORM / OML) against produced FHIR. Each check returns
readable problems, so one run shows every wrong fact of a case."""

from __future__ import annotations

from typing import Any

from tests.mappings.oru_facts import by_type, check_patient

ETHNIC_GROUP_EXT = "https://yigongti-fhir-adapter.github.io/fhir/StructureDefinition/ethnic-group"
GB3304 = "urn:oid:2.16.156.10011.2.3.3.3"


def _codes(concept: dict[str, Any] | None) -> set[str]:
    return {c.get("code") for c in (concept or {}).get("coding") or []}


def check_patient_more(patient: dict[str, Any], facts: dict[str, Any], where: str) -> list[str]:
    out = check_patient(patient, facts, where)
    if "ethnic_group" in facts:
        found = [
            c
            for e in patient.get("extension") or []
            if e.get("url") == ETHNIC_GROUP_EXT
            for c in (e.get("valueCodeableConcept") or {}).get("coding") or []
            if c.get("system") == GB3304
        ]
        if [c.get("code") for c in found] != [facts["ethnic_group"]]:
            out.append(f"{where}: 民族 {found} != GB 3304 code {facts['ethnic_group']}")
    if "marital" in facts and facts["marital"] not in _codes(patient.get("maritalStatus")):
        out.append(f"{where}: maritalStatus {patient.get('maritalStatus')} != {facts['marital']}")
    if "no_telecom" in facts and patient.get("telecom"):
        out.append(f"{where}: placeholder became a telecom {patient['telecom']}")
    if "no_address" in facts and patient.get("address"):
        out.append(f"{where}: placeholder became an address {patient['address']}")
    for wanted in facts.get("contacts", []):
        match = [
            c
            for c in patient.get("contact") or []
            if c.get("name", {}).get("text") == wanted["name"]
        ]
        if not match:
            out.append(f"{where}: no contact {wanted['name']}")
            continue
        contact = match[0]
        if "relationship" in wanted and not any(
            wanted["relationship"] in (r.get("text"), *_codes(r))
            for r in contact.get("relationship") or []
        ):
            out.append(f"{where}: contact {wanted['name']} is not {wanted['relationship']}")
        if "phone" in wanted and wanted["phone"] not in [
            t.get("value") for t in contact.get("telecom") or []
        ]:
            out.append(f"{where}: contact {wanted['name']} has no phone {wanted['phone']}")
    if "active" in facts and patient.get("active") is not facts["active"]:
        out.append(f"{where}: active {patient.get('active')} != {facts['active']}")
    return out


def _participant(encounter: dict[str, Any], role: str) -> dict[str, Any] | None:
    for p in encounter.get("participant") or []:
        if any(role in _codes(t) for t in p.get("type") or []):
            return p.get("individual") or {}
    return None


def check_encounter(encounter: dict[str, Any], facts: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    if "visit_no" in facts and facts["visit_no"] not in [
        i.get("value") for i in encounter.get("identifier") or []
    ]:
        out.append(f"{where}: no visit number {facts['visit_no']}")
    for key in ("status",):
        if key in facts and encounter.get(key) != facts[key]:
            out.append(f"{where}: {key} {encounter.get(key)!r} != {facts[key]!r}")
    if "class" in facts and (encounter.get("class") or {}).get("code") != facts["class"]:
        out.append(f"{where}: class {encounter.get('class')} != {facts['class']}")
    if (
        "department" in facts
        and encounter.get("serviceType", {}).get("text") != facts["department"]
    ):
        out.append(f"{where}: department {encounter.get('serviceType')} != {facts['department']}")
    locations = encounter.get("location") or []
    if "location" in facts:
        active = [
            loc["location"].get("display", "") for loc in locations if loc.get("status") == "active"
        ]
        if not any(facts["location"] in d for d in active):
            out.append(f"{where}: no active location containing {facts['location']!r}: {active}")
    if "prior_location" in facts:
        done = [
            loc["location"].get("display", "")
            for loc in locations
            if loc.get("status") == "completed"
        ]
        if not any(facts["prior_location"] in d for d in done):
            out.append(f"{where}: no completed location {facts['prior_location']!r}: {done}")
    for role, key in (("ATND", "attending"), ("ADM", "admitting")):
        if key not in facts:
            continue
        who = _participant(encounter, role)
        wanted = facts[key]
        if who is None or who.get("display") != wanted["name"]:
            out.append(f"{where}: {key} {who} != {wanted['name']}")
        elif (who.get("identifier") or {}).get("value") != wanted.get("code"):
            out.append(f"{where}: {key} number {who.get('identifier')} != {wanted.get('code')}")
    hosp = encounter.get("hospitalization") or {}
    if "admit_source" in facts and facts["admit_source"] not in _codes(hosp.get("admitSource")):
        out.append(f"{where}: admitSource {hosp.get('admitSource')} != {facts['admit_source']}")
    if "discharge" in facts and facts["discharge"] not in _codes(hosp.get("dischargeDisposition")):
        got = hosp.get("dischargeDisposition")
        out.append(f"{where}: dischargeDisposition {got} != {facts['discharge']}")
    period = encounter.get("period") or {}
    for key, element in (("start", "start"), ("end", "end")):
        if key in facts and period.get(element) != facts[key]:
            out.append(f"{where}: period.{element} {period.get(element)!r} != {facts[key]!r}")
    if facts.get("no_end") and "end" in period:
        out.append(f"{where}: period.end {period['end']} should be gone")
    reasons = " ".join(
        r.get("text", "") + " ".join(c.get("code", "") for c in r.get("coding") or [])
        for r in encounter.get("reasonCode") or []
    )
    for text in facts.get("reasons", []):
        if text not in reasons:
            out.append(f"{where}: no reason {text!r} in {reasons!r}")
    return out


def check_adt_case(resources: list[dict], expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for rtype, count in (expect.get("counts") or {}).items():
        got = len(by_type(resources, rtype))
        if got != count:
            out.append(f"{got} {rtype}, expected {count}")
    patients = by_type(resources, "Patient")
    if "patient" in expect:
        active = [p for p in patients if p.get("active") is not False]
        if len(active) != 1:
            out.append(f"{len(active)} active Patients, expected 1")
        else:
            out.extend(check_patient_more(active[0], expect["patient"], "Patient"))
    encounters = by_type(resources, "Encounter")
    if "encounter" in expect:
        if len(encounters) != 1:
            out.append(f"{len(encounters)} Encounters, expected 1")
        else:
            out.extend(check_encounter(encounters[0], expect["encounter"], "Encounter"))
            subject = encounters[0].get("subject", {}).get("reference")
            if patients and subject != f"Patient/{patients[0]['id']}":
                out.append(f"Encounter.subject {subject} is not the Patient")
    if "merged" in expect:
        out.extend(_check_merge(patients, expect["merged"]))
    return out


def _check_merge(patients: list[dict[str, Any]], facts: dict[str, Any]) -> list[str]:
    out: list[str] = []
    survivors = [p for p in patients if p.get("active") is not False]
    merged = [p for p in patients if p.get("active") is False]
    if len(survivors) != 1 or len(merged) != 1:
        return [f"{len(survivors)} surviving and {len(merged)} merged Patients, expected 1 and 1"]
    survivor, old = survivors[0], merged[0]
    if facts["identifier"] not in [i.get("value") for i in old.get("identifier") or []]:
        out.append(f"merged Patient has no identifier {facts['identifier']}")
    links = {
        (lk.get("type"), lk.get("other", {}).get("reference")) for lk in survivor.get("link") or []
    }
    if ("replaces", f"Patient/{old['id']}") not in links:
        out.append(f"surviving Patient does not link 'replaces' Patient/{old['id']}: {links}")
    back = {(lk.get("type"), lk.get("other", {}).get("reference")) for lk in old.get("link") or []}
    if ("replaced-by", f"Patient/{survivor['id']}") not in back:
        out.append(f"merged Patient does not link 'replaced-by' the survivor: {back}")
    if "name" in facts and (old.get("name") or [{}])[0].get("text") != facts["name"]:
        out.append(f"merged Patient name {old.get('name')} != {facts['name']}")
    return out


def check_service_request(sr: dict[str, Any], facts: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    ids = {
        c.get("code"): i.get("value")
        for i in sr.get("identifier") or []
        for c in (i.get("type") or {}).get("coding") or []
    }
    for key, code in (("placer", "PLAC"), ("filler", "FILL")):
        if key in facts and ids.get(code) != facts[key]:
            out.append(f"{where}: {key} {ids.get(code)} != {facts[key]}")
    for key in ("status", "priority", "authoredOn", "occurrenceDateTime"):
        if key in facts and sr.get(key) != facts[key]:
            out.append(f"{where}: {key} {sr.get(key)!r} != {facts[key]!r}")
    if (
        "requisition" in facts
        and (sr.get("requisition") or {}).get("value") != facts["requisition"]
    ):
        out.append(f"{where}: requisition {sr.get('requisition')} != {facts['requisition']}")
    if "category" in facts and not any(
        facts["category"] in _codes(c) for c in sr.get("category") or []
    ):
        out.append(f"{where}: category {sr.get('category')} has no {facts['category']}")
    if "code" in facts and facts["code"] not in _codes(sr.get("code")):
        out.append(f"{where}: code {sr.get('code')} != {facts['code']}")
    if "display" in facts and (sr.get("code") or {}).get("text") != facts["display"]:
        out.append(f"{where}: code text {sr.get('code')} != {facts['display']}")
    if "requester" in facts:
        who, wanted = sr.get("requester") or {}, facts["requester"]
        if who.get("display") != wanted["name"]:
            out.append(f"{where}: requester {who} != {wanted['name']}")
        elif (who.get("identifier") or {}).get("value") != wanted.get("code"):
            out.append(f"{where}: requester number {who.get('identifier')} != {wanted.get('code')}")
    reasons = " ".join(
        r.get("text", "") + " ".join(c.get("code", "") for c in r.get("coding") or [])
        for r in sr.get("reasonCode") or []
    )
    for text in facts.get("reasons", []):
        if text not in reasons:
            out.append(f"{where}: no reason {text!r} in {reasons!r}")
    notes = " ".join(n.get("text", "") for n in sr.get("note") or [])
    for text in facts.get("notes", []):
        if text not in notes:
            out.append(f"{where}: no note {text!r} in {notes!r}")
    if "body_site" in facts and facts["body_site"] not in [
        b.get("text") for b in sr.get("bodySite") or []
    ]:
        out.append(f"{where}: bodySite {sr.get('bodySite')} != {facts['body_site']}")
    if "instruction" in facts and sr.get("patientInstruction") != facts["instruction"]:
        out.append(f"{where}: patientInstruction {sr.get('patientInstruction')!r}")
    return out


def check_order_case(resources: list[dict], expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for rtype, count in (expect.get("counts") or {}).items():
        got = len(by_type(resources, rtype))
        if got != count:
            out.append(f"{got} {rtype}, expected {count}")
    patients = by_type(resources, "Patient")
    if "patient" in expect and patients:
        out.extend(check_patient_more(patients[0], expect["patient"], "Patient"))
    requests = by_type(resources, "ServiceRequest")
    for index, facts in enumerate(expect.get("orders", [])):
        if index >= len(requests):
            out.append(f"ServiceRequest {index + 1} missing")
            continue
        sr, where = requests[index], f"ServiceRequest[{index}]"
        out.extend(check_service_request(sr, facts, where))
        if patients and sr.get("subject", {}).get("reference") != f"Patient/{patients[0]['id']}":
            out.append(f"{where}: subject is not the Patient")
        if "specimen_type" in facts:
            specimens = {f"Specimen/{s['id']}": s for s in by_type(resources, "Specimen")}
            kinds = [
                c.get("code")
                for ref in sr.get("specimen") or []
                for c in (specimens.get(ref["reference"], {}).get("type") or {}).get("coding") or []
            ]
            if facts["specimen_type"] not in kinds:
                out.append(f"{where}: specimen types {kinds} lack {facts['specimen_type']}")
    return out
