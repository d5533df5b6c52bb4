"""The OpenAPI description, made to tell what the API really does.

FastAPI describes the routes as Python sees them: one ``/fhir/{resource_type}`` search
with no parameters, JSON bodies, a 422 validation error the API never answers. Here the
generated document is corrected once, at first request:

* one search path per served type, with that type's search parameters (from the same
  table the store and the CapabilityStatement use);
* FHIR answers in both media types (``application/fhir+json``, ``application/fhir+xml``);
* the error answers each route really gives, each an OperationOutcome, instead of 422;
* ``/metrics`` as Prometheus text;
* the bearer token every route but the public ones needs (adapter/auth/rules.py), with its
  401 and 403 answers.

412 is not listed: the adapter has no conditional writes yet, so it never answers it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from adapter.auth.rules import RULES
from adapter.fhir.search_params import RESOURCES, SUPPORTED_TYPES

FHIR_MEDIA = ("application/fhir+json", "application/fhir+xml")
RESULT_PARAMS = {
    "_count": "Page size",
    "_offset": "Where the page starts (the paging links carry it)",
    "_sort": "Sort order, e.g. -_lastUpdated",
    "_summary": "true | text | data | count | false",
    "_elements": "Top-level elements to return, comma-separated",
    "_total": "none | estimate | accurate",
    "_include": "Referenced resources to add, e.g. Observation:patient (:iterate)",
    "_revinclude": "Referring resources to add, e.g. Provenance:target (:iterate)",
}
COMMON_PARAMS = {
    "_format": "json | xml (or a media type); overrides Accept",
    "_pretty": "true: indented output",
}
READ_PARAMS = {
    "_summary": "true | text | data | false (count only on a search)",
    "_elements": RESULT_PARAMS["_elements"],
}
ERRORS = {
    400: "Bad request: an unknown or malformed parameter, id or body",
    401: "No usable bearer token (WWW-Authenticate: Bearer)",
    403: "The client's roles or facility do not allow this (a referral change: the facility "
    "asking is neither the referral's sender nor its receiver)",
    404: "Unknown resource, type or version",
    405: "Method not allowed on this path",
    406: "None of the accepted formats is served (JSON and XML are)",
    409: "Conflict with the stored state (mapping files, altered bytes; a referral change the "
    "state machine refuses, naming the rule)",
    410: "The resource was deleted",
    413: "The request body is over the size limit",
    415: "The body's media type is not accepted",
    422: "The input could not be processed (quarantined, reprocessable)",
    412: "If-Match names a version that is no longer the current one",
}
# which errors each kind of route answers, besides 400, 405 and 406 that any can give
_ROUTE_ERRORS: dict[str, tuple[int, ...]] = {
    "fhir_read": (404, 410),
    "fhir_vread": (404,),
    "fhir_history": (404,),
    "fhir_history_type": (404,),
    "fhir_search": (404,),
    "fhir_search_post": (404,),
    "fhir_everything": (404, 410),
    "fhir_document": (404, 410),
    "fhir_validate": (404, 413, 415),
    "referral_task_put": (403, 409, 412, 422),
    "referral_task_patch": (403, 404, 409, 412, 422),
}
# the routes outside /fhir (JSON only; no content negotiation there)
_PATH_ERRORS: dict[str, tuple[int, ...]] = {
    "/ingest": (400, 409, 413, 422),
    "/messages": (400,),
    "/messages/{message_id}": (404,),
    "/messages/{message_id}/raw": (404, 409),
    "/messages/{message_id}/reprocess": (404, 409, 422),
    "/messages/reprocess": (400,),
    "/deliveries": (400,),
    "/deliveries/{delivery_id}": (404,),
    "/deliveries/{delivery_id}/replay": (404, 409),
    "/deliveries/replay": (400,),
    "/referrals/ledger": (400,),
    "/referrals/incomplete": (400,),
    "/referrals/analysis": (400,),
    "/referrals/worklist": (400,),
    "/referrals/{task_id}/follow-up": (400, 404, 409),
}


def install_openapi(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, routes=app.routes, description=DESCRIPTION
            )
            app.openapi_schema = corrected(document, _route_names(routers))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


DESCRIPTION = (
    "FHIR R4 read API over what the adapter produced, ingest of hospital messages and "
    "delivery status. Every error is an OperationOutcome. See docs/api.md."
)


def _route_names(routers: Sequence[APIRouter]) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {}
    for route in (route for router in routers for route in router.routes):
        for method in getattr(route, "methods", None) or ():
            names[(getattr(route, "path", ""), method.lower())] = getattr(route, "name", "")
    return names


def corrected(document: dict[str, Any], names: dict[tuple[str, str], str]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    paths: dict[str, Any] = document.setdefault("paths", {})
    outcome = _outcome_schema(document)
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if responses.get("422", {}).get("description") == "Validation Error":
                del responses["422"]  # FastAPI's own; the API answers such input with 400
            name = names.get((path, method), "")
            if path.startswith("/fhir"):
                _fhir_operation(operation, name, outcome)
            if name in RULES and RULES[name].limit != "public":
                operation["security"] = [{"bearer": []}]
                for code in (401, 403):
                    responses.setdefault(
                        str(code),
                        {
                            "description": ERRORS[code],
                            "content": {FHIR_MEDIA[0]: {"schema": outcome}},
                        },
                    )
            for code in _PATH_ERRORS.get(path, ()):
                responses.setdefault(
                    str(code),
                    {
                        "description": ERRORS[code],
                        "content": {FHIR_MEDIA[0]: {"schema": outcome}},
                    },
                )
    document.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "POST /auth/token (client credentials); docs/security.md",
    }
    generic = paths.pop("/fhir/{resource_type}", None)
    if generic is not None and "get" in generic:
        for rtype in SUPPORTED_TYPES:
            paths[f"/fhir/{rtype}"] = {"get": _search_of(rtype, generic["get"])}
    if "/metrics" in paths:
        for operation in paths["/metrics"].values():
            operation["responses"]["200"]["content"] = {
                "text/plain; version=0.0.4": {"schema": {"type": "string"}}
            }
    return document


def _outcome_schema(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["OperationOutcome"] = {
        "type": "object",
        "description": "FHIR R4 OperationOutcome: issue[].severity, code, diagnostics, location",
        "properties": {
            "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
            "issue": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["resourceType", "issue"],
    }
    schemas.setdefault(
        "FhirResource",
        {"type": "object", "description": "A FHIR R4 resource (a Bundle for searches)"},
    )
    return {"$ref": "#/components/schemas/OperationOutcome"}


def _fhir_operation(operation: dict[str, Any], name: str, outcome: dict[str, Any]) -> None:
    responses = operation["responses"]
    ok = responses.get("200")
    if ok is not None:
        schema = {"$ref": "#/components/schemas/FhirResource"}
        ok["content"] = {media: {"schema": schema} for media in FHIR_MEDIA}
    if name in ("fhir_read", "fhir_vread"):
        responses["304"] = {"description": "Not modified (If-None-Match / If-Modified-Since)"}
    for code in sorted({400, 405, 406, *_ROUTE_ERRORS.get(name, ())}):
        responses[str(code)] = {
            "description": ERRORS[code],
            "content": {media: {"schema": outcome} for media in FHIR_MEDIA},
        }
    parameters = operation.setdefault("parameters", [])
    known = {p.get("name") for p in parameters}
    read = READ_PARAMS if name in ("fhir_read", "fhir_vread") else {}
    for pname, text in {**COMMON_PARAMS, **read}.items():
        if pname not in known:
            parameters.append(_query(pname, text))


def _search_of(rtype: str, generic: dict[str, Any]) -> dict[str, Any]:
    operation = copy.deepcopy(generic)
    operation["summary"] = f"Search {rtype}"
    operation["operationId"] = f"search_{rtype}"
    params = [p for p in operation.get("parameters", []) if p.get("in") != "path"]
    for p in sorted(RESOURCES[rtype].params.values(), key=lambda p: p.name):
        text = p.documentation or f"{p.type} parameter on {' | '.join(p.paths)}"
        params.append(_query(p.name, f"{p.type}: {text}"))
    params += [_query(name, text) for name, text in RESULT_PARAMS.items()]
    operation["parameters"] = params
    return operation


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }
