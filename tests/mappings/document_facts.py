"""The hand-written facts of the WS/T 500 document fixtures (fixtures/cda/documents/cases.yaml,
keys explained in its header), checked against a translation's resources and issues."""

from __future__ import annotations

import re
from typing import Any

from tests.mappings.oru_facts import by_type, check_patient

_TAGS = re.compile(r"<[^>]+>")


def _tcm_kind(condition: dict[str, Any]) -> str | None:
    """The Chinese-medicine kind category (tcm-disease / tcm-syndrome), or None."""
    for category in condition.get("category") or []:
        for coding in category.get("coding") or []:
            if coding.get("system", "").endswith("/CodeSystem/tcm-diagnosis-kind"):
                return coding.get("code")
    return None


def _codes(concept: dict[str, Any] | None) -> list[str]:
    return [str(c.get("code")) for c in (concept or {}).get("coding") or []]


def narrative(section: dict[str, Any]) -> str:
    return _TAGS.sub("\n", (section.get("text") or {}).get("div", ""))


def check_document_case(
    resources: list[dict[str, Any]], issues: list[dict[str, Any]], expect: dict[str, Any]
) -> list[str]:
    out: list[str] = []
    counts: dict[str, int] = {}
    for r in resources:
        counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
    for rtype, wanted in (expect.get("counts") or {}).items():
        if counts.get(rtype, 0) != wanted:
            out.append(f"{counts.get(rtype, 0)} {rtype}, expected {wanted}")
    if expect.get("no_unread"):
        unread = [i["location"] for i in issues if "not read" in i["diagnostics"]]
        if unread:
            out.append(f"unread: {unread}")
    if expect.get("unread_codes_only"):
        other = [
            i["location"]
            for i in issues
            if "not read" in i["diagnostics"]
            and not (
                i["severity"] == "information"
                and re.search(r"/section\[1\]/code\[1\]/@displayName$", i["location"] or "")
            )
        ]
        if other:
            out.append(f"unread beyond section code names: {other}")
    for number, facts in enumerate(expect.get("patients") or [expect.get("patient") or {}]):
        patients = by_type(resources, "Patient")
        if facts and len(patients) > number:
            out.extend(check_patient(patients[number], facts, "Patient"))
    compositions = by_type(resources, "Composition")
    bundles = by_type(resources, "Bundle")
    if compositions:
        out.extend(_check_composition(compositions[0], expect.get("composition") or {}))
        if not bundles or bundles[0]["entry"][0]["resource"]["resourceType"] != "Composition":
            out.append("no document Bundle with the Composition first")
    out.extend(_check_encounter(by_type(resources, "Encounter"), expect.get("encounter")))
    conditions = by_type(resources, "Condition")
    for wanted in expect.get("conditions") or []:
        match = [c for c in conditions if wanted["code"] in _codes(c.get("code"))]
        if not match:
            out.append(
                f"no Condition {wanted['code']} in {[_codes(c['code']) for c in conditions]}"
            )
        elif "display" in wanted and wanted["display"] != (match[0]["code"].get("text")):
            out.append(f"Condition {wanted['code']} text {match[0]['code'].get('text')!r}")
        elif "data_element" in wanted and wanted["data_element"] not in [
            e.get("valueCoding", {}).get("display") for e in match[0].get("extension") or []
        ]:
            out.append(f"Condition {wanted['code']}: data element {wanted['data_element']} missing")
        elif "system" in wanted and wanted["system"] not in [
            c.get("system") for c in match[0]["code"].get("coding") or []
        ]:
            out.append(f"Condition {wanted['code']}: no coding in {wanted['system']}")
        elif "tcm" in wanted and wanted["tcm"] != _tcm_kind(match[0]):
            out.append(f"Condition {wanted['code']}: TCM kind {_tcm_kind(match[0])!r}")
    observations = by_type(resources, "Observation")
    for wanted in expect.get("vitals") or []:
        match = [o for o in observations if wanted["loinc"] in _codes(o.get("code"))]
        quantity = (match[0].get("valueQuantity") or {}) if match else {}
        if not match or quantity.get("value") != wanted["value"]:
            out.append(
                f"vital sign {wanted['loinc']}: {quantity or 'missing'} != {wanted['value']}"
            )
        elif "unit" in wanted and quantity.get("code") != wanted["unit"]:
            out.append(f"vital sign {wanted['loinc']}: UCUM {quantity.get('code')!r}")
        elif wanted.get("data_element") and wanted["data_element"] not in _codes(match[0]["code"]):
            out.append(f"vital sign {wanted['loinc']}: no data element coding")
    allergies = [a["code"].get("text") for a in by_type(resources, "AllergyIntolerance")]
    if "allergies" in expect and allergies != expect["allergies"]:
        out.append(f"allergies {allergies} != {expect['allergies']}")
    procedures = by_type(resources, "Procedure")
    for wanted in expect.get("procedures") or []:
        match = [p for p in procedures if wanted["code"] in _codes(p.get("code"))]
        if not match:
            out.append(f"no Procedure {wanted['code']}")
        elif "performed" in wanted and match[0].get("performedDateTime") != wanted["performed"]:
            out.append(f"Procedure {wanted['code']} performed {match[0].get('performedDateTime')}")
        if match and "performers" in wanted:
            got = [
                [(p.get("function") or {}).get("text"), (p.get("actor") or {}).get("display")]
                for p in match[0].get("performer") or []
            ]
            if got != wanted["performers"]:
                out.append(f"Procedure {wanted['code']} performers {got}")
    medications = by_type(resources, "MedicationRequest")
    for wanted in expect.get("medications") or []:
        match = [
            m for m in medications if m["medicationCodeableConcept"].get("text") == wanted["name"]
        ]
        if not match:
            out.append(f"no MedicationRequest {wanted['name']}")
            continue
        med = match[0]
        if "intent" in wanted and med.get("intent") != wanted["intent"]:
            out.append(f"{wanted['name']}: intent {med.get('intent')}")
        dose = med["dosageInstruction"][0].get("doseAndRate", [{}])[0].get("doseQuantity", {})
        if "dose" in wanted and dose.get("value") != wanted["dose"]:
            out.append(f"{wanted['name']}: dose {dose}")
        timing = med["dosageInstruction"][0].get("timing") or {}
        if "frequency" in wanted:  # [timing text, frequency, period, periodUnit]
            repeat = timing.get("repeat") or {}
            got = [
                (timing.get("code") or {}).get("text"),
                repeat.get("frequency"),
                repeat.get("period"),
                repeat.get("periodUnit"),
            ]
            if got != wanted["frequency"]:
                out.append(f"{wanted['name']}: timing {got}")
        if "group" in wanted and (med.get("groupIdentifier") or {}).get("value") != wanted["group"]:
            out.append(f"{wanted['name']}: groupIdentifier {med.get('groupIdentifier')}")
        out.extend(_check_order_people(med, wanted, resources))
    services = by_type(resources, "ServiceRequest")
    for wanted in expect.get("service_orders") or []:
        match = [s for s in services if (s.get("code") or {}).get("text") == wanted["name"]]
        if not match:
            out.append(f"no ServiceRequest {wanted['name']}")
            continue
        order = match[0]
        if "intent" in wanted and order.get("intent") != wanted["intent"]:
            out.append(f"{wanted['name']}: intent {order.get('intent')}")
        requisition = (order.get("requisition") or {}).get("value")
        if "requisition" in wanted and requisition != wanted["requisition"]:
            out.append(f"{wanted['name']}: requisition {requisition}")
        out.extend(_check_order_people(order, wanted, resources))
    return out


def _check_order_people(
    order: dict[str, Any], wanted: dict[str, Any], resources: list[dict[str, Any]]
) -> list[str]:
    """status, requester (name), performer (name) and acts: {role as written: [agent type,
    name]} — the Provenances whose target is the order."""
    out: list[str] = []
    name = wanted["name"]
    if "status" in wanted and order.get("status") != wanted["status"]:
        out.append(f"{name}: status {order.get('status')}")
    if (
        "requester" in wanted
        and (order.get("requester") or {}).get("display") != wanted["requester"]
    ):
        out.append(f"{name}: requester {order.get('requester')}")
    performer = order.get("performer")
    performer = performer[0] if isinstance(performer, list) and performer else performer or {}
    if "performer" in wanted and performer.get("display") != wanted["performer"]:
        out.append(f"{name}: performer {performer}")
    if "acts" in wanted:
        ref = f"{order['resourceType']}/{order['id']}"
        acts = {
            p["activity"]["text"]: [
                p["agent"][0]["type"]["coding"][0]["code"],
                p["agent"][0]["who"]["display"],
            ]
            for p in by_type(resources, "Provenance")
            if any(t.get("reference") == ref for t in p.get("target") or [])
        }
        if acts != wanted["acts"]:
            out.append(f"{name}: acts {acts}, expected {wanted['acts']}")
    return out


DATA_ELEMENT_URL = "https://yigongti-fhir-adapter.github.io/fhir/StructureDefinition/data-element"


def _check_composition(composition: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for code in facts.get("type") or []:
        if code not in _codes(composition.get("type")):
            out.append(f"Composition.type lacks {code}: {_codes(composition.get('type'))}")
    if "title" in facts and composition.get("title") != facts["title"]:
        out.append(f"Composition.title {composition.get('title')!r}")
    sections = {s.get("title"): s for s in composition.get("section") or []}
    for section in composition.get("section") or []:
        # cmp-1: every section has text, entries or sub-sections; an empty one says why
        if not (section.get("entry") or narrative(section).strip() or section.get("section")):
            out.append(f"section {section.get('title')!r} has no text, entries or sections")
        if (section.get("text") or {}).get("status") == "empty" and not section.get("emptyReason"):
            out.append(f"section {section.get('title')!r} is empty without emptyReason")
    for title, texts in (facts.get("sections") or {}).items():
        if title not in sections:
            out.append(f"no section {title!r} in {list(sections)}")
            continue
        for text in texts:
            if text not in narrative(sections[title]):
                out.append(f"section {title!r}: {text!r} not in {narrative(sections[title])!r}")
    for title in facts.get("empty_sections") or []:
        if title not in sections or not sections[title].get("emptyReason"):
            out.append(f"section {title!r} is not marked empty")
    for title, codes in (facts.get("section_data_elements") or {}).items():
        got_codes = [
            (e.get("valueCoding") or {}).get("code")
            for e in (sections.get(title) or {}).get("extension") or []
            if e.get("url") == DATA_ELEMENT_URL
        ]
        if got_codes != codes:
            out.append(f"section {title!r}: data elements {got_codes}, expected {codes}")
    for title, count in (facts.get("section_entries") or {}).items():
        got = len((sections.get(title) or {}).get("entry") or [])
        if got != count:
            out.append(f"section {title!r}: {got} entries, expected {count}")
    return out


def _check_encounter(encounters: list[dict[str, Any]], facts: dict[str, Any] | None) -> list[str]:
    if facts is None:
        return []
    if facts.get("none"):
        return [f"an Encounter was made: {encounters}"] if encounters else []
    if len(encounters) != 1:
        return [f"{len(encounters)} Encounters"]
    enc = encounters[0]
    out = []
    checks = {
        "class": enc.get("class", {}).get("code"),
        "status": enc.get("status"),
        "start": (enc.get("period") or {}).get("start"),
        "end": (enc.get("period") or {}).get("end"),
        "length_days": (enc.get("length") or {}).get("value"),
        "identifier": (enc.get("identifier") or [{}])[0].get("value"),
        "identifier_system": (enc.get("identifier") or [{}])[0].get("system"),
    }
    for key, actual in checks.items():
        if key in facts and actual != facts[key]:
            out.append(f"Encounter {key} {actual!r} != {facts[key]!r}")
    return out
