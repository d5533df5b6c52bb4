"""Compiled mappings: what the compiler (``compiler.py``) makes of the YAML files and the
engine (``evaluation.py``, ``engine.py``) walks. Plain data, no behaviour.

* template nodes: ``DictNode``, ``ListNode``, ``Each``, ``FirstOf``, ``Gate`` (expressions
  are ``adapter.mapping.expressions`` nodes);
* templates: ``ResourceTemplate`` (one resource), ``DatatypeTemplate`` (``apply()``);
* steps of a message mapping: ``LetStep``, ``EachStep``, ``ResourceStep``, ``BundleStep``;
* ``MessageMapping``: one message mapping, its steps and what selects it;
* ``MappingSet``: everything one source system's documents are translated with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapter.mapping.expressions import Call, Expr, Literal, Path, Var
from adapter.mapping.terminology import ConceptMap

# -- template nodes -------------------------------------------------------------------------


@dataclass(slots=True)
class Each:
    """``{each: <expr or group>, as: name, let: {...}, if: <expr>, emit: <template>}``: one
    value per item; ``let`` values are worked out per item, before ``if`` and ``emit``."""

    target: Any  # Expr, or a str naming a group / segment
    name: str
    cond: Expr | None
    emit: Any
    line: int | None = None
    lets: list[tuple[str, Any]] = field(default_factory=list)
    # closures made once on first use (adapter.mapping.closures); not part of the value
    _value: Any = field(default=None, init=False, repr=False, compare=False)
    _build: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class FirstOf:
    options: list[Any]
    # closures made once on first use (adapter.mapping.closures); not part of the value
    _value: Any = field(default=None, init=False, repr=False, compare=False)
    _build: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class Gate:
    """A dict with ``if:``: the dict exists only when the condition holds."""

    cond: Expr
    body: Any
    # closures made once on first use (adapter.mapping.closures); not part of the value
    _value: Any = field(default=None, init=False, repr=False, compare=False)
    _build: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class DictNode:
    items: list[tuple[str, Any]]
    dynamic: bool  # has any expression below it; a dynamic dict with no values is dropped
    # closures made once on first use (adapter.mapping.closures); not part of the value
    _value: Any = field(default=None, init=False, repr=False, compare=False)
    _build: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class ListNode:
    items: list[Any]
    dynamic: bool = True  # has any expression below it (set by the compiler)
    # closures made once on first use (adapter.mapping.closures); not part of the value
    _value: Any = field(default=None, init=False, repr=False, compare=False)
    _build: Any = field(default=None, init=False, repr=False, compare=False)


def is_dynamic(node: Any) -> bool:
    """Whether anything below ``node`` is read from the document or the variables."""
    if isinstance(node, Literal):
        return False
    if isinstance(node, Path | Var | Call | Each | Gate | FirstOf):
        return True
    if isinstance(node, DictNode | ListNode):
        return node.dynamic
    return False


# -- templates ------------------------------------------------------------------------------


@dataclass(slots=True)
class ResourceTemplate:
    name: str
    file: str
    resource_type: str
    lets: list[tuple[str, Any]]
    id_from: list[list[Any]]
    required: list[str]
    # (if, reason, severity, at): not made when ``if`` holds; an issue of that severity
    # (information, or warning when something is lost) at ``at``'s place, else the group
    skip: tuple[Expr, str, str, Expr | None] | None
    body: DictNode
    # (if, severity, message, at): ``at`` is an expression whose location the issue names
    checks: list[tuple[Expr, str, str, Expr | None]] = field(default_factory=list)
    # what storing does when the resource is already stored (adapter/pipeline/merge.py)
    on_conflict: dict[str, Any] | None = None
    # ((name, closure), ...) of ``lets``: made once (adapter.mapping.closures.lets_of)
    _lets: Any = field(default=None, init=False, repr=False, compare=False)
    # per ``id_from`` alternative, a function building its parts (closures.id_parts_of)
    _ids: Any = field(default=None, init=False, repr=False, compare=False)
    # ``checks`` with each condition's closure: made once (closures.checks_of, decision 0144)
    _checks: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class DatatypeTemplate:
    name: str
    file: str
    params: list[str]
    lets: list[tuple[str, Any]]
    body: Any
    # (evaluation, arguments) -> value: made once (adapter.mapping.closures.datatype_fn)
    _apply: Any = field(default=None, init=False, repr=False, compare=False)


# -- steps of a message mapping ---------------------------------------------------------------


@dataclass(slots=True)
class ResourceStep:
    template: str
    bind: str | None = None
    collect: str | None = None
    cond: Expr | None = None


@dataclass(slots=True)
class EachStep:
    target: Any  # a group or segment name, or an expression
    steps: list[Any]
    cond: Expr | None = None
    # the ``collect`` names of its steps (engine.run_steps), found once
    _collects: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class BundleStep:
    """A Bundle (from a template) whose entries are every resource made so far."""

    template: str
    first: str | None = None  # the resource type that must be entry[0] (Composition)
    cond: Expr | None = None


@dataclass(slots=True)
class LetStep:
    name: str
    value: Any


@dataclass(slots=True)
class MessageMapping:
    name: str
    file: str
    version: int
    format: str
    match: Any  # the format's matcher: ``.matches(document)``, ``.describe()``
    structure: Any  # what the format makes of ``structure:`` (HL7 v2 groups), else None
    ignore: list[Any]  # ``ignore:`` entries as the format compiled them
    clinical: Any  # ``clinical:`` as the format compiled it (or the format's default)
    steps: list[Any]
    # the format's path to a document the message carries encoded (``embedded:``), else None
    embedded: Any = None

    @property
    def label(self) -> str:
        """``<file>@v<version>``: which mapping a translation used."""
        return f"{self.file}@v{self.version}"


# -- a loaded set ---------------------------------------------------------------------------


@dataclass(slots=True)
class FormatMappings:
    """The files of one format folder (the ``common/`` templates and datatypes included)."""

    messages: dict[str, MessageMapping] = field(default_factory=dict)
    templates: dict[str, ResourceTemplate] = field(default_factory=dict)
    datatypes: dict[str, DatatypeTemplate] = field(default_factory=dict)
    # message mapping name -> (the mapping, the variables it can read or None), found once
    # (adapter.mapping.context_reads, decision 0144)
    _reads: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(slots=True)
class MappingSet:
    """Everything one source system's documents are translated with."""

    folder: str
    formats: dict[str, FormatMappings]
    concept_maps: dict[str, ConceptMap]
    fingerprint: str  # changes whenever any file of the set changes
    files: dict[str, int]  # relative path -> version

    def message_for(self, fmt: str, message_type: str) -> MessageMapping | None:
        """The first message mapping of ``fmt`` whose ``match:`` names ``message_type``
        (formats that select by message type: HL7 v2 MSH-9)."""
        bucket = self.formats.get(fmt)
        for mapping in bucket.messages.values() if bucket is not None else ():
            if message_type in getattr(mapping.match, "types", ()):
                return mapping
        return None
