"""The CapabilityStatement, generated from the search-parameter table.

It states exactly what the read API does: the supported types, their interactions and
their search parameters. Nothing is listed by hand, so it cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from adapter.fhir.search_params import RESOURCES, SUPPORTED_TYPES

FHIR_VERSION = "4.0.1"
INTERACTIONS: tuple[str, ...] = ("read", "vread", "search-type", "history-instance")
SOFTWARE_NAME = "yigongti-fhir-adapter"


def capability_statement(*, base_url: str, software_version: str, date: str) -> dict[str, Any]:
    """An R4 CapabilityStatement (kind instance) for the server at ``base_url``."""
    resources = []
    for rtype in SUPPORTED_TYPES:
        params = RESOURCES[rtype].params.values()
        resources.append(
            {
                "type": rtype,
                "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
                "interaction": [{"code": code} for code in INTERACTIONS],
                "versioning": "versioned",
                "readHistory": True,
                "updateCreate": False,
                "searchParam": [
                    _search_param(p.name, p.type, p.documentation or _describe(p.paths))
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
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only FHIR API over the resources the adapter produced. Searches take "
                    "_count, _offset, _sort (_lastUpdated, -_lastUpdated, _id, -_id), _total and "
                    "_summary=count; unknown parameters are refused unless the request says "
                    "Prefer: handling=lenient."
                ),
                "resource": resources,
            }
        ],
    }


def _search_param(name: str, ptype: str, documentation: str) -> dict[str, Any]:
    return {"name": name, "type": ptype, "documentation": documentation}


def _describe(paths: tuple[str, ...]) -> str:
    return "Matches " + " | ".join(paths)
