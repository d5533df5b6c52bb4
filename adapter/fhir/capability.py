"""The CapabilityStatement, generated from the search-parameter table.

It states exactly what the read API does: the supported types, their interactions and
their search parameters. Nothing is listed by hand, so it cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from adapter.fhir.search_definitions import definition_url
from adapter.fhir.search_params import COMMON, RESOURCES, SUPPORTED_TYPES

FHIR_VERSION = "4.0.1"
INTERACTIONS: tuple[str, ...] = (
    "read",
    "vread",
    "search-type",
    "history-instance",
    "history-type",
)
# the writes: a referral Task's state changes (adapter/api/referrals.py, docs/referral-loop.md)
WRITES: dict[str, tuple[str, ...]] = {"Task": ("update", "patch")}
WRITE_DOCS = {
    "Task": "PUT / PATCH change a referral Task's status, businessStatus, statusReason and "
    "output by the referral state machine (docs/referral-loop.md); PUT of a new id makes "
    "a Task of a stored referral for another receiver (its sender only)",
}
# operations: name -> (OperationDefinition, the types it is defined on; () = every type)
OPERATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "everything": ("http://hl7.org/fhir/OperationDefinition/Patient-everything", ("Patient",)),
    "document": ("http://hl7.org/fhir/OperationDefinition/Composition-document", ("Composition",)),
    "validate": ("http://hl7.org/fhir/OperationDefinition/Resource-validate", ()),
}
SOFTWARE_NAME = "yigongti-fhir-adapter"


# served only when a recognition catalogue is configured (docs/recognition.md)
RECOGNITION_OPERATIONS: tuple[dict[str, str], ...] = (
    {
        "name": "recognisable",
        "definition": "https://yigongti-fhir-adapter.github.io/fhir/OperationDefinition/"
        "Patient-recognisable",
        "documentation": "检查检验结果互认: the person's prior results recognisable now, per "
        "catalogue item, with the item's mark (HR, ★ ...) and the reason for each result "
        "that is not; answers a Parameters (docs/recognition.md)",
    },
    {
        "name": "recognition-decision",
        "definition": "https://yigongti-fhir-adapter.github.io/fhir/OperationDefinition/"
        "Patient-recognition-decision",
        "documentation": "Records a doctor's decision (互认 / 不互认 with a coded reason) on "
        "one ordered item as a Task; a recognised one carries the mark in meta.tag",
    },
    {
        "name": "recognition-viewed",
        "definition": "https://yigongti-fhir-adapter.github.io/fhir/OperationDefinition/"
        "Patient-recognition-viewed",
        "documentation": "Records that a doctor opened a prior result a reminder showed "
        "(已查阅), for the 互认率 statistics",
    },
)


# results a recognition catalogue marks (mark_results), said on their types
MARK_DOC = (
    "检查检验结果互认: a result of an item of the recognition catalogue, final, from a "
    "facility qualified for the item (室间质评 passed and in force on the result's day), "
    "carries meta.tag {system "
    "https://yigongti-fhir-adapter.github.io/fhir/CodeSystem/recognition-mark, code: the "
    "catalogue's mark such as HR}, for the receiving system to show beside it; search with "
    "_tag=<system>|HR. It states recognisability when the version was issued: a cancelled "
    "or preliminary version has none; whether it still counts at an order (validity window) "
    "is answered by Patient/$recognisable (docs/recognition.md)"
)
MARKED_TYPES = ("Observation", "DiagnosticReport")


def capability_statement(
    *,
    base_url: str,
    software_version: str,
    date: str,
    recognition: bool = False,
    marks: bool = False,
) -> dict[str, Any]:
    """An R4 CapabilityStatement (kind instance) for the server at ``base_url``;
    ``recognition``: the recognition operations are served (a catalogue is configured);
    ``marks``: the stored results carry the catalogue's mark (its ``mark_results``)."""
    resources = []
    for rtype in SUPPORTED_TYPES:
        params = RESOURCES[rtype].params.values()
        docs = [WRITE_DOCS[rtype]] if rtype in WRITE_DOCS else []
        if marks and rtype in MARKED_TYPES:
            docs.append(MARK_DOC)
        resources.append(
            {
                "type": rtype,
                "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
                "interaction": [{"code": code} for code in (*INTERACTIONS, *WRITES.get(rtype, ()))],
                **({"documentation": "; ".join(docs)} if docs else {}),
                "versioning": "versioned",
                "readHistory": True,
                "updateCreate": rtype in WRITES,
                "searchInclude": [f"{rtype}:{n}" for n in _references(rtype)] + [f"{rtype}:*"],
                "searchRevInclude": sorted(
                    f"{other}:{n}"
                    for other in SUPPORTED_TYPES
                    for n in _references(other, pointing_to=rtype)
                ),
                "operation": [
                    {"name": name, "definition": definition}
                    for name, (definition, types) in OPERATIONS.items()
                    if not types or rtype in types
                ]
                + (list(RECOGNITION_OPERATIONS) if recognition and rtype == "Patient" else []),
                "searchParam": [
                    _search_param(
                        p.name,
                        p.type,
                        p.documentation or _describe(p.paths),
                        definition_url(rtype, p.name),
                    )
                    for p in sorted(params, key=lambda p: (not p.name.startswith("_"), p.name))
                ],
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "yigongti-fhir-adapter",
        "kind": "instance",
        "software": {"name": SOFTWARE_NAME, "version": software_version},
        "implementation": {
            "description": "County medical consortium FHIR adapter (read API)",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "xml"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only FHIR API over the resources the adapter produced. Searches take "
                    "_count, _offset, _sort (any search parameter of the type, several, '-' "
                    "for descending), _total (none, estimate, accurate), _summary (true, text, "
                    "data, count), _elements, _include / _revinclude (with :iterate, one more "
                    "level), chains one level deep and _has. Without _total, a search with "
                    ":not, :not-in or :missing=true gives total only on a page that reaches "
                    "the end. Reads and version reads take _summary (true, text, data) and "
                    "_elements. Unknown parameters are refused "
                    "with 400 (handling=strict is the default) unless the request says "
                    "Prefer: handling=lenient; then they are ignored and listed in an "
                    "OperationOutcome entry of the Bundle."
                ),
                "resource": resources,
                "interaction": [{"code": "search-system"}, {"code": "history-system"}],
                "searchParam": [
                    _search_param(
                        p.name, p.type, p.documentation, definition_url("Resource", p.name)
                    )
                    for p in COMMON
                ],
            }
        ],
    }


def _search_param(name: str, ptype: str, documentation: str, definition: str) -> dict[str, Any]:
    return {"name": name, "definition": definition, "type": ptype, "documentation": documentation}


def _references(rtype: str, pointing_to: str | None = None) -> list[str]:
    """Reference parameters of ``rtype`` (that may point to ``pointing_to``)."""
    return sorted(
        p.name
        for p in RESOURCES[rtype].params.values()
        if p.type == "reference"
        and (pointing_to is None or not p.targets or pointing_to in p.targets)
    )


def _describe(paths: tuple[str, ...]) -> str:
    return "Matches " + " | ".join(paths)
