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
from adapter.mapping.expressions import Call, Expr, Literal, Path, Var
from adapter.mapping.functions import FUNCTIONS
from adapter.mapping.nodes import (
    DatatypeTemplate,
    DictNode,
    Each,
    FirstOf,
    Gate,
    ListNode,
    ResourceTemplate,
)
from adapter.mapping.terminology import ConceptMap, Target
from adapter.mapping.values import is_empty, is_position_without_text, location, text

# -- evaluation ------------------------------------------------------------------------------


class SourceAdapter(Protocol):
    """What the engine needs of a source format (each format module has one)."""

    def resolve(self, path: Any, scope: Any) -> Any:
        """The value a compiled path reaches from ``scope`` (first match), read-recorded."""
        ...

    def peek(self, path: Any, scope: Any) -> str:
        """The text a compiled path reaches from ``scope``, not recorded as read (``first``
        compares an alternative it did not take with the value it took)."""
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

    def lookup(self, table: str, value: Any, *, report: bool = True) -> Target | None:
        """The target of a code in a concept map; what an unknown code gives and whether it
        is reported is the table's own rule (``ConceptMap.translate``), reported here at the
        code's location."""
        cmap = self.state.concept_maps.get(table)
        if cmap is None:  # the loader checks names; this is a guard for datatype arguments
            self.error(f"no concept map named {table!r}", location(value))
            return None
        code = text(value).strip()
        if not code:
            return None
        target, unmapped = cmap.translate(code, report=report)
        if unmapped is not None:
            self.issue(unmapped.severity, "code-invalid", unmapped.message, location(value))
        return target

    def apply_datatype(self, name: str, args: list[Any]) -> Any:
        template = self.state.datatypes.get(name)
        if template is None:
            self.error(f"no datatype template named {name!r}", None)
            return None
        variables = dict(self.vars)
        for param, arg in zip(template.params, args, strict=False):
            variables[param] = arg
        child = Evaluation(self.state, self.scope, variables)
        for let_name, let_node in template.lets:
            variables[let_name] = child.let_value(let_node)
        return child.build(template.body)

    # expressions
    def expr(self, node: Expr) -> Any:
        kind = type(node)
        if kind is Literal:
            return node.value  # type: ignore[union-attr]
        if kind is Path:
            return self.state.source.resolve(node.compiled, self.scope)  # type: ignore[union-attr]
        if kind is Var:
            return self._var(node)  # type: ignore[arg-type]
        if kind is Call:
            name = node.name  # type: ignore[union-attr]
            lazy = _LAZY.get(name)
            if lazy is not None:
                return lazy(self, node.args)  # type: ignore[union-attr]
            return FUNCTIONS[name](self, *[self.expr(arg) for arg in node.args])  # type: ignore[union-attr]
        raise TypeError(f"not an expression: {node!r}")

    def _var(self, node: Var) -> Any:
        value = self.vars.get(node.name)
        for part in node.path:
            if value is None:
                return None
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list):
                value = (
                    value[int(part) - 1] if part.isdigit() and 0 < int(part) <= len(value) else None
                )
            elif hasattr(value, "child") and part.isdigit():
                value = value.child(int(part))
            else:
                value = getattr(value, part, None)
        return value

    def let_value(self, node: Any) -> Any:
        """A ``let`` value: expressions keep their source positions, so later transforms can
        still report issues at the right location; templates are built to plain data."""
        if isinstance(node, Path | Var | Call):
            return self.expr(node)
        if isinstance(node, Each) and isinstance(node.emit, Path | Var | Call):
            items = []
            for item, scope in self.items_of(node.target):
                child = self._item(node, item, scope)
                if node.cond is not None and not truthy(child.expr(node.cond)):
                    continue
                value = child.expr(node.emit)
                if not is_empty(value) and truthy(value):
                    items.append(value)
            return items or None
        return self.build(node)

    # template building
    def build(self, node: Any) -> Any:
        builder = _BUILDERS.get(type(node))
        return builder(self, node) if builder is not None else node

    def _build_expr(self, node: Expr) -> Any:
        value = _materialize(self.expr(node))
        if is_position_without_text(value):
            where = value.location() if callable(getattr(value, "location", None)) else None
            self.error(
                f"{where or 'this path'} is a whole segment, not a value: name a field "
                f"(e.g. {getattr(value, 'name', 'PID')}-3)",
                where,
            )
            return None
        return value

    def _build_list(self, node: ListNode) -> list[Any] | None:
        out: list[Any] = []
        for item in node.items:
            built = self.build(item)
            if built is None:
                continue
            if type(item) is Each and isinstance(built, list):
                out.extend(built)
            elif not is_empty(built):
                out.append(built)
        return out or None

    def _build_gate(self, node: Gate) -> Any:
        return self.build(node.body) if truthy(self.expr(node.cond)) else None

    def _build_first_of(self, node: FirstOf) -> Any:
        for option in node.options:
            built = self.build(option)
            if not is_empty(built):
                return built
        return None

    def _build_dict(self, node: DictNode) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        has_value = False
        for key, item in node.items:
            built = self.build(item)
            if built is None or built == "" or built == [] or built == {}:
                continue
            out[key] = built
            # literals, also nested in dicts and lists without expressions, are not values
            if type(item) is not Literal and getattr(item, "dynamic", True):
                has_value = True
        if node.dynamic and not has_value:
            return None
        return out or None

    def _build_each(self, node: Each) -> list[Any] | None:
        out: list[Any] = []
        for item, scope in self.items_of(node.target):
            child = self._item(node, item, scope)
            if node.cond is not None and not truthy(child.expr(node.cond)):
                continue
            built = child.build(node.emit)
            if not is_empty(built):
                out.append(built)
        return out or None

    def _item(self, node: Each, item: Any, scope: Any) -> Evaluation:
        """The evaluation of one ``each`` item: its name bound, then its own ``let`` values."""
        child = Evaluation(self.state, scope, {**self.vars, node.name: item})
        for let_name, let_node in node.lets:
            child.vars[let_name] = child.let_value(let_node)
        return child

    def items_of(self, target: Any) -> list[tuple[Any, Any]]:
        """(item, scope) pairs for ``each``: a group / segment name or an expression."""
        source = self.state.source
        if isinstance(target, str):
            return [(scope, scope) for scope in source.iterate_name(target, self.scope)]
        if isinstance(target, Path):
            return source.iterate_path(target.compiled, self.scope)
        value = self.expr(target)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        return [(item, source.scope_for(item, self.scope)) for item in items if not is_empty(item)]


def _lazy_first(ev: Evaluation, args: tuple[Expr, ...]) -> Any:
    for position, arg in enumerate(args):
        value = ev.expr(arg)
        if not is_empty(value) and truthy(value):
            _read_alternatives(ev, args[position + 1 :], text(value).strip())
            return value
    return None


def _read_alternatives(ev: Evaluation, rest: tuple[Expr, ...], chosen: str) -> None:
    """The alternatives ``first`` did not take, for the unread report (decision 0016): a
    path there (also inside a call: ``first(OBX-5, text(OBX-7))``) that is empty or gives
    the value taken lost nothing and counts as read; one with another value is left
    unread, so ``first(OBR-7, OBR-8)`` with two different times lists OBR-8 unless another
    rule reads it."""
    source = ev.state.source
    for arg in rest:
        for path in _paths_in(arg):
            other = source.peek(path.compiled, ev.scope).strip()
            if not other or other == chosen:
                source.resolve(path.compiled, ev.scope)


def _paths_in(node: Expr) -> list[Path]:
    if type(node) is Path:
        return [node]  # type: ignore[list-item]
    if type(node) is Call:
        return [p for arg in node.args for p in _paths_in(arg)]  # type: ignore[union-attr]
    return []


def _lazy_when(ev: Evaluation, args: tuple[Expr, ...]) -> Any:
    if len(args) != 2:
        ev.error("when() takes a condition and a value", None)
        return None
    return ev.expr(args[1]) if truthy(ev.expr(args[0])) else None


def _lazy_all(ev: Evaluation, args: tuple[Expr, ...]) -> bool:
    return all(truthy(ev.expr(arg)) for arg in args)


def _lazy_any(ev: Evaluation, args: tuple[Expr, ...]) -> bool:
    return any(truthy(ev.expr(arg)) for arg in args)


# evaluated argument by argument, so a value that is not needed is never converted (and
# cannot report an error about a branch that was not taken)
_LAZY = {"first": _lazy_first, "when": _lazy_when, "all": _lazy_all, "any": _lazy_any}


_BUILDERS: dict[type, Callable[[Evaluation, Any], Any]] = {
    Literal: lambda ev, node: node.value,
    Path: Evaluation._build_expr,
    Var: Evaluation._build_expr,
    Call: Evaluation._build_expr,
    DictNode: Evaluation._build_dict,
    ListNode: Evaluation._build_list,
    Gate: Evaluation._build_gate,
    FirstOf: Evaluation._build_first_of,
    Each: Evaluation._build_each,
}


def _materialize(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | dict):
        return value
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, list):
        items = [_materialize(v) for v in value]
        return [v for v in items if not is_empty(v)] or None
    as_text = getattr(value, "text", None)
    if as_text is not None:
        return as_text.strip() or None
    return value


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return bool(value.strip())
    return not is_empty(value) and (getattr(value, "text", "x") or "").strip() != ""
