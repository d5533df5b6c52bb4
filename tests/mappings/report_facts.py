"""Checking the hand-written facts of the lab and exam report cases (CDA and vendor XML):
fixtures/{cda,xml}/{lab,exam}/cases.yaml.

Lab facts are the ORU facts (tests/mappings/oru_facts.py: counts, patient, report with its
observations, specimen, warnings); the report facts below add what a document carries beyond
an ORU message, and the exam facts what an exam report is: findings and impression kept
apart, the modality, the body site. Every check returns readable problems.
"""

from __future__ import annotations

from typing import Any

from tests.mappings.oru_facts import _check_observations, by_type, check_case, check_report

V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
FINDINGS_CODE = "59776-5"  # LOINC Procedure findings Narrative


def _codings(concepts: list[dict[str, Any]] | dict[str, Any] | None) -> list[dict[str, Any]]:
    if not concepts:
        return []
    items = concepts if isinstance(concepts, list) else [concepts]
    return [c for concept in items for c in concept.get("coding") or []]


def _displays(references: list[dict[str, Any]] | None) -> list[str]:
    return [r.get("display", "") for r in references or [] if "display" in r]


REASON_URL = "http://hl7.org/fhir/StructureDefinition/workflow-reasonReference"


def check_reasons(
    resources: list[dict[str, Any]], report: dict[str, Any], codes: list[str]
) -> list[str]:
    """`reasons`: the Condition codes (诊断记录章节) the report names, each through a
    workflow-reasonReference extension that points at a Condition of the output."""
    index = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    named = [
        index.get((e.get("valueReference") or {}).get("reference", ""))
        for e in report.get("extension") or []
        if e.get("url") == REASON_URL
    ]
    found = {
        c.get("code")
        for condition in named
        if condition and condition["resourceType"] == "Condition"
        for c in _codings(condition.get("code"))
    }
    return [
        f"report: no reason Condition {code} (found {sorted(map(str, found))})"
        for code in codes
        if code not in found
    ]


def check_document_report(report: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    """Facts under `report:` that an ORU case does not have."""
    out: list[str] = []
    codes = {c.get("code") for c in _codings(report.get("category"))}
    for code in facts.get("category", []):
        if code not in codes:
            out.append(f"report: category {code} not in {sorted(map(str, codes))}")
    texts = [c.get("text") for c in report.get("category") or []]
    if "category_text" in facts and facts["category_text"] not in texts:
        out.append(f"report: category text {facts['category_text']!r} not in {texts}")
    if "conclusion" in facts and report.get("conclusion") != facts["conclusion"]:
        out.append(f"report: conclusion {report.get('conclusion')!r} != {facts['conclusion']!r}")
    if facts.get("no_conclusion") and "conclusion" in report:
        out.append(f"report: unexpected conclusion {report['conclusion']!r}")
    for name in facts.get("performers", []):
        if name not in _displays(report.get("performer")):
            out.append(f"report: performer {name} not in {_displays(report.get('performer'))}")
    for name in facts.get("interpreters", []):
        if name not in _displays(report.get("resultsInterpreter")):
            out.append(
                f"report: interpreter {name} not in {_displays(report.get('resultsInterpreter'))}"
            )
    if "code_text" in facts and (report.get("code") or {}).get("text") != facts["code_text"]:
        out.append(
            f"report: code text {(report.get('code') or {}).get('text')!r} "
            f"!= {facts['code_text']!r}"
        )
    if facts.get("no_code") and _codings(report.get("code")):
        out.append(f"report: expected a code with text only, got {_codings(report.get('code'))}")
    if "loinc" in facts and not any(
        c.get("system") == "http://loinc.org" and c.get("code") == facts["loinc"]
        for c in _codings(report.get("code"))
    ):
        out.append(f"report: no LOINC {facts['loinc']} in the code")
    return out


def _findings(resources: list[dict[str, Any]], report: dict[str, Any]) -> list[dict[str, Any]]:
    ids = {r["reference"] for r in report.get("result") or []}
    return [
        o
        for o in by_type(resources, "Observation")
        if f"Observation/{o['id']}" in ids
        and any(c.get("code") == FINDINGS_CODE for c in _codings(o.get("code")))
    ]


def check_exam(
    resources: list[dict[str, Any]], facts: dict[str, Any], report: dict[str, Any]
) -> list[str]:
    """Facts under `exam:`: findings and impression apart, modality, body site."""
    out: list[str] = []
    findings = _findings(resources, report)
    conclusion = report.get("conclusion", "")
    if "findings" in facts:
        if len(findings) != 1:
            return [f"exam: {len(findings)} findings Observations in the report, expected 1"]
        text = findings[0].get("valueString", "")
        if text != facts["findings"]:
            out.append(f"exam: findings {text!r} != {facts['findings']!r}")
        if "impression" in facts and (facts["impression"] in text or (text and text in conclusion)):
            out.append("exam: findings and impression are merged")
    if facts.get("no_findings") and any("valueString" in f for f in findings):
        out.append(f"exam: unexpected findings {findings[0].get('valueString')!r}")
    if "impression" in facts and conclusion != facts["impression"]:
        out.append(f"exam: impression (conclusion) {conclusion!r} != {facts['impression']!r}")
    if "modality" in facts:
        wanted = facts["modality"]
        in_report = [
            c.get("code") for c in _codings(report.get("category")) if c.get("system") == DCM
        ]
        if wanted is None:
            if in_report:
                out.append(f"exam: expected no modality, got {in_report}")
        elif wanted not in in_report:
            out.append(f"exam: modality {wanted} not in the report category ({in_report})")
        if (
            wanted
            and findings
            and not any(
                c.get("system") == DCM and c.get("code") == wanted
                for c in _codings(findings[0].get("method"))
            )
        ):
            out.append(f"exam: modality {wanted} not the findings' method")
    site = (findings[0].get("bodySite") or {}) if findings else {}
    if "body_site_text" in facts and site.get("text") != facts["body_site_text"]:
        out.append(f"exam: body site text {site.get('text')!r} != {facts['body_site_text']!r}")
    if "body_site_snomed" in facts:
        snomed = [c.get("code") for c in site.get("coding") or [] if c.get("system") == SNOMED]
        wanted = facts["body_site_snomed"]
        if (wanted is None and snomed) or (wanted is not None and snomed != [str(wanted)]):
            out.append(f"exam: body site SNOMED {snomed} != {wanted}")
    if (
        "observation_category" in facts
        and findings
        and facts["observation_category"]
        not in {c.get("code") for c in _codings(findings[0].get("category"))}
    ):
        out.append(f"exam: findings category is not {facts['observation_category']}")
    if "result_code" in facts and facts["result_code"] not in {
        c.get("code") for c in _codings(report.get("conclusionCode"))
    }:
        out.append(f"exam: conclusionCode {facts['result_code']} missing")
    return out


def check_report_case(
    resources: list[dict[str, Any]], issues: list[dict[str, Any]], expect: dict[str, Any]
) -> list[str]:
    reports = by_type(resources, "DiagnosticReport")
    if len(reports) != 1:
        return [f"{len(reports)} DiagnosticReports, expected 1"]
    report = reports[0]
    facts = expect.get("report") or {}
    if "code" in facts:
        out = check_case(resources, issues, expect)
    else:  # a report coded by text only: the ORU checks find reports by their code
        out = check_case(resources, issues, {k: v for k, v in expect.items() if k != "report"})
        index = {f"{r['resourceType']}/{r['id']}": r for r in resources}
        out.extend(check_report(report, facts, "report"))
        out.extend(
            _check_observations(
                [index[r["reference"]] for r in report.get("result") or []],
                facts.get("observations") or [],
                "report",
            )
        )
    out.extend(check_document_report(report, expect.get("report") or {}))
    out.extend(check_reasons(resources, report, facts.get("reasons") or []))
    if "exam" in expect:
        out.extend(check_exam(resources, expect["exam"], report))
    if expect.get("no_unread"):
        unread = [i["location"] for i in issues if "not read" in i["diagnostics"]]
        if unread:
            out.append(f"unread content reported: {unread}")
    return out
