"""Helpers for the mapping unit tests: tiny mapping folders written to tmp_path, tiny
HL7 v2 messages, a translation without the pipeline, an Evaluation to call transforms."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from adapter.errors import Issue
from adapter.hl7v2 import Message, parse_hl7v2
from adapter.mapping import hl7v2_paths as v2
from adapter.mapping.evaluation import Evaluation, TranslationState
from adapter.mapping.formats import FORMATS
from adapter.mapping.formats.hl7v2 import Hl7v2Source
from adapter.mapping.loader import MappingSet, load_mapping_set
from adapter.mapping.terminology import ConceptMap, concept_map_from_data
from adapter.mapping.translation import Translation, TranslationContext

SHANGHAI = ZoneInfo("Asia/Shanghai")
NAMESPACE = "https://example.cn/sid/test-lab"

# A small message mapping: the ORU structure, one resource per OBX made by a test template.
MESSAGE = """\
version: 1
kind: message
format: hl7v2
match:
  message_type: [ORU^R01]
structure:
  - MSH!
  - group: PATIENT_RESULT
    repeat: true
    required: true
    items:
      - PID!
      - NTE*
      - PV1
      - group: ORDER_OBSERVATION
        repeat: true
        required: true
        items:
          - ORC
          - OBR!
          - NTE*
          - group: OBSERVATION
            repeat: true
            items: [OBX!, NTE*]
          - group: SPECIMEN
            repeat: true
            items: [SPM!, OBX*]
ignore: [MSH, PV1]
produce:
  - each: PATIENT_RESULT
    do:
      - each: ORDER_OBSERVATION
        do:
          - each: OBSERVATION
            do:
              - resource: thing
"""

# the template the message above makes: every test gives its own body
THING = """\
version: 1
kind: resource
resourceType: Basic
id_from:
  - [=OBR-3, =OBX-3.1]
body:
{body}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: YAML text}`` under ``root`` (text is dedented)."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


def mapping_root(
    root: Path, files: dict[str, str] | None = None, *, body: str | None = None
) -> Path:
    """A mapping root with ``_shared/hl7v2/messages/oru.yaml`` (MESSAGE) and, when ``body``
    is given, the template ``thing`` with that body (indented YAML below ``body:``)."""
    base = {"_shared/hl7v2/messages/oru.yaml": MESSAGE}
    if body is not None:
        indented = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
        base["_shared/hl7v2/resources/thing.yaml"] = THING.format(body=indented)
    return write(root, {**base, **(files or {})})


def hl7(*segments: str) -> Message:
    """A message from segment lines; MSH is added when the first line is not one."""
    lines = list(segments)
    if not lines or not lines[0].startswith("MSH"):
        lines.insert(0, "MSH|^~\\&|LIS|LAB|HIS|HOSP|20261120083000||ORU^R01|MSG1|P|2.5.1")
    return parse_hl7v2("\r".join(lines).encode("utf-8"))


def context(variables: dict[str, Any] | None = None) -> TranslationContext:
    facility = {
        "id": "test-lab",
        "name": "测试检验科",
        "identifiers": [{"system": "urn:oid:2.16.156.10011.1.5", "value": "123456789"}],
    }
    return TranslationContext(
        facility_system=lambda kind: f"{NAMESPACE}/{kind}",
        variables={"facility": facility, **(variables or {})},
        timezone=SHANGHAI,
    )


def translate(mappings: MappingSet, message: Message, **variables: Any) -> Translation:
    return FORMATS["hl7v2"].translate(mappings, message, context(variables))


def load(root: Path, folder: str = "_shared", **kwargs: Any) -> MappingSet:
    return load_mapping_set(root, folder, **kwargs)


def of_type(translation: Translation, resource_type: str) -> list[dict[str, Any]]:
    return [r for r in translation.resources if r["resourceType"] == resource_type]


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity in ("error", "fatal")]


def table(name: str, data: dict[str, Any]) -> ConceptMap:
    return concept_map_from_data(name, f"{name}.yaml", {"version": 1, **data})


def evaluation(
    message: Message | None = None, concept_maps: dict[str, ConceptMap] | None = None
) -> Evaluation:
    """An Evaluation whose scope is the whole message (every segment at the top), to call
    transforms directly with source positions (``node(...)``)."""
    message = message or hl7()
    root = v2.Group(v2.GroupSpec("MESSAGE", []), None, segments=list(message.segments))
    state = TranslationState(
        source=Hl7v2Source(v2.ReadTracker()),
        concept_maps=concept_maps or {},
        datatypes={},
        templates={},
        timezone=SHANGHAI,
        facility_system=lambda kind: f"{NAMESPACE}/{kind}",
    )
    return Evaluation(state, root, {})


def node(value: str, segment: str = "OBX", field: int = 5) -> v2.Node:
    """``value`` as field ``field`` of a one-off segment: a source position with a location."""
    message = hl7(f"{segment}{'|' * field}{value}")
    seg = message.segments_named(segment)[0]
    return v2.Node(seg, field)
