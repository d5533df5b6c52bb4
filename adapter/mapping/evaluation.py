"""Evaluating compiled templates in one scope of one document: expressions, variables,
functions, datatypes, and building a template into plain FHIR JSON (empty values dropped).

``Evaluation`` is the context every function receives (``FunctionContext``); the format
specifics (how a path is resolved, what a group is) come from the format's
``SourceAdapter``. Making resources from templates and running a message mapping's steps
is ``adapter.mapping.engine``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, Protocol

from adapter.errors import Issue
from adapter.mapping.closures import build_fn, datatype_fn, expr_fn, items_fn, let_fn, truthy
from adapter.mapping.expressions import Expr
from adapter.mapping.nodes import DatatypeTemplate, ResourceTemplate
from adapter.mapping.terminology import ConceptMap, Target
from adapter.mapping.values import TEXT_DECIDES, location, text

__all__ = ["Evaluation", "SourceAdapter", "TranslationState", "truthy"]

# -- evaluation ------------------------------------------------------------------------------


class SourceAdapter(Protocol):
    """What the engine needs of a source format (each format module has one). A source may
    also have ``resolve_text(path, scope)``: ``resolve``, with a value that has text given
    as that text, read as reading it would (HL7 v2: no ``Node`` for a value built into a
    resource; adapter.mapping.closures)."""

    def resolve(self, path: Any, scope: Any) -> Any:
        """The value a compiled path reaches from ``scope`` (first match), read-recorded."""
        ...

    def peek(self, path: Any, scope: Any) -> str:
        """The text a compiled path reaches from ``scope``, not recorded as read (``first``
        compares an alternative it did not take with the value it took)."""
        ...

    def read_alternatives(self, paths: Any, scope: Any, chosen: str) -> None:
        """``first``'s alternatives not taken: each path read (as ``resolve`` reads it) when
        its text (``peek``) is empty or ``chosen``, left unread when it holds another value
        (the generated ``first`` calls it once for all of them, decision 0144)."""
        ...

    def iterate_path(self, path: Any, scope: Any) -> list[tuple[Any, Any]]:
        """(item, scope) pairs: HL7 v2 field repetitions keep the scope; an XML element, a
        JSON array element becomes the scope its relative paths start from."""
        ...

    def scope_for(self, item: Any, scope: Any) -> Any:
        """The scope of an ``each`` item that came from a variable or a function."""
        ...

    def iterate_name(self, name: str, scope: Any) -> list[Any]:
        """Group instances or segments called ``name`` directly in ``scope``, as scopes."""
        ...

    def describe(self, scope: Any) -> str | None:
        """A location for issues about a whole scope (``OBX[3]``)."""
        ...


@dataclass(slots=True)
class TranslationState:
    source: SourceAdapter
    concept_maps: dict[str, ConceptMap]
    datatypes: dict[str, DatatypeTemplate]
    templates: dict[str, ResourceTemplate]
    timezone: tzinfo
    facility_system: Callable[[str], str]
    issues: list[Issue] = field(default_factory=list)
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    produced_from: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # (type, id) -> the on_conflict policy of the template that made it
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _reported: set[tuple[str, str, str]] = field(default_factory=set)
    errors_met: int = 0  # errors met so far, also those listed once already


class Evaluation:
    """One scope of evaluation: where paths are resolved and which variables are bound."""

    __slots__ = ("scope", "state", "vars")

    def __init__(self, state: TranslationState, scope: Any, variables: dict[str, Any]) -> None:
        self.state = state
        self.scope = scope
        self.vars = variables

    # services for transforms
    @property
    def timezone(self) -> tzinfo:
        return self.state.timezone

    def error(self, message: str, where: str | None, code: str = "processing") -> None:
        self.issue("error", code, message, where)

    def warning(self, message: str, where: str | None, code: str = "processing") -> None:
        self.issue("warning", code, message, where)

    def information(self, message: str, where: str | None, code: str = "informational") -> None:
        self.issue("information", code, message, where)

    def issue(self, severity: str, code: str, message: str, where: str | None) -> None:
        if where is None:
            # a value computed by a function has no position of its own: the issue is
            # about the scope the rule was evaluated in (OBX[3], an element, $.items[2])
            where = self.state.source.describe(self.scope)
        key = (severity, message, where or "")
        if severity == "error":
            self.state.errors_met += 1
        if key in self.state._reported:  # a value read twice is reported once
            return
        self.state._reported.add(key)
        self.state.issues.append(Issue(severity, code, message, location=where))  # type: ignore[arg-type]

    def facility_system(self, kind: str) -> str:
        return self.state.facility_system(kind)

    def lookup(self, table: str, value: Any, report: bool = True) -> Target | None:
        """The target of a code in a concept map; what an unknown code gives and whether it
        is reported is the table's own rule (``ConceptMap.translate``), reported here at the
        code's location. ``report`` by position in the functions called per rule (0144)."""
        cmap = self.state.concept_maps.get(table)
        if cmap is None:  # the loader checks names; this is a guard for datatype arguments
            self.error(f"no concept map named {table!r}", location(value))
            return None
        kind = type(value)  # text(value), its first cases inline (a call per lookup)
        if kind is str:
            code = value.strip()
        elif kind in TEXT_DECIDES:
            code = value.text.strip()
        else:
            code = text(value).strip()
        if not code:
            return None
        target, unmapped = cmap.translate(code, report)
        if unmapped is not None:
            self.issue(unmapped.severity, "code-invalid", unmapped.message, location(value))
        return target

    def apply_datatype(self, name: str, args: list[Any]) -> Any:
        template = self.state.datatypes.get(name)
        if template is None:
            self.error(f"no datatype template named {name!r}", None)
            return None
        return (template._apply or datatype_fn(template))(self, args)  # made by the loader

    # expressions and templates: each node's closures (adapter.mapping.closures), made once
    def expr(self, node: Expr) -> Any:
        return expr_fn(node)(self)

    def let_value(self, node: Any) -> Any:
        """A ``let`` value: expressions keep their source positions, so later transforms can
        still report issues at the right location; templates are built to plain data."""
        return let_fn(node)(self)

    def build(self, node: Any) -> Any:
        return build_fn(node)(self)

    def items_of(self, target: Any) -> list[tuple[Any, Any]]:
        """(item, scope) pairs for ``each``: a group / segment name or an expression."""
        return items_fn(target)(self)
