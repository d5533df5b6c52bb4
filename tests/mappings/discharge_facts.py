"""Checks the hand-written facts of a discharge summary case (fixtures/*/discharge/cases.yaml,
keys explained in the header of fixtures/cda/discharge/cases.yaml) against a translation.

Returns a list of problems (empty when every fact holds), so a failing case shows them all."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

NATIONAL_ID = "urn:oid:2.16.156.10011.1.3"
ORG_CODE = "urn:oid:2.16.156.10011.1.5"
TCM = "urn:oid:2.16.156.10011.2.3.3.14"  # GB/T 15657 中医病证分类与代码
DIRECTION = "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/referral-direction"
SNOMED_REFERRAL = ("http://snomed.info/sct", "3457005")


def check_case(
    resources: list[dict[str, Any]], issues: list[dict[str, Any]], expect: dict[str, Any]
) -> list[str]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    index = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    problems: list[str] = []
    counts = dict(Counter(r["resourceType"] for r in resources))
    if counts != expect["counts"]:
        problems.append(f"counts {counts} != {expect['counts']}")
    problems += _patient(by_type.get("Patient", []), expect["patient"])
    [composition] = by_type.get("Composition", [{}])[:1] or [{}]
    problems += _composition(composition, index, expect["composition"])
    problems += _bundle(by_type.get("Bundle", []), composition, resources, expect["bundle"])
    problems += _encounter(by_type.get("Encounter", []), index, expect["encounter"])
    if "conditions" in expect:
        problems += _conditions(by_type.get("Condition", []), expect["conditions"])
    problems += _medications(by_type.get("MedicationRequest", []), expect.get("medications"))
    problems += _referral(
        by_type.get("ServiceRequest", []), index, composition, expect.get("referral", "none")
    )
    warnings = [i["diagnostics"] for i in issues if i["severity"] == "warning"]
    wanted = expect.get("warnings", [])
    if len(warnings) != len(wanted) or not all(
        any(piece in w for w in warnings) for piece in wanted
    ):
        problems.append(f"warnings {warnings} != {wanted}")
    return problems


def _patient(patients: list[dict[str, Any]], want: dict[str, Any]) -> list[str]:
    if len(patients) != 1:
        return [f"{len(patients)} Patients"]
    patient = patients[0]
    out = []
    values = [i["value"] for i in patient.get("identifier", []) if i.get("system") == NATIONAL_ID]
    if want["national_id"] not in values:
        out.append(f"national ID {want['national_id']} not among {len(values)} identifiers")
    if "national_id_as_written" in want and want["national_id_as_written"] not in values:
        out.append("the national ID as written is not kept")
    names = [n.get("text") for n in patient.get("name", [])]
    if want["name"] not in names:
        out.append(f"name {names} has no {want['name']}")
    for key in ("gender", "birthDate"):
        if patient.get(key) != want[key]:
            out.append(f"Patient.{key} {patient.get(key)!r} != {want[key]!r}")
    if "inpatient_no" in want and want["inpatient_no"] not in [
        i["value"] for i in patient.get("identifier", [])
    ]:
        out.append(f"住院号 {want['inpatient_no']} not on the Patient")
    return out


def _composition(
    composition: dict[str, Any], index: dict[str, dict[str, Any]], want: dict[str, Any]
) -> list[str]:
    if not composition:
        return ["no Composition"]
    out = []
    codes = [(c.get("system"), c.get("code")) for c in composition["type"]["coding"]]
    if ("http://loinc.org", "18842-5") not in codes:
        out.append(f"Composition.type {codes} is not LOINC 18842-5")
    for key, element in (("status", "status"), ("date", "date"), ("title", "title")):
        if key in want and composition.get(element) != want[key]:
            out.append(f"Composition.{element} {composition.get(element)!r} != {want[key]!r}")
    if composition.get("identifier", {}).get("value") != want["set_id"]:
        out.append(f"Composition.identifier {composition.get('identifier')} != {want['set_id']}")
    relates = [
        r.get("targetIdentifier", {}).get("value")
        for r in composition.get("relatesTo", [])
        if r.get("code") == "replaces"
    ]
    if relates != ([want["replaces"]] if "replaces" in want else []):
        out.append(f"relatesTo replaces {relates} != {want.get('replaces')}")
    if "author" in want:
        authors = [a.get("display") for a in composition.get("author", [])]
        if want["author"] not in authors:
            out.append(f"author {authors} has no {want['author']}")
        out += _resolves(composition.get("author", [{}])[0], index, "Practitioner", "author")
    for mode in ("legal", "professional"):
        attesters = [a for a in composition.get("attester", []) if a["mode"] == mode]
        if mode in want:
            if [a.get("party", {}).get("display") for a in attesters] != [want[mode]]:
                out.append(f"{mode} attester {attesters} is not {want[mode]}")
            else:
                out += _resolves(attesters[0]["party"], index, "Practitioner", f"{mode} attester")
        elif attesters:
            out.append(f"an unexpected {mode} attester {attesters}")
    if "custodian" in want:
        custodian = index.get(composition.get("custodian", {}).get("reference", ""), {})
        codes = [i["value"] for i in custodian.get("identifier", []) if i["system"] == ORG_CODE]
        if codes != [want["custodian"]]:
            out.append(f"custodian codes {codes} != {want['custodian']}")
    sections = composition.get("section", [])
    if len(sections) != len(want["sections"]):
        out.append(f"{len(sections)} sections, expected {len(want['sections'])}")
    for got, expected in zip(sections, want["sections"], strict=False):
        out += _section(got, expected, index)
    return out


def _section(
    section: dict[str, Any], want: dict[str, Any], index: dict[str, dict[str, Any]]
) -> list[str]:
    out = []
    code = section.get("code", {}).get("coding", [{}])[0]
    where = f"section {want['code']}"
    if (code.get("system"), code.get("code")) != ("http://loinc.org", want["code"]):
        out.append(f"{where}: code {code}")
    if section.get("title") != want["title"]:
        out.append(f"{where}: title {section.get('title')!r} != {want['title']!r}")
    entries = section.get("entry", [])
    if want.get("empty"):
        if (
            entries
            or section.get("text", {}).get("status") != "empty"
            or section.get("emptyReason", {}).get("coding", [{}])[0].get("code") != "nilknown"
        ):
            out.append(f"{where}: not marked empty: {section}")
        return out
    if section.get("emptyReason"):
        out.append(f"{where}: has an emptyReason")
    if len(entries) != want["entries"]:
        out.append(f"{where}: {len(entries)} entries != {want['entries']}")
    for entry in entries:
        if entry.get("reference") not in index:
            out.append(f"{where}: entry {entry} is not a resource of the document")
    if "text" in want:
        div = section.get("text", {}).get("div", "")
        if want["text"] not in div or not div.startswith(
            '<div xmlns="http://www.w3.org/1999/xhtml">'
        ):
            out.append(f"{where}: narrative {div!r} lacks {want['text']!r}")
    return out


def _bundle(
    bundles: list[dict[str, Any]],
    composition: dict[str, Any],
    resources: list[dict[str, Any]],
    want: dict[str, Any],
) -> list[str]:
    if len(bundles) != 1:
        return [f"{len(bundles)} Bundles"]
    bundle = bundles[0]
    out = []
    if bundle.get("type") != "document":
        out.append(f"Bundle.type {bundle.get('type')}")
    if bundle.get("identifier", {}).get("value") != want["identifier"]:
        out.append(f"Bundle.identifier {bundle.get('identifier')} != {want['identifier']}")
    if bundle.get("timestamp") != want["timestamp"]:
        out.append(f"Bundle.timestamp {bundle.get('timestamp')} != {want['timestamp']}")
    entries = bundle.get("entry", [])
    if not entries or entries[0]["resource"].get("id") != composition.get("id"):
        out.append("entry[0] is not the Composition")
    others = {f"urn:uuid:{r['id']}" for r in resources if r["resourceType"] != "Bundle"}
    if {e.get("fullUrl") for e in entries} != others or len(entries) != len(others):
        out.append("the entries are not every other resource once, with urn:uuid fullUrls")
    return out


def _encounter(
    encounters: list[dict[str, Any]], index: dict[str, dict[str, Any]], want: dict[str, Any]
) -> list[str]:
    if len(encounters) != 1:
        return [f"{len(encounters)} Encounters"]
    encounter = encounters[0]
    out = []
    if encounter.get("class", {}).get("code") != "IMP":
        out.append(f"Encounter.class {encounter.get('class')}")
    period = encounter.get("period", {})
    if (period.get("start"), period.get("end")) != (want["start"], want["end"]):
        out.append(f"Encounter.period {period}")
    if "length_days" in want and encounter.get("length", {}).get("value") != want["length_days"]:
        out.append(f"Encounter.length {encounter.get('length')} != {want['length_days']} days")
    hospitalization = encounter.get("hospitalization", {})
    for key, element in (
        ("admit_source", "admitSource"),
        ("discharge_disposition", "dischargeDisposition"),
    ):
        codes = [c.get("code") for c in hospitalization.get(element, {}).get("coding", [])]
        if codes != [want[key]]:
            out.append(f"{element} {codes} != {want[key]}")
    diagnoses = []
    for diagnosis in encounter.get("diagnosis", []):
        condition = index.get(diagnosis["condition"]["reference"])
        if condition is None:
            out.append(f"diagnosis {diagnosis} points to no Condition of the document")
            continue
        diagnoses.append(
            [condition["code"]["coding"][0]["code"], diagnosis["use"]["coding"][0]["code"]]
        )
    if diagnoses != want["diagnoses"]:
        out.append(f"Encounter.diagnosis {diagnoses} != {want['diagnoses']}")
    return out


def _conditions(conditions: list[dict[str, Any]], want: list[dict[str, Any]]) -> list[str]:
    out = []
    got = {c["code"]["coding"][0]["code"]: c for c in conditions}
    for expected in want:
        condition = got.get(expected["code"])
        if condition is None:
            out.append(f"no Condition {expected['code']}")
            continue
        codings = condition["code"]["coding"]
        first = codings[0]
        if (
            first.get("system") != expected.get("system", "urn:oid:2.16.156.10011.2.3.3.11")
            or first.get("display") != expected["display"]
        ):
            out.append(f"Condition {expected['code']}: first coding {first}")
        kinds = [
            c.get("code")
            for category in condition.get("category", [])
            for c in category.get("coding", [])
            if c.get("system", "").endswith("/CodeSystem/tcm-diagnosis-kind")
        ]
        if kinds != ([expected["kind"]] if "kind" in expected else []):
            out.append(f"Condition {expected['code']}: Chinese-medicine kind {kinds}")
        tcm = [c["code"] for c in codings[1:] if c.get("system") == TCM]
        if tcm != ([expected["tcm"]] if "tcm" in expected else []):
            out.append(f"Condition {expected['code']}: GB/T 15657 codings {tcm}")
        if (
            condition.get("category", [{}])[0].get("coding", [{}])[0].get("code")
            != "encounter-diagnosis"
        ):
            out.append(f"Condition {expected['code']}: category {condition.get('category')}")
    return out


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _medications(requests: list[dict[str, Any]], want: list[dict[str, Any]] | None) -> list[str]:
    if want is None:
        return []
    out = []
    got = {r["medicationCodeableConcept"]["coding"][0]["code"]: r for r in requests}
    if sorted(got) != sorted(m["code"] for m in want):
        out.append(f"medications {sorted(got)} != {[m['code'] for m in want]}")
    for expected in want:
        request = got.get(expected["code"])
        if request is None:
            continue
        where = f"MedicationRequest {expected['code']}"
        if (
            request.get("category", [{}])[0].get("coding", [{}])[0].get("code") != "discharge"
            or request.get("intent") != "order"
        ):
            out.append(f"{where}: not a discharge order")
        dosage = request.get("dosageInstruction", [{}])[0]
        dose = dosage.get("doseAndRate", [{}])[0].get("doseQuantity", {})
        repeat = dosage.get("timing", {}).get("repeat", {})
        facts = {
            "dose": _number(dose.get("value")),
            "dose_unit": dose.get("unit"),
            "period": _number(repeat.get("period")),
            "period_unit": repeat.get("periodUnit"),
            "quantity": _number(
                request.get("dispenseRequest", {}).get("quantity", {}).get("value")
            ),
            "text": dosage.get("text"),
            "frequency": next(
                (c.get("code") for c in dosage.get("timing", {}).get("code", {}).get("coding", [])),
                None,
            ),
        }
        for key, value in facts.items():
            if key in expected:
                wanted = expected[key] if isinstance(expected[key], str) else _number(expected[key])
                if value != wanted:
                    out.append(f"{where}: {key} {value} != {wanted}")
    return out


def _referral(
    requests: list[dict[str, Any]],
    index: dict[str, dict[str, Any]],
    composition: dict[str, Any],
    want: Any,
) -> list[str]:
    if want == "none":
        return [f"unexpected ServiceRequest {r['id']}" for r in requests]
    if len(requests) != 1:
        return [f"{len(requests)} ServiceRequests, expected the down-referral"]
    request = requests[0]
    out = []
    if request.get("intent") != "order":
        out.append(f"ServiceRequest.intent {request.get('intent')}")
    categories = [
        (c.get("system"), c.get("code"))
        for cat in request.get("category", [])
        for c in cat.get("coding", [])
    ]
    if SNOMED_REFERRAL not in categories:
        out.append(f"ServiceRequest.category {categories} lacks SNOMED CT 3457005")
    directions = [code for system, code in categories if system == DIRECTION]
    if directions != [want["direction"]]:
        out.append(f"direction {directions} != {want['direction']}")
    if want.get("performer_name") is None:
        if request.get("performer"):
            out.append(f"unexpected performer {request['performer']}")
    else:
        performer = index.get(request.get("performer", [{}])[0].get("reference", ""), {})
        codes = [i["value"] for i in performer.get("identifier", []) if i["system"] == ORG_CODE]
        if codes != [want["performer_code"]] or performer.get("name") != want["performer_name"]:
            out.append(f"performer {performer}")
    reasons = [
        index.get(r["reference"], {}).get("code", {}).get("coding", [{}])[0].get("code")
        for r in request.get("reasonReference", [])
    ]
    if reasons != want["reasons"]:
        out.append(f"reasons {reasons} != {want['reasons']}")
    if [s.get("reference") for s in request.get("supportingInfo", [])] != [
        f"Composition/{composition.get('id')}"
    ]:
        out.append(f"supportingInfo {request.get('supportingInfo')} is not the summary")
    notes = " ".join(n.get("text", "") for n in request.get("note", []))
    if want["note"] not in notes:
        out.append(f"note {notes!r} lacks {want['note']!r}")
    return out


def _resolves(
    reference: dict[str, Any], index: dict[str, dict[str, Any]], resource_type: str, what: str
) -> list[str]:
    target = reference.get("reference", "")
    if not target.startswith(f"{resource_type}/") or target not in index:
        return [f"{what} {reference} is not a {resource_type} of the document"]
    return []
