"""JSON Schemas of the mapping files, one per ``kind``; checked at load time.

The schemas are deliberately strict (no unknown keys at the top level), so a typo in a
mapping file is an error with its file and line, not a rule that silently does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_VERSION = {"type": "integer", "minimum": 1}
_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"}
SCALAR = {"type": ["string", "number", "boolean"]}

_STEP: dict[str, Any] = {
    "type": "object",
    "oneOf": [
        {
            "required": ["each", "do"],
            "properties": {
                "each": {"type": "string"},
                "if": {"type": "string"},
                "do": {"type": "array", "items": {"$ref": "#/definitions/step"}},
                "description": {"type": "string"},
            },
            "additionalProperties": False,
        },
        {
            "required": ["resource"],
            "properties": {
                "resource": _NAME,
                "bind": _NAME,
                "collect": _NAME,
                "if": {"type": "string"},
                "description": {"type": "string"},
            },
            "additionalProperties": False,
        },
        {
            # a Bundle of every resource made so far (docs/mapping-language.md section 11)
            "required": ["bundle"],
            "properties": {
                "bundle": _NAME,
                "first": {"type": "string", "pattern": r"^[A-Z][A-Za-z]+$"},
                "if": {"type": "string"},
                "description": {"type": "string"},
            },
            "additionalProperties": False,
        },
        {
            "required": ["let"],
            "properties": {"let": {"type": "object"}},
            "additionalProperties": False,
        },
    ],
}

_COMMON = {
    "version": _VERSION,
    "kind": {"type": "string"},
    "extends": {"const": "_shared"},
    "description": {"type": "string"},
}

STRINGS = {"type": "array", "items": {"type": "string"}, "minItems": 1}


def message_schema(match: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The schema of message mappings, given what ``match:`` may say in each format
    (``SourceFormat.match_schema``, docs/mapping-formats.md)."""
    return {
        "type": "object",
        "required": ["version", "kind", "format", "match", "produce"],
        "properties": {
            **_COMMON,
            "format": {"enum": list(match)},
            "match": {"type": "object"},
            "structure": {"type": "array"},  # hl7v2
            "namespaces": {  # xml: prefix -> namespace URI, for every xml file of the set
                "type": "object",
                "propertyNames": {"pattern": r"^[^\W\d][\w.\-]*$"},
                "additionalProperties": {"type": "string", "minLength": 1},
            },
            # xml: the message carries the document to translate, encoded, at this path
            # (an HL7 v3 document registration: the CDA document in base64)
            "embedded": {
                "type": "object",
                "required": ["xpath", "encoding"],
                "properties": {"xpath": {"type": "string"}, "encoding": {"enum": ["base64"]}},
                "additionalProperties": False,
            },
            "ignore": {"type": "array", "items": {"type": "string"}},
            # what, when no rule reads it, is a warning (the format's default when absent)
            "clinical": {"type": "array", "items": {"type": "string"}},
            "produce": {"type": "array", "items": {"$ref": "#/definitions/step"}},
        },
        "additionalProperties": False,
        "allOf": [
            {
                "if": {"required": ["format"], "properties": {"format": {"const": fmt}}},
                "then": {"properties": {"match": {**spec, "additionalProperties": False}}},
            }
            for fmt, spec in match.items()
        ],
        "definitions": {"step": _STEP},
    }


RESOURCE = {
    "type": "object",
    "required": ["version", "kind", "resourceType", "id_from", "body"],
    "properties": {
        **_COMMON,
        "resourceType": {"type": "string", "pattern": r"^[A-Z][A-Za-z]+$"},
        "let": {"type": "object"},
        "id_from": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "array", "minItems": 1, "items": SCALAR},
        },
        "required": {"type": "array", "items": {"type": "string"}},
        "skip": {
            "type": "object",
            "required": ["if", "reason"],
            "properties": {
                "if": {"type": "string"},
                "reason": {"type": "string"},
                "severity": {"enum": ["information", "warning"]},
                "at": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["if", "severity", "message"],
                "properties": {
                    "if": {"type": "string"},
                    "severity": {"enum": ["error", "warning", "information"]},
                    "message": {"type": "string"},
                    "at": {"type": "string"},
                },
                "additionalProperties": False,
            },
        },
        "body": {"type": "object"},
        # what storing does when this resource is already stored (a Patient known to several
        # facilities, another copy of one document): adapter/pipeline/merge.py; and whether
        # the same resource made twice in one document keeps the first (in_message)
        "on_conflict": {
            "type": "object",
            "required": ["policy"],
            "properties": {
                "policy": {
                    "enum": [
                        "replace",
                        "update-given",
                        "keep-first-and-warn",
                        "keep-newer-and-warn",
                    ]
                },
                "in_message": {"enum": ["error", "first-wins"]},
                "by": {"type": "string", "minLength": 1},  # keep-newer: the dateTime compared
                "compare": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "accumulate": {"type": "array", "items": {"type": "string", "minLength": 1}},
            },
            "additionalProperties": False,
            "if": {"properties": {"policy": {"const": "keep-newer-and-warn"}}},
            "then": {"required": ["by"]},
        },
    },
    "additionalProperties": False,
}

DATATYPE = {
    "type": "object",
    "required": ["version", "kind", "body"],
    "properties": {
        **_COMMON,
        "params": {"type": "array", "items": _NAME},
        "let": {"type": "object"},
        "body": {},
    },
    "additionalProperties": False,
}

_TARGET = {
    "oneOf": [
        {"type": ["string", "number"]},
        {
            "type": "object",
            "required": ["code"],
            "properties": {
                "code": {"type": ["string", "number"]},
                "display": {"type": "string"},
                "system": {"type": "string"},
            },
            "additionalProperties": False,
        },
    ]
}

CONCEPT_MAP = {
    "type": "object",
    "required": ["version", "kind", "map", "unmapped"],
    "properties": {
        **_COMMON,
        "source": {"type": "string"},
        "target_system": {"type": "string"},
        "case_sensitive": {"type": "boolean"},
        "map": {"type": "object", "additionalProperties": _TARGET},
        "unmapped": {
            "type": "object",
            "required": ["action"],
            "properties": {
                "action": {"enum": ["keep", "fixed", "omit", "error"]},
                "code": {"type": ["string", "number"]},
                "display": {"type": "string"},
                "system": {"type": "string"},
                "report": {"enum": ["none", "information", "warning"]},
                "hint": {"type": "string"},
            },
            "additionalProperties": False,
            "if": {"properties": {"action": {"const": "fixed"}}},
            "then": {"required": ["code"]},
        },
    },
    "additionalProperties": False,
}


def mapping_schemas(match: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The schema of each ``kind`` of file, for a set read by formats whose ``match:`` may say
    ``match`` (format name -> schema of its ``match:``)."""
    return {
        "message": message_schema(match),
        "resource": RESOURCE,
        "datatype": DATATYPE,
        "concept-map": CONCEPT_MAP,
    }
