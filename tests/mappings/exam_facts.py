"""Checking the hand-written facts of fixtures/hl7v2/exam/cases.yaml (exam reports over
ORU^R01) against produced FHIR; readable problems instead of assertions."""

from __future__ import annotations

from typing import Any

from tests.mappings.oru_facts import REPORT_NOTE_EXT, by_type

FINDINGS_LOINC = "59776-5"


def _codes(concept: dict[str, Any] | None) -> set[str]:
    return {c.get("code") for c in (concept or {}).get("coding") or []}


def _is_findings(observation: dict[str, Any]) -> bool:
    return FINDINGS_LOINC in _codes(observation.get("code"))


def check_report(report: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    out: list[str] = []
    categories = set().union(*(_codes(c) for c in report.get("category") or [])) or set()
    if "LAB" in categories:
        out.append(f"an exam report has the category LAB: {report['category']}")
    if "category" in facts and facts["category"] not in categories:
        out.append(f"category {categories} lacks {facts['category']}")
    if "code" in facts and facts["code"] not in _codes(report.get("code")):
        out.append(f"code {report.get('code')} != {facts['code']}")
    if "display" in facts and (report.get("code") or {}).get("text") != facts["display"]:
        out.append(f"code text {report.get('code')} != {facts['display']}")
    for key, element in (
        ("status", "status"),
        ("effective", "effectiveDateTime"),
        ("issued", "issued"),
        ("conclusion", "conclusion"),
    ):
        if key in facts and report.get(element) != facts[key]:
            out.append(f"{element} {report.get(element)!r} != {facts[key]!r}")
    ids = {
        c.get("code"): i.get("value")
        for i in report.get("identifier") or []
        for c in (i.get("type") or {}).get("coding") or []
    }
    for key, code in (("placer", "PLAC"), ("filler", "FILL"), ("accession", "ACSN")):
        if key in facts and ids.get(code) != facts[key]:
            out.append(f"{key} {ids.get(code)} != {facts[key]}")
    if "interpreters" in facts:
        got = [
            {
                "name": i.get("display"),
                **({"code": i["identifier"].get("value")} if "identifier" in i else {}),
            }
            for i in report.get("resultsInterpreter") or []
        ]
        if got != facts["interpreters"]:
            out.append(f"resultsInterpreter {got} != {facts['interpreters']}")
    if "performers" in facts:
        names = [p.get("display") for p in report.get("performer") or [] if "display" in p]
        if names != facts["performers"]:
            out.append(f"performers {names} != {facts['performers']}")
    notes = " ".join(
        e.get("valueAnnotation", {}).get("text", "")
        for e in report.get("extension") or []
        if e.get("url") == REPORT_NOTE_EXT
    )
    for text in facts.get("notes", []):
        if text not in notes:
            out.append(f"no note {text!r} in {notes!r}")
    return out


def check_exam_case(resources: list[dict[str, Any]], expect: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for rtype, count in (expect.get("counts") or {}).items():
        got = len(by_type(resources, rtype))
        if got != count:
            out.append(f"{got} {rtype}, expected {count}")
    reports = by_type(resources, "DiagnosticReport")
    if len(reports) != 1:
        return [*out, f"{len(reports)} DiagnosticReports, expected 1"]
    report = reports[0]
    out.extend(check_report(report, expect.get("report") or {}))
    observations = by_type(resources, "Observation")
    results = [r["reference"] for r in report.get("result") or []]
    if sorted(results) != sorted(f"Observation/{o['id']}" for o in observations):
        out.append("the report's result does not list exactly its Observations")
    findings = [o for o in observations if _is_findings(o)]
    if "findings" in expect:
        facts = expect["findings"]
        if facts is None:
            if findings:
                out.append("a findings Observation was made, none expected")
        elif len(findings) != 1:
            out.append(f"{len(findings)} findings Observations, expected 1")
        else:
            f = findings[0]
            if f.get("valueString") != facts["text"]:
                out.append(f"findings {f.get('valueString')!r} != {facts['text']!r}")
            if "category" in facts and not any(
                facts["category"] in _codes(c) for c in f.get("category") or []
            ):
                out.append(f"findings category {f.get('category')} lacks {facts['category']}")
            if "body_site" in facts and (f.get("bodySite") or {}).get("text") != facts["body_site"]:
                out.append(f"findings bodySite {f.get('bodySite')} != {facts['body_site']}")
            conclusion = report.get("conclusion") or ""
            if conclusion and conclusion in (f.get("valueString") or ""):
                out.append("the impression is in the findings")
            if (f.get("valueString") or "") and f["valueString"] in conclusion:
                out.append("the findings are in the conclusion")
    measurements = [o for o in observations if not _is_findings(o)]
    wanted = expect.get("measurements", [])
    if len(measurements) != len(wanted):
        out.append(f"{len(measurements)} measurements, expected {len(wanted)}")
    for facts, obs in zip(wanted, measurements, strict=False):
        where = f"measurement {facts['code']}"
        if facts["code"] not in _codes(obs.get("code")):
            out.append(f"{where}: code {obs.get('code')}")
        quantity = obs.get("valueQuantity") or {}
        if "value" in facts and quantity.get("value") != facts["value"]:
            out.append(f"{where}: value {quantity.get('value')} != {facts['value']}")
        if "unit" in facts and quantity.get("unit") != facts["unit"]:
            out.append(f"{where}: unit {quantity.get('unit')} != {facts['unit']}")
        if "category" in facts and not any(
            facts["category"] in _codes(c) for c in obs.get("category") or []
        ):
            out.append(f"{where}: category {obs.get('category')} lacks {facts['category']}")
        if "interpretation" in facts and not any(
            facts["interpretation"] in _codes(c) for c in obs.get("interpretation") or []
        ):
            out.append(f"{where}: interpretation {obs.get('interpretation')}")
    return out
