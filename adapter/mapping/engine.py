"""Running a message mapping: its steps (``let``, ``each``, ``resource``, ``bundle``) over one
document, making each resource from its template with a deterministic id, the required
elements and the template's checks, and collecting located issues.

The engine knows nothing of message types, vendors or facilities; expressions and templates
are evaluated by ``adapter.mapping.evaluation``.
"""

from __future__ import annotations

from typing import Any

from adapter.mapping.closures import checks_of, id_parts_of, lets_of
from adapter.mapping.evaluation import Evaluation, truthy
from adapter.mapping.ids import stripped_id
from adapter.mapping.nodes import BundleStep, EachStep, LetStep, ResourceStep, ResourceTemplate
from adapter.mapping.values import TEXT_DECIDES, is_empty, location, text

_new = object.__new__  # an Evaluation made per resource and item without its __init__ call

# -- running a message mapping -----------------------------------------------------------------


def first_mention_wins(policy: dict[str, Any] | None) -> bool:
    """Whether a resource made twice in one document (or in two rows of one file) with
    different content keeps the first one made instead of being an error: the template's
    ``on_conflict: {in_message: first-wins}`` (the same person or place named twice)."""
    return bool(policy) and policy.get("in_message") == "first-wins"


# a step's kind by its exact type, one look-up (decision 0154: an ``isinstance`` that misses
# asks the object its ``__class__``); any other type as the ``isinstance`` tests in order say
_STEP_KINDS: dict[type, type] = {k: k for k in (LetStep, EachStep, BundleStep, ResourceStep)}


def _step_kind(step: Any) -> type | None:
    for kind in (LetStep, EachStep, BundleStep, ResourceStep):
        if isinstance(step, kind):
            return kind
    return None


def run_steps(ev: Evaluation, steps: list[Any]) -> None:
    for step in steps:
        kind = _STEP_KINDS.get(type(step)) or _step_kind(step)
        if kind is LetStep:
            ev.vars[step.name] = ev.let_value(step.value)
        elif kind is EachStep:
            # a collect list belongs to the enclosing item: it starts empty in each item and
            # gathers what is collected in it (nested items included), so an order's report
            # sees that order's results only; the enclosing scope then sees them all
            names = step._collects
            if names is None:
                names = step._collects = tuple(sorted(_collected_names(step.steps)))
            for _item, scope in ev.items_of(step.target):
                variables = dict(ev.vars)  # with a fresh list per collect name (no comprehension)
                for name in names:
                    variables[name] = []
                child = _new(Evaluation)  # Evaluation(ev.state, scope, variables), no __init__
                child.state = ev.state
                child.scope = scope
                child.vars = variables
                if step.cond is not None and not truthy(child.expr(step.cond)):
                    continue  # ``if`` holds for each item, as in a template's ``each``
                run_steps(child, step.steps)
                for name in names:
                    gathered = variables.get(name)
                    if isinstance(gathered, list) and gathered:
                        into = ev.vars.get(name)
                        if not isinstance(into, list):
                            into = ev.vars[name] = []
                        into.extend(gathered)
        elif kind is BundleStep:
            if step.cond is None or truthy(ev.expr(step.cond)):
                make_bundle(ev, step)
        elif kind is ResourceStep:
            if step.cond is not None and not truthy(ev.expr(step.cond)):
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
    child = _new(Evaluation)  # Evaluation(state, ev.scope, dict(ev.vars)), no __init__ call
    child.state = state
    child.scope = ev.scope
    child.vars = dict(ev.vars)
    (template._lets or lets_of(template))(child)  # the lets, in order (made by the loader)
    if template.skip is not None and truthy(child.expr(template.skip[0])):
        condition, reason, severity, at = template.skip
        at_location = location(child.expr(at)) if at is not None else None
        child.issue(
            severity,
            "informational",
            f"{template.resource_type} not made from {where}: {reason}",
            at_location or where,
        )
        return None
    for condition, severity, message, at in template._checks or checks_of(template):
        holds = condition(child)  # truthy() of a bool is itself: not called for one
        if holds is True or (holds is not False and truthy(holds)):
            at_location = location(child.expr(at)) if at is not None else None
            child.issue(severity, "business-rule", message, at_location or where)
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
    missing: list[str] = []  # a loop, not a comprehension (a function made per call)
    for name in template.required:
        if is_empty(_dig(body, name)):
            missing.append(name)
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
        if first_mention_wins(template.on_conflict):
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
    for built in template._ids or id_parts_of(template):  # made by the loader
        # each part's text stripped, a blank one ending the alternative (decision 0149: one
        # loop; ``deterministic_id`` strips them, and a stripped text strips to itself)
        parts: list[str] = [template.resource_type]
        for value in built(ev):
            kind = type(value)  # text(value), its first cases inline (a call per part)
            if kind is str:
                part = value.strip()
            elif kind in TEXT_DECIDES:
                part = value.text.strip()
            else:
                part = text(value).strip()
            if not part:
                break
            parts.append(part)
        else:
            if len(parts) > 1:
                return stripped_id(parts)
    return None


def _dig(body: dict[str, Any], dotted: str) -> Any:
    value: Any = body
    for part in dotted.split("."):
        if type(value) is not dict and isinstance(value, list):  # a dict at once (0154)
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
