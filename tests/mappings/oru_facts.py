"""Checking the hand-written facts of fixtures/hl7v2/oru/cases.yaml against produced FHIR.

The facts are independent of the golden files: a golden can be regenerated from a wrong
mapping, the facts cannot. Each check returns readable problems instead of asserting, so
one run shows every wrong fact of a case.
"""

from __future__ import annotations

import math
from typing import Any

NATIONAL_ID = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD = "urn:oid:2.16.156.10011.1.19"
UCUM = "http://unitsofmeasure.org"
REPORT_NOTE_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note"


def _as_list(value: Any) -> list[Any]:
    """A fact given as a list means: any one of these (e.g. an ID as written or upgraded)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def by_type(resources: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == rtype]


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=0, abs_tol=1e-9)
    return str(a) == str(b)


def _codes(concept: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((concept or {}).get("coding") or [])


def check_patient(patient: dict[str, Any], facts: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    identifiers = patient.get("identifier") or []
    wanted_ids = _as_list(facts.get("national_id"))
    if wanted_ids and not any(
        i.get("system") == NATIONAL_ID and i.get("value") in wanted_ids for i in identifiers
    ):
        out.append(f"{where}: no national ID identifier {facts['national_id']}")
    if "national_id_18" in facts and not any(
        i.get("system") == NATIONAL_ID and i.get("value") == facts["national_id_18"]
        for i in identifiers
    ):
        out.append(f"{where}: no 18-digit national ID {facts['national_id_18']}")
    if "health_card" in facts and not any(
        i.get("system") == HEALTH_CARD and i.get("value") == facts["health_card"]
        for i in identifiers
    ):
        out.append(f"{where}: no health card identifier {facts['health_card']}")
    for wanted in facts.get("identifiers", []):
        match = [i for i in identifiers if i.get("value") == wanted["value"]]
        if not match:
            out.append(f"{where}: no identifier {wanted['value']}")
        elif "type" in wanted and not any(
            c.get("code") == wanted["type"] for i in match for c in _codes(i.get("type"))
        ):
            out.append(f"{where}: identifier {wanted['value']} is not of type {wanted['type']}")
    names = patient.get("name") or [{}]
    name = names[0]
    full = name.get("text") or (name.get("family", "") + "".join(name.get("given", [])))
    if "name" in facts and full != facts["name"]:
        out.append(f"{where}: name {full!r} != {facts['name']!r}")
    if "family" in facts and name.get("family") != facts["family"]:
        out.append(f"{where}: family {name.get('family')!r} != {facts['family']!r}")
    if "given" in facts and "".join(name.get("given", [])) != facts["given"]:
        out.append(f"{where}: given {name.get('given')!r} != {facts['given']!r}")
    for key in ("gender", "birthDate"):
        if key in facts and patient.get(key) != facts[key]:
            out.append(f"{where}: {key} {patient.get(key)!r} != {facts[key]!r}")
    if "phone" in facts and not any(
        t.get("value") == str(facts["phone"]) for t in patient.get("telecom") or []
    ):
        out.append(f"{where}: no phone {facts['phone']}")
    if "address" in facts and not any(
        facts["address"] in (a.get("text", "") + " ".join(a.get("line", [])))
        for a in patient.get("address") or []
    ):
        out.append(f"{where}: no address containing {facts['address']!r}")
    return out


def _report_notes(report: dict[str, Any]) -> str:
    texts = [
        e.get("valueAnnotation", {}).get("text", "")
        for e in report.get("extension") or []
        if e.get("url") == REPORT_NOTE_EXT
    ]
    return "\n".join([report.get("conclusion", ""), *texts])


def check_report(report: dict[str, Any], facts: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    codings = _codes(report.get("code"))
    if "code" in facts and not any(c.get("code") == facts["code"] for c in codings):
        out.append(f"{where}: no code {facts['code']} in {[c.get('code') for c in codings]}")
    if "display" in facts and not any(c.get("display") == facts["display"] for c in codings):
        out.append(f"{where}: no display {facts['display']}")
    checks = {
        "status": report.get("status"),
        "effective": report.get("effectiveDateTime"),
        "issued": report.get("issued"),
    }
    for key, actual in checks.items():
        if key in facts and actual != facts[key]:
            out.append(f"{where}: {key} {actual!r} != {facts[key]!r}")
    values = {i.get("value") for i in report.get("identifier") or []}
    for key in ("placer", "filler"):
        if key in facts and facts[key] not in values:
            out.append(f"{where}: no {key} identifier {facts[key]} in {sorted(values)}")
    if "note" in facts and facts["note"] not in _report_notes(report):
        out.append(f"{where}: no note containing {facts['note']!r}")
    return out


def check_specimen(specimen: dict[str, Any], facts: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    concept = specimen.get("type") or {}
    codings = _codes(concept)
    if "type_code" in facts and not any(c.get("code") == facts["type_code"] for c in codings):
        out.append(f"{where}: type code {facts['type_code']} not in {codings}")
    if "type_text" in facts and facts["type_text"] not in (
        [concept.get("text")] + [c.get("display") for c in codings]
    ):
        out.append(f"{where}: type text {facts['type_text']!r} not in {concept}")
    collected = (specimen.get("collection") or {}).get("collectedDateTime")
    if "collected" in facts and collected != facts["collected"]:
        out.append(f"{where}: collected {collected!r} != {facts['collected']!r}")
    if "identifier" in facts and facts["identifier"] not in {
        i.get("value") for i in specimen.get("identifier") or []
    }:
        out.append(f"{where}: no identifier {facts['identifier']}")
    return out


_VALUE_KEYS = (
    "valueQuantity",
    "valueString",
    "valueCodeableConcept",
    "valueRange",
    "valueRatio",
    "valueDateTime",
    "valueInteger",
    "valueBoolean",
)


def check_observation(obs: dict[str, Any], facts: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    codings = _codes(obs.get("code"))
    if "code" in facts and not any(c.get("code") == str(facts["code"]) for c in codings):
        return [f"{where}: expected code {facts['code']}, got {[c.get('code') for c in codings]}"]
    if "display" in facts and not any(c.get("display") == facts["display"] for c in codings):
        out.append(f"{where}: no display {facts['display']}")
    quantity = obs.get("valueQuantity") or {}
    if "value" in facts and not ("value" in quantity and _same(quantity["value"], facts["value"])):
        out.append(
            f"{where}: value {quantity.get('value')!r} != {facts['value']!r} "
            f"({obs.get('valueString') or ''})"
        )
    if "comparator" in facts and quantity.get("comparator") != facts["comparator"]:
        out.append(f"{where}: comparator {quantity.get('comparator')!r} != {facts['comparator']!r}")
    if "unit" in facts and not (
        quantity.get("code") == facts["unit"] and quantity.get("system") == UCUM
    ):
        out.append(f"{where}: UCUM unit {quantity.get('code')!r} != {facts['unit']!r}")
    if "original_unit" in facts and quantity.get("unit") != facts["original_unit"]:
        out.append(
            f"{where}: unit as written {quantity.get('unit')!r} != {facts['original_unit']!r}"
        )
    if "text" in facts:
        concept = obs.get("valueCodeableConcept") or {}
        texts = [
            obs.get("valueString"),
            concept.get("text"),
            *[c.get("display") for c in _codes(concept)],
        ]
        if facts["text"] not in texts:
            out.append(f"{where}: text {facts['text']!r} not in {texts}")
    if "value_code" in facts and not any(
        c.get("code") == str(facts["value_code"]) for c in _codes(obs.get("valueCodeableConcept"))
    ):
        out.append(f"{where}: value code {facts['value_code']} missing")
    if "interpretation" in facts and not any(
        c.get("code") == facts["interpretation"]
        for i in obs.get("interpretation") or []
        for c in _codes(i)
    ):
        out.append(
            f"{where}: interpretation {facts['interpretation']} missing "
            f"({obs.get('interpretation')})"
        )
    ranges = obs.get("referenceRange") or [{}]
    for key, element in (("low", "low"), ("high", "high")):
        if key in facts:
            actual = (ranges[0].get(element) or {}).get("value")
            if actual is None or not _same(actual, facts[key]):
                out.append(f"{where}: range {key} {actual!r} != {facts[key]!r}")
    if "range_text" in facts and ranges[0].get("text") != facts["range_text"]:
        out.append(f"{where}: range text {ranges[0].get('text')!r} != {facts['range_text']!r}")
    if "status" in facts and obs.get("status") != facts["status"]:
        out.append(f"{where}: status {obs.get('status')!r} != {facts['status']!r}")
    if "effective" in facts and obs.get("effectiveDateTime") != facts["effective"]:
        out.append(f"{where}: effective {obs.get('effectiveDateTime')!r} != {facts['effective']!r}")
    if "note" in facts and not any(
        facts["note"] in n.get("text", "") for n in obs.get("note") or []
    ):
        out.append(f"{where}: no note containing {facts['note']!r}")
    if "absent_reason" in facts and facts["absent_reason"] not in [
        c.get("code") for c in _codes(obs.get("dataAbsentReason"))
    ]:
        out.append(
            f"{where}: dataAbsentReason {obs.get('dataAbsentReason')} != {facts['absent_reason']}"
        )
    if facts.get("absent") and any(k in obs for k in _VALUE_KEYS):
        out.append(f"{where}: expected no value, got {[k for k in _VALUE_KEYS if k in obs]}")
    return out


def _subject(index: dict[str, dict[str, Any]], resource: dict[str, Any]) -> dict[str, Any]:
    return index.get(resource.get("subject", {}).get("reference"), {})


def check_case(
    resources: list[dict[str, Any]], issues: list[dict[str, Any]], expect: dict[str, Any]
) -> list[str]:
    out: list[str] = []
    index = {_ref(r): r for r in resources}
    for rtype, count in (expect.get("counts") or {}).items():
        actual = len(by_type(resources, rtype))
        if actual != count:
            out.append(f"counts: {actual} {rtype}, expected {count}")
    patients = by_type(resources, "Patient")
    patient_facts = expect.get("patients") or ([expect["patient"]] if "patient" in expect else [])
    for number, facts in enumerate(patient_facts):
        if number >= len(patients):
            out.append(f"patient {number + 1}: missing")
            continue
        match = [
            p
            for p in patients
            if any(
                i.get("value") in _as_list(facts.get("national_id"))
                for i in p.get("identifier") or []
            )
        ]
        out.extend(
            check_patient(match[0] if match else patients[number], facts, f"patient {number + 1}")
        )
    reports = by_type(resources, "DiagnosticReport")
    report_facts = expect.get("reports") or ([expect["report"]] if "report" in expect else [])
    for number, facts in enumerate(report_facts):
        where = f"report {number + 1}"
        candidates = [
            r
            for r in reports
            if any(c.get("code") == facts.get("code") for c in _codes(r.get("code")))
        ]
        if "patient" in facts:
            candidates = [
                r
                for r in candidates
                if any(
                    i.get("value") == facts["patient"]
                    for i in _subject(index, r).get("identifier", [])
                )
            ]
        if not candidates:
            out.append(f"{where}: no DiagnosticReport with code {facts.get('code')}")
            continue
        report = candidates[0]
        out.extend(check_report(report, facts, where))
        observations = [
            index[r["reference"]] for r in report.get("result") or [] if r["reference"] in index
        ]
        out.extend(_check_observations(observations, facts.get("observations") or [], where))
    if "report" in expect and "observations" in expect:
        observations = by_type(resources, "Observation")
        out.extend(_check_observations(observations, expect["observations"], "observations"))
    if "specimen" in expect:
        specimens = by_type(resources, "Specimen")
        out.extend(
            check_specimen(specimens[0], expect["specimen"], "specimen")
            if specimens
            else ["specimen: none made"]
        )
    warnings = [i["diagnostics"] for i in issues if i["severity"] == "warning"]
    if expect.get("no_warnings") and warnings:
        out.append(f"warnings: {warnings}, expected none")
    for wanted in expect.get("warnings", []):
        if not any(wanted.lower() in w.lower() for w in warnings):
            out.append(f"warnings: none mentions {wanted!r} (warnings: {warnings})")
    for place, wanted in (expect.get("warnings_at") or {}).items():
        if not any(
            i["severity"] == "warning"
            and i.get("location") == place
            and wanted.lower() in i["diagnostics"].lower()
            for i in issues
        ):
            out.append(f"warnings_at: no warning at {place} mentions {wanted!r}")
    for place, wanted in (expect.get("notes") or {}).items():
        if not any(
            i["severity"] == "information"
            and i.get("location") == place
            and wanted.lower() in i["diagnostics"].lower()
            for i in issues
        ):
            out.append(f"notes: no information note at {place} mentions {wanted!r}")
    for segment in expect.get("unread", []):
        if not any(
            (i.get("location") or "").startswith(f"{segment}[") and "not read" in i["diagnostics"]
            for i in issues
        ):
            out.append(f"unread: {segment} not reported")
    return out


def _check_observations(
    observations: list[dict[str, Any]], facts_list: list[dict[str, Any]], where: str
) -> list[str]:
    out: list[str] = []
    remaining = list(observations)
    for number, facts in enumerate(facts_list, 1):
        match = next(
            (
                o
                for o in remaining
                if "code" not in facts
                or any(c.get("code") == str(facts["code"]) for c in _codes(o.get("code")))
            ),
            None,
        )
        if match is None:
            out.append(
                f"{where} observation {number}: no Observation with code {facts.get('code')}"
            )
            continue
        remaining.remove(match)
        label = f"{where} observation {number} ({facts.get('code')})"
        out.extend(check_observation(match, facts, label))
    return out
