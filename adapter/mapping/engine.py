"""Evaluating compiled mappings against one source document.

The engine knows nothing of message types, vendors or facilities: it walks the steps of a
message mapping (``each`` group, ``resource`` template), builds each resource from its
template, drops empty elements, checks required elements, derives deterministic ids and
collects located issues. Format specifics (how a path is resolved, what a group is) come
from the format's source module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from adapter.errors import Issue
from adapter.mapping.expressions import Call, Expr, Literal, Path, Var
from adapter.mapping.ids import deterministic_id
from adapter.mapping.terminology import ConceptMap, Target
from adapter.mapping.transforms import (
    FUNCTIONS,
    is_empty,
    is_position_without_text,
    location,
    text,
)

# -- compiled template nodes -----------------------------------------------------------------


@dataclass(slots=True)
class Each:
    """``{each: <expr or group>, as: name, if: <expr>, emit: <template>}``: one value per item."""

    target: Any  # Expr, or a str naming a group / segment
    name: str
    cond: Expr | None
    emit: Any
    line: int | None = None


@dataclass(slots=True)
class FirstOf:
    options: list[Any]


@dataclass(slots=True)
class Gate:
    """A dict with ``if:``: the dict exists only when the condition holds."""

    cond: Expr
    body: Any


@dataclass(slots=True)
class DictNode:
    items: list[tuple[str, Any]]
    dynamic: bool  # has any expression below it; a dynamic dict with no values is dropped


@dataclass(slots=True)
class ListNode:
    items: list[Any]
    dynamic: bool = True  # has any expression below it (set by the loader)


@dataclass(slots=True)
class ResourceTemplate:
    name: str
    file: str
    resource_type: str
    lets: list[tuple[str, Any]]
    id_from: list[list[Any]]
    required: list[str]
    skip: tuple[Expr, str] | None
    body: DictNode
    # (if, severity, message, at): ``at`` is an expression whose location the issue names
    checks: list[tuple[Expr, str, str, Expr | None]] = field(default_factory=list)
    # what storing does when the resource is already stored (adapter/pipeline/merge.py)
    on_conflict: dict[str, Any] | None = None


@dataclass(slots=True)
class DatatypeTemplate:
    name: str
    file: str
    params: list[str]
    lets: list[tuple[str, Any]]
    body: Any


@dataclass(slots=True)
class ResourceStep:
    template: str
    bind: str | None = None
    collect: str | None = None
    cond: Expr | None = None


@dataclass(slots=True)
class EachStep:
    target: str  # a group or segment name
    steps: list[Any]
    cond: Expr | None = None


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


# -- evaluation ------------------------------------------------------------------------------


class SourceAdapter:
    """What the engine needs of a source format (implemented per format)."""

    def resolve(self, path: Any, scope: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def iterate_path(self, path: Any, scope: Any) -> list[tuple[Any, Any]]:  # pragma: no cover
        """(item, scope) pairs: HL7 v2 field repetitions keep the scope; an XML element, a
        JSON array element becomes the scope its relative paths start from."""
        raise NotImplementedError

    def scope_for(self, item: Any, scope: Any) -> Any:  # pragma: no cover
        """The scope of an ``each`` item that came from a variable or a function."""
        raise NotImplementedError

    def iterate_name(self, name: str, scope: Any) -> list[Any]:  # pragma: no cover
        """Group instances or segments called ``name`` directly in ``scope``, as scopes."""
        raise NotImplementedError

    def describe(self, scope: Any) -> str | None:  # pragma: no cover
        """A location for issues about a whole scope (``OBX[3]``)."""
        raise NotImplementedError


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
        self._issue("error", code, message, where)

    def warning(self, message: str, where: str | None, code: str = "processing") -> None:
        self._issue("warning", code, message, where)

    def information(self, message: str, where: str | None, code: str = "informational") -> None:
        self._issue("information", code, message, where)

    def _issue(self, severity: str, code: str, message: str, where: str | None) -> None:
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
        cmap = self.state.concept_maps.get(table)
        if cmap is None:  # the loader checks names; this is a guard for datatype arguments
            self.error(f"no concept map named {table!r}", location(value))
            return None
        code = text(value).strip()
        if not code:
            return None
        target = cmap.lookup(code)
        if target is not None:
            return cmap.with_system(target)
        where = location(value)
        message = f"code {code!r} is not in concept map {table!r}"
        if cmap.action == "error":
            self.error(message, where, code="code-invalid")
            return None
        if report and cmap.report != "none":
            suffix = {"keep": "; kept as is", "fixed": "; default used", "omit": "; left out"}
            text_out = message + suffix[cmap.action]
            if cmap.report == "warning":
                self.warning(text_out, where, code="code-invalid")
            else:
                self.information(text_out, where, code="code-invalid")
        if cmap.action == "keep":
            # the source code as is: not a code of the table's target system
            return Target(code, None, None)
        if cmap.action == "fixed" and cmap.fixed is not None:
            return cmap.with_system(cmap.fixed)
        return None

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
                child = Evaluation(self.state, scope, {**self.vars, node.name: item})
                if node.cond is not None and not _truthy(child.expr(node.cond)):
                    continue
                value = child.expr(node.emit)
                if not is_empty(value) and _truthy(value):
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
        return self.build(node.body) if _truthy(self.expr(node.cond)) else None

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
            child = Evaluation(self.state, scope, {**self.vars, node.name: item})
            if node.cond is not None and not _truthy(child.expr(node.cond)):
                continue
            built = child.build(node.emit)
            if not is_empty(built):
                out.append(built)
        return out or None

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
        if not is_empty(value) and _truthy(value):
            # the alternatives not taken are still read by this rule (for the unread report),
            # also paths inside calls: first(OBX-5, text(OBX-7)) looked at OBX-7 and chose
            for rest in args[position + 1 :]:
                for path in _paths_in(rest):
                    ev.state.source.resolve(path.compiled, ev.scope)
            return value
    return None


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
    return ev.expr(args[1]) if _truthy(ev.expr(args[0])) else None


def _lazy_all(ev: Evaluation, args: tuple[Expr, ...]) -> bool:
    return all(_truthy(ev.expr(arg)) for arg in args)


def _lazy_any(ev: Evaluation, args: tuple[Expr, ...]) -> bool:
    return any(_truthy(ev.expr(arg)) for arg in args)


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


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return bool(value.strip())
    return not is_empty(value) and (getattr(value, "text", "x") or "").strip() != ""


# -- running a message mapping -----------------------------------------------------------------

# the same person or place named twice in one document (or in two rows of one file): the first
# mention wins instead of being an error
FIRST_MENTION_WINS = frozenset({"Patient", "Organization", "Practitioner"})


def run_steps(ev: Evaluation, steps: list[Any]) -> None:
    for step in steps:
        if isinstance(step, LetStep):
            ev.vars[step.name] = ev.let_value(step.value)
        elif isinstance(step, EachStep):
            # a collect list belongs to the enclosing item: it starts empty in each item and
            # gathers what is collected in it (nested items included), so an order's report
            # sees that order's results only; the enclosing scope then sees them all
            names = _collected_names(step.steps)
            for _item, scope in ev.items_of(step.target):
                variables = {**ev.vars, **{name: [] for name in names}}
                child = Evaluation(ev.state, scope, variables)
                if step.cond is not None and not _truthy(child.expr(step.cond)):
                    continue  # ``if`` holds for each item, as in a template's ``each``
                run_steps(child, step.steps)
                for name in names:
                    gathered = variables.get(name)
                    if isinstance(gathered, list) and gathered:
                        into = ev.vars.get(name)
                        if not isinstance(into, list):
                            into = ev.vars[name] = []
                        into.extend(gathered)
        elif isinstance(step, BundleStep):
            if step.cond is None or _truthy(ev.expr(step.cond)):
                make_bundle(ev, step)
        elif isinstance(step, ResourceStep):
            if step.cond is not None and not _truthy(ev.expr(step.cond)):
                continue
            resource = make_resource(ev, ev.state.templates[step.template])
            if step.bind:
                ev.vars[step.bind] = resource
            if step.collect:
                collected = ev.vars.get(step.collect)
                if not isinstance(collected, list):
                    collected = []
                    ev.vars[step.collect] = collected
                if resource is not None:
                    collected.append(resource)


def _collected_names(steps: list[Any]) -> set[str]:
    names: set[str] = set()
    for step in steps:
        if isinstance(step, ResourceStep) and step.collect:
            names.add(step.collect)
        elif isinstance(step, EachStep):
            names |= _collected_names(step.steps)
    return names


def make_resource(ev: Evaluation, template: ResourceTemplate) -> dict[str, Any] | None:
    state = ev.state
    where = state.source.describe(ev.scope)
    # any error while this resource is made (a let, a check, a value) stops it
    errors_before = state.errors_met
    child = Evaluation(state, ev.scope, dict(ev.vars))
    for name, value in template.lets:
        child.vars[name] = child.let_value(value)
    if template.skip is not None and _truthy(child.expr(template.skip[0])):
        child.information(
            f"{template.resource_type} not made from {where}: {template.skip[1]}",
            where,
            code="informational",
        )
        return None
    for condition, severity, message, at in template.checks:
        if _truthy(child.expr(condition)):
            at_location = location(child.expr(at)) if at is not None else None
            child._issue(severity, "business-rule", message, at_location or where)
    resource_id = _resource_id(child, template)
    body = child.build(template.body) or {}
    if resource_id is None:
        child.error(
            f"cannot make a {template.resource_type} id: the business identifiers it is "
            f"made from are empty ({template.file})",
            where,
            code="required",
        )
        return None
    missing = [name for name in template.required if is_empty(_dig(body, name))]
    for name in missing:
        child.error(
            f"{template.resource_type}.{name} is required but the source gives no value",
            where,
            code="required",
        )
    if missing or state.errors_met > errors_before:
        return None
    resource = {"resourceType": template.resource_type, "id": resource_id, **body}
    key = (template.resource_type, resource_id)
    previous = state.resources.get(key)
    if previous is not None and previous != resource:
        if template.resource_type in FIRST_MENTION_WINS:
            # the same person or place named twice in one message: first mention wins
            return previous
        child.error(
            f"{template.resource_type}/{resource_id} is made twice from different content "
            f"(second at {where}, first at {state.produced_from.get(key)}): the business "
            f"identifiers of {template.file} are not unique here",
            where,
            code="duplicate",
        )
        return None
    state.resources[key] = resource
    if template.on_conflict:
        state.policies[key] = template.on_conflict
    state.produced_from[key] = where
    return resource


def make_bundle(ev: Evaluation, step: BundleStep) -> dict[str, Any] | None:
    """The Bundle template's resource, with ``entry`` = every resource made so far (Bundles
    excepted), those of type ``first`` at the front, each with fullUrl ``urn:uuid:<id>``.

    The entries are copies in which references to resources of the Bundle are rewritten to
    their fullUrl, so the Bundle is self-contained (a FHIR document resolves references
    inside itself); the resources stored on their own keep their relative references."""
    members = [r for r in ev.state.resources.values() if r["resourceType"] != "Bundle"]
    if step.first is not None:
        leading = [r for r in members if r["resourceType"] == step.first]
        if len(leading) != 1:
            where = ev.state.source.describe(ev.scope)
            ev.error(
                f"a Bundle from {step.template} needs exactly one {step.first} to put "
                f"first; {len(leading)} made",
                where,
                code="required",
            )
            return None
        members = leading + [r for r in members if r["resourceType"] != step.first]
    bundle = make_resource(ev, ev.state.templates[step.template])
    if bundle is None:
        return None
    full_urls = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:{r['id']}" for r in members}
    bundle["entry"] = [
        {
            "fullUrl": full_urls[f"{r['resourceType']}/{r['id']}"],
            "resource": _with_references(r, full_urls),
        }
        for r in members
    ]
    return bundle


def _with_references(value: Any, full_urls: dict[str, str]) -> Any:
    """A deep copy of ``value`` with ``reference`` values found in ``full_urls`` replaced."""
    if isinstance(value, dict):
        return {
            key: (
                full_urls.get(item, item)
                if key == "reference" and isinstance(item, str)
                else _with_references(item, full_urls)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_references(item, full_urls) for item in value]
    return value


def _resource_id(ev: Evaluation, template: ResourceTemplate) -> str | None:
    for alternative in template.id_from:
        parts = [text(ev.build(part)) for part in alternative]
        if parts and all(p.strip() for p in parts):
            return deterministic_id(template.resource_type, parts)
    return None


def _dig(body: dict[str, Any], dotted: str) -> Any:
    value: Any = body
    for part in dotted.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
