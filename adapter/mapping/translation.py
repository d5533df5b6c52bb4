"""What translating one document gives (``Translation``), what it may know besides the
document (``TranslationContext``), and the parts every format's translation shares: a fresh
state for the engine, the unread-content issues, the result.

How a format selects its message mapping, walks its document and finds what no rule read
is the format's own (``adapter.mapping.formats``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from adapter.errors import Issue
from adapter.mapping.context_reads import variables_read
from adapter.mapping.evaluation import SourceAdapter, TranslationState
from adapter.mapping.nodes import FormatMappings, MappingSet, MessageMapping

# the pipeline's resource check (FHIR R4 validity, stored lengths), for formats that import
# item by item: check(resources, origins, locate), ``locate`` finding a value in the item
ResourceCheck = Callable[..., list[Issue]]


@dataclass(slots=True)
class Translation:
    resources: list[dict[str, Any]]
    issues: list[Issue]
    mapping: str | None = None  # the message mapping used, "file@version"
    unread: list[str] = field(default_factory=list)  # locations of content no rule read
    # (type, id) -> on_conflict policy of the template that made the resource
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (type, id) -> where in the input it was made from (OBX[3], an XPath, $.items[2], row 4)
    origins: dict[tuple[str, str], str | None] = field(default_factory=dict)

    @property
    def has_errors(self) -> bool:
        return any(i.severity in ("error", "fatal") for i in self.issues)


@dataclass(slots=True)
class TranslationContext:
    """What a translation may know besides the document: the facility and the time zone.

    ``deferred``: context variables worked out only for a message mapping that can read
    them (``@original``: hashing and encoding the whole message), by ``variables_for``."""

    facility_system: Callable[[str], str]
    variables: dict[str, Any]
    timezone: tzinfo
    deferred: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def variables_for(self, bucket: FormatMappings, mapping: MessageMapping) -> dict[str, Any]:
        """A copy of the variables for running ``mapping`` (with ``bucket``'s templates and
        datatypes): a deferred variable the mapping can read is worked out first, once per
        translation (kept in ``variables`` for the next mapping or row, decision 0144)."""
        deferred = self.deferred
        if deferred:
            reads = variables_read(bucket, mapping)
            for name in list(deferred):
                if reads is None or name in reads:
                    self.variables[name] = deferred.pop(name)()
        return dict(self.variables)


def new_state(
    mappings: MappingSet, fmt: str, source: SourceAdapter, context: TranslationContext
) -> TranslationState:
    """The engine's state for one document (or one CSV row) of format ``fmt``."""
    formats = mappings.formats[fmt]
    return TranslationState(
        source=source,
        concept_maps=mappings.concept_maps,
        datatypes=formats.datatypes,
        templates=formats.templates,
        timezone=context.timezone,
        facility_system=context.facility_system,
    )


UNREAD = "not read by any mapping rule"


def unread_issue(where: str, what: str, clinical: bool) -> Issue:
    """``<what> not read by any mapping rule`` at ``where`` (the silent-drop report): a
    warning when the content carries clinical text or a value, else an information
    (structural or administrative leftovers)."""
    severity = "warning" if clinical else "information"
    return Issue(severity, "informational", f"{what} {UNREAD}", location=where)


def result(
    resources: list[dict[str, Any]],
    issues: list[Issue],
    mapping: MessageMapping,
    unread: list[tuple[str, str, bool]],
    policies: dict[tuple[str, str], dict[str, Any]],
    origins: dict[tuple[str, str], str | None],
) -> Translation:
    return Translation(
        resources,
        issues,
        mapping=mapping.label,
        unread=[item[0] for item in unread],
        policies=dict(policies),
        origins=dict(origins),
    )


def has_errors(issues: list[Issue]) -> bool:
    return any(i.severity in ("error", "fatal") for i in issues)
