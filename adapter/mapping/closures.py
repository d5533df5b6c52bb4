"""Expressions and templates compiled into Python closures, once per node (decision 0046).

Each node of a compiled mapping (``adapter.mapping.expressions``, ``adapter.mapping.nodes``)
gets, on first use or when the loader prepares the set, closures that take an evaluation
(``adapter.mapping.evaluation.Evaluation``) and give what the node evaluates to
(``expr_fn``), what a ``let`` binds (``let_fn``) and what it builds into the resource
(``build_fn``). A closure holds its children's closures, the function it calls, its paths
and constants, so evaluating a template is a chain of calls with no dispatch on node types,
no attribute reads of the node and no argument lists built for the lazy functions.

What a closure does is what the interpreter it replaces did, step for step and in the same
order (which paths are read and marked as read, which issues are reported where, which
values are dropped as empty): only the dispatch is done once instead of per message. This
module knows the evaluation only by what it calls on it (``vars``, ``scope``, ``state``,
``error``), so it does not import the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapter.mapping.expressions import Call, Literal, Path, Var
from adapter.mapping.functions import FUNCTIONS
from adapter.mapping.functions.logic import eq_text, exists_one, one_of_texts
from adapter.mapping.nodes import (
    BundleStep,
    DatatypeTemplate,
    DictNode,
    Each,
    EachStep,
    FirstOf,
    Gate,
    LetStep,
    ListNode,
    MessageMapping,
    ResourceStep,
    ResourceTemplate,
)
from adapter.mapping.values import (
    NUMBERED_PARTS,
    TEXT_ALWAYS,
    TEXT_DECIDES,
    TEXT_READERS,
    is_empty,
    is_position_type,
    is_position_without_text,
    text,
)

Fn = Callable[[Any], Any]  # evaluation -> value

_APPLY = FUNCTIONS["apply"]  # codes.apply, written inline with a literal name (``_inline``)

# an evaluation made without its ``__init__`` call (a call from C back into Python) where
# one is made per datatype applied or item: its three slots set as ``__init__`` sets them
_new = object.__new__

_EXPR_KINDS = (Literal, Path, Var, Call)
_TEMPLATE_KINDS = (DictNode, ListNode, Gate, FirstOf, Each)
_AS_IS = (bool, int, float, dict)  # materialize(): a tuple, not a union made per test


def _keep(node: Any, slot: str, fn: Fn) -> Fn:
    object.__setattr__(node, slot, fn)  # the expression nodes are frozen dataclasses
    return fn


def expr_fn(node: Any) -> Fn:
    """The closure of an expression: its value (a source position, text, a number ...)."""
    if type(node) not in _EXPR_KINDS:
        raise TypeError(f"not an expression: {node!r}")
    fn = node._value
    return fn if fn is not None else _keep(node, "_value", _compile_expr(node))


def build_fn(node: Any) -> Fn:
    """The closure that builds a template node into plain data (empty values dropped); a
    value that is no node builds as itself."""
    kind = type(node)
    if kind not in _EXPR_KINDS and kind not in _TEMPLATE_KINDS:
        return lambda ev: node
    fn = node._build
    return fn if fn is not None else _keep(node, "_build", _compile_build(node))


def let_fn(node: Any) -> Fn:
    """The closure of a ``let`` value: expressions keep their source positions (so later
    functions still report issues at the right place), an ``each`` whose ``emit`` is an
    expression gives the list of its true values, other templates are built."""
    kind = type(node)
    if kind is Path or kind is Var or kind is Call:
        return expr_fn(node)
    if kind is Each and type(node.emit) in (Path, Var, Call):
        fn = node._value
        return fn if fn is not None else _keep(node, "_value", _compile_let_each(node))
    return build_fn(node)


def prepare(node: Any) -> None:
    """Make the closures of a template tree now (the loader: at load, not per message)."""
    if type(node) in _EXPR_KINDS:
        expr_fn(node)
    let_fn(node)
    build_fn(node)


def prepare_template(template: ResourceTemplate) -> None:
    """The closures of a resource template: its lets, id parts, skip, checks and body."""
    for _name, value in template.lets:
        prepare(value)
    for alternative in template.id_from:
        for part in alternative:
            prepare(part)
    if template.skip is not None:
        prepare(template.skip[0])
        if template.skip[3] is not None:
            prepare(template.skip[3])
    for condition, _severity, _message, at in template.checks:
        prepare(condition)
        if at is not None:
            prepare(at)
    prepare(template.body)
    lets_of(template)
    id_parts_of(template)
    checks_of(template)


def lets_of(template: ResourceTemplate) -> Fn:
    """A resource template's ``let`` values bound in order (``ev.vars[name] = value``), as
    one generated function (``lets_function``), found once."""
    lets = template._lets
    if lets is None:
        lets = template._lets = lets_function(template.lets)
    return lets  # type: ignore[no-any-return]


def lets_function(lets: list[tuple[str, Any]]) -> Fn:
    """``let`` values bound in order, each to ``ev.vars[name]`` before the next is worked
    out (a later one reads an earlier one), as one generated function (decision 0144): an
    expression written inline as ``let_fn`` evaluates it (``_inline``; a path read again
    gives the value its first read gave, ``_Reads``), any other value by its closure
    (``let_fn``). One Python call per template instead of one per ``let``."""
    names: dict[str, Any] = {"truthy": truthy}
    reads = _Reads()
    lines = ["    d0 = ev.vars"]
    for name, value in lets:
        key = f"a{len(names)}"
        names[key] = name
        kind = type(value)
        if kind is Path or kind is Var or kind is Call:  # let_fn: expr_fn, as _inline writes it
            code = _inline(value, names, local=True, reads=reads)
        else:  # a literal, a template, an each: its closure
            code = f"a{len(names)}"
            names[code] = let_fn(value)
            code += "(ev)"
        lines.append(f"    d0[{key}] = {code}")
    lines += ["    return None", ""]
    return _made("\n".join(_prologue(lines) + lines), names)  # type: ignore[no-any-return]


def checks_of(template: ResourceTemplate) -> tuple[tuple[Fn, str, str, Any], ...]:
    """A resource template's ``checks`` with their conditions' closures (``expr_fn``),
    found once (decision 0144: ``make_resource`` called ``Evaluation.expr`` per check)."""
    checks = template._checks
    if checks is None:
        checks = template._checks = tuple(
            (expr_fn(condition), severity, message, at)
            for condition, severity, message, at in template.checks
        )
    return checks  # type: ignore[no-any-return]


def id_parts_of(template: ResourceTemplate) -> tuple[Fn, ...]:
    """Per ``id_from`` alternative, one generated function giving its parts built (each
    as ``build_fn`` of the part builds it, in order), found once (decision 0112)."""
    ids = template._ids
    if ids is None:
        ids = template._ids = tuple(_Builder().parts_function(alt) for alt in template.id_from)
    return ids  # type: ignore[no-any-return]


def prepare_datatype(datatype: DatatypeTemplate) -> None:
    for _name, value in datatype.lets:
        prepare(value)
    prepare(datatype.body)
    datatype_fn(datatype)


def prepare_message(mapping: MessageMapping) -> None:
    _prepare_steps(mapping.steps)


def datatype_fn(template: DatatypeTemplate) -> Callable[[Any, list[Any]], Any]:
    """A datatype template applied to arguments: the caller's variables, the parameters
    bound over them (extra arguments ignored), the ``let`` values in order, the body built;
    its closures found once instead of per call."""
    fn = template._apply
    if fn is not None:
        return fn  # type: ignore[no-any-return]
    # one generated function per template (decision 0154): the parameters bound one by one
    # as ``dict.update(zip(params, args))`` bound them (in order, extra arguments ignored;
    # that call from C cost more than the copy of the variables), each ``let`` in order;
    # ``type(ev)(ev.state, ev.scope, variables)`` made without its __init__ call
    lets = [(let_name, let_fn(let_node)) for let_name, let_node in template.lets]
    names: dict[str, Any] = {"new": _new, "body": build_fn(template.body)}
    lines = ["def build(ev, args):", "    variables = dict(ev.vars)", "    given = len(args)"]
    for number, param in enumerate(template.params):
        name, at = f"a{len(names)}", f"a{len(names) + 1}"
        names[name], names[at] = param, number
        lines += [f"    if given > {at}:", f"        variables[{name}] = args[{at}]"]
    lines += [
        "    child = new(type(ev))",
        "    child.state = ev.state",
        "    child.scope = ev.scope",
        "    child.vars = variables",
    ]
    for let_name, let_made in lets:
        name, let = f"a{len(names)}", f"a{len(names) + 1}"
        names[name], names[let] = let_name, let_made
        lines.append(f"    variables[{name}] = {let}(child)")
    lines += ["    return body(child)", ""]
    apply = _made("\n".join(lines), names)
    template._apply = apply
    return apply


def _prepare_steps(steps: list[Any]) -> None:
    for step in steps:
        if isinstance(step, LetStep):
            prepare(step.value)
        elif isinstance(step, EachStep):
            if not isinstance(step.target, str):
                prepare(step.target)
            _prepare_steps(step.steps)
        if isinstance(step, EachStep | ResourceStep | BundleStep) and step.cond is not None:
            prepare(step.cond)


# -- expressions ---------------------------------------------------------------------------


def _compile_expr(node: Any) -> Fn:
    kind = type(node)
    if kind is Literal:
        value = node.value
        return lambda ev: value
    if kind is Path:
        compiled = node.compiled

        def path(ev: Any) -> Any:
            return ev.state.source.resolve(compiled, ev.scope)

        return path
    if kind is Var:
        return _compile_var(node)
    return _compile_call(node)


def _compile_var(node: Var) -> Fn:
    name, path = node.name, node.path
    if not path:
        return lambda ev: ev.vars.get(name)

    # per part: the name, and its number when it is one (``@cwe.1``), found once (decimal
    # digits: a part such as "²" is a name, as int() cannot read it)
    parts = tuple((part, int(part) if part.isdecimal() else None) for part in path)
    if len(parts) == 1:
        return _compile_var_part(name, parts[0][0], parts[0][1], parts)

    def var(ev: Any) -> Any:
        return _var_parts(ev.vars.get(name), parts)

    return var


def _compile_var_part(name: str, part: str, number: int | None, parts: Any) -> Fn:
    """A variable with one part (``@facility.id``, ``@cwe.1``, decision 0121): a dict, or a
    position whose parts are numbered (``values.NUMBERED_PARTS``) with a number, at once;
    any other value as ``_var_parts`` reads it."""
    if number is None:

        def var_name(ev: Any) -> Any:
            value = ev.vars.get(name)
            if type(value) is dict:
                return value.get(part)
            return _var_parts(value, parts)

        return var_name

    def var_number(ev: Any) -> Any:
        value = ev.vars.get(name)
        kind = type(value)
        if kind in NUMBERED_PARTS:
            return value.child(number)
        if kind is dict:
            return value.get(part)
        return _var_parts(value, parts)

    return var_number


def _var_parts(value: Any, parts: tuple[tuple[str, int | None], ...]) -> Any:
    """A variable's value read part by part: a dict by key, a list by number (from 1), a
    position by number (``child``), anything else by attribute."""
    for part, number in parts:
        if value is None:
            return None
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list):
            value = value[number - 1] if number is not None and 0 < number <= len(value) else None
        elif number is not None and hasattr(value, "child"):
            value = value.child(number)
        else:
            value = getattr(value, part, None)
    return value


def _compile_call(node: Call) -> Fn:
    if not _inlined(node):
        return _LAZY[node.name](node.args, tuple(expr_fn(arg) for arg in node.args))
    names: dict[str, Any] = {"truthy": truthy}
    code = _inline(node, names, reads=_Reads())
    return _made(f"lambda ev: {code}", names)  # type: ignore[no-any-return]


def _inlined(node: Call) -> bool:
    """Whether a call is written inline (below): all but ``first`` and a ``when`` of the
    wrong arity (its error), which keep their closures."""
    return node.name != "first" and (node.name != "when" or len(node.args) == 2)


# An expression is written as one Python expression where that evaluates it as the
# closures would, step for step: a literal is its value, a variable without parts a read of
# ``ev.vars``, a path the source's ``resolve``, a function called with its arguments
# evaluated left to right before it, ``when`` / ``all`` / ``any`` as Python's conditional,
# ``and`` and ``or`` over ``truthy`` (evaluating only what they did). ``first`` and a
# variable with parts stay closures, called from it. So a nested call such as
# ``upper(trim(OBX-2))`` is one closure, not one per node. The source is made of names only
# (``a0``, ``a1`` ..., bound in the closure's namespace), never of the values; code objects
# are kept by source, which repeats from one expression to the next.

_CODE: dict[str, Any] = {}


def _made(source: str, names: dict[str, Any]) -> Any:
    """The function a ``lambda`` expression (or a ``def build`` statement) makes, its names
    bound to ``names``."""
    statement = source.startswith("def ")
    code = _CODE.get(source)
    if code is None:
        code = _CODE[source] = compile(
            source, "<mapping expression>", "exec" if statement else "eval"
        )
    if statement:
        exec(code, names)
        fn = names["build"]
    else:
        fn = eval(code, names)
    # a code object of its own for each function (decision 0154): the interpreter's inline
    # caches live in the code object, and those of a shared one, keyed by one namespace
    # and its callees, missed for every other one (``LOAD_GLOBAL`` unspecialised)
    fn.__code__ = fn.__code__.replace()
    return fn


class _Reads:
    """The paths a generated function has read so far, each kept in a local (``p1`` ...),
    for a later read of the same path in the same function (decision 0144): a path whose
    reads are remembered by the source (``same_on_reread``: HL7 v2, ``read_path``'s memo)
    gives, read again in the same scope, the very value it gave, and marks nothing more.
    A read is used again only where it has surely happened: after it in the statements and
    in the arguments evaluated after it, not after a branch that may not have run (the
    value of a ``when``, the terms of ``all`` / ``any`` after the first, a gate's body);
    ``layers`` holds one dict per such branch entered."""

    def __init__(self) -> None:
        self.layers: list[dict[int, str]] = [{}]
        self.count = 0

    def get(self, compiled: Any) -> str | None:
        key = id(compiled)
        for layer in self.layers:
            found = layer.get(key)
            if found is not None:
                return found
        return None

    def add(self, compiled: Any) -> str:
        self.count += 1
        local = f"p{self.count}"
        self.layers[-1][id(compiled)] = local
        return local

    def enter(self) -> None:
        self.layers.append({})

    def leave(self) -> None:
        self.layers.pop()


def _inline(
    node: Any, names: dict[str, Any], local: bool = False, reads: _Reads | None = None
) -> str:
    """``local``: inside a generated ``def`` whose first lines bind ``resolve`` (the
    source's), ``scope`` and ``vget`` (``ev.vars.get``) once (``_Builder``). ``reads``: the
    function's path reads so far (``_Reads``), None to read every path where written."""
    kind = type(node)
    name = f"a{len(names)}"
    if kind is Literal:
        names[name] = node.value
        return name
    if kind is Var and not node.path:
        names[name] = node.name
        return f"vget({name})" if local else f"ev.vars.get({name})"
    if kind is Path:
        compiled = node.compiled
        if reads is not None and getattr(compiled, "same_on_reread", False):
            held = reads.get(compiled)
            if held is not None:
                return held  # read above, surely: the value it gave
            names[name] = compiled
            read = (
                f"resolve({name}, scope)" if local else f"ev.state.source.resolve({name}, ev.scope)"
            )
            return f"({reads.add(compiled)} := {read})"
        names[name] = compiled
        return f"resolve({name}, scope)" if local else f"ev.state.source.resolve({name}, ev.scope)"
    if kind is Call and _inlined(node):
        if node.name == "when":
            cond = _truth(node.args[0], names, local, reads)
            if reads is not None:
                reads.enter()  # the value is evaluated only when the condition holds
            value = _inline(node.args[1], names, local, reads)
            if reads is not None:
                reads.leave()
            return f"({value} if {cond} else None)"
        if node.name in ("all", "any"):
            if not node.args:
                return "True" if node.name == "all" else "False"
            parts = [_truth(node.args[0], names, local, reads)]
            if reads is not None:
                reads.enter()  # a term after the first is evaluated only when those before
            for arg in node.args[1:]:  # it let it (each sees what they read)
                parts.append(_truth(arg, names, local, reads))
            if reads is not None:
                reads.leave()
            return "(" + (" and " if node.name == "all" else " or ").join(parts) + ")"
        if (
            node.name == "apply"
            and node.args
            and type(node.args[0]) is Literal
            and type(node.args[0].value) is str
            and FUNCTIONS["apply"] is _APPLY
        ):
            # ``apply('cwe-coding', OBX-3, ...)``: codes.apply with its literal name, written
            # as the call it makes (``ev.apply_datatype(name, [args])``, decision 0126)
            names[name] = node.args[0].value
            args = [_inline(arg, names, local, reads) for arg in node.args[1:]]
            return f"ev.apply_datatype({name}, [{', '.join(args)}])"
        if (
            node.name in ("exists", "empty")
            and len(node.args) == 1
            and FUNCTIONS["exists"] is _EXISTS
            and FUNCTIONS["empty"] is _EMPTY
        ):
            # ``exists(x)``: its one-value case without the tuple of arguments; ``empty(x)``
            # is ``not exists(x)`` (logic.empty) (decision 0144)
            names[name] = exists_one
            arg = _inline(node.args[0], names, local, reads)
            call = f"{name}(ev, {arg})"
            return call if node.name == "exists" else f"(not {call})"
        if (
            node.name == "eq"
            and len(node.args) == 2
            and FUNCTIONS["eq"] is _EQ
            and type(node.args[1]) is Literal
            and type(node.args[1].value) is str
        ):
            # ``eq(x, 'NM')``: the literal stripped once (decision 0149)
            names[name] = eq_text
            arg = _inline(node.args[0], names, local, reads)
            literal = f"a{len(names)}"
            names[literal] = node.args[1].value.strip()
            return f"{name}(ev, {arg}, {literal})"
        if (
            node.name == "one_of"
            and node.args
            and FUNCTIONS["one_of"] is _ONE_OF
            and all(type(a) is Literal and type(a.value) is str for a in node.args[1:])
        ):
            # ``one_of(x, 'NM', 'SN' ...)`` with literal texts: the options' stripped,
            # casefolded set found once, one look-up per call (decision 0149)
            names[name] = one_of_texts
            arg = _inline(node.args[0], names, local, reads)
            options = f"a{len(names)}"
            names[options] = frozenset(a.value.strip().casefold() for a in node.args[1:])
            return f"{name}(ev, {arg}, {options})"
        if (
            node.name == "not"
            and len(node.args) == 1
            and FUNCTIONS["not"] is _NOT
            and _gives_bool(node.args[0])
        ):
            # ``not(x)`` of a bool is ``not x`` (logic.not_: ``not _truthy(x)``, and
            # ``_truthy`` of a bool is itself): no call (decision 0144)
            return f"(not {_inline(node.args[0], names, local, reads)})"
        names[name] = FUNCTIONS[node.name]
        args = [_inline(arg, names, local, reads) for arg in node.args]
        return f"{name}(ev{''.join(', ' + arg for arg in args)})"
    names[name] = expr_fn(node)  # first(), when() of the wrong arity, @var.parts
    return f"{name}(ev)"


# functions whose every return is a ``bool`` (``truthy`` of a bool is itself), as are the
# inline ``all`` and ``any`` (``and`` / ``or`` over ``truthy``, which gives a bool)
GIVES_BOOL = frozenset(
    {"exists", "empty", "not", "eq", "ne", "one_of", "matches", "is_numeric", "has_comparator"}
)


def _gives_bool(node: Any) -> bool:
    """Whether the expression's value is always a bool: a call of a function of
    ``GIVES_BOOL``, or an inline ``all`` / ``any``."""
    return type(node) is Call and _inlined(node) and node.name in _BOOL_CALLS


_BOOL_CALLS = GIVES_BOOL | {"all", "any"}
_NOT = FUNCTIONS["not"]  # logic.not_, written inline for a bool (``_inline``)
_ONE_OF = FUNCTIONS["one_of"]  # as one_of_texts for literal options (``_inline``)
_EQ = FUNCTIONS["eq"]  # as eq_text for a literal second argument (``_inline``)
_EXISTS, _EMPTY = FUNCTIONS["exists"], FUNCTIONS["empty"]  # as exists_one (``_inline``)


def _truth(
    node: Any, names: dict[str, Any], local: bool = False, reads: _Reads | None = None
) -> str:
    """``truthy(node)`` written inline: the value itself when it is a bool already (a call of
    a function of ``GIVES_BOOL``, ``all`` or ``any``), without the call (decision 0121)."""
    code = _inline(node, names, local, reads)
    if _gives_bool(node):
        return code
    return f"truthy({code})"


# the locals a generated ``def`` may use, bound once at its top: each only when its body
# names it (a body without a path does not look up the source's reader, decision 0121). A
# body is made of generated names only, so a name it uses is in it as ``name(`` (``scope``
# as itself); a line bound without need would only cost its lookup
_LOCALS = (
    ("scope", "    scope = ev.scope"),
    ("resolve(", "    resolve = ev.state.source.resolve"),
    ("vget(", "    vget = ev.vars.get"),
    ("text_of(", "    text_of = text_reader(ev.state.source)"),
)


def _prologue(body: list[str]) -> list[str]:
    """``def build(ev):`` and the lines binding the locals of ``_LOCALS`` that ``body`` uses."""
    text = "\n".join(body)
    return ["def build(ev):", *(line for used, line in _LOCALS if used in text)]


# lazy functions: evaluated argument by argument, so a value that is not needed is never
# converted (and cannot report an error about a branch that was not taken)


def _lazy_first(nodes: tuple[Any, ...], args: tuple[Fn, ...]) -> Fn:
    """``first(a, b, ...)`` written as one generated function (decision 0112): each argument
    inline (``_inline``) in turn, the first present and true one taken, exactly as the loop
    over the arguments' closures did it (kept below as ``_first_loop``, the reference)."""
    # per argument: the paths of the alternatives after it (also inside calls), which the
    # unread report must see as read when they hold nothing else (decision 0016)
    names: dict[str, Any] = {
        "truthy": truthy,
        "is_empty": is_empty,
        "text": text,
        "str": str,
        "text_decides": TEXT_DECIDES,
    }
    # the source's ``read_alternatives`` called at once (every source has it, decision 0144;
    # ``_read_alternatives`` was a Python call in between)
    alternatives = "ev.state.source.read_alternatives"
    reads = _Reads()
    lines: list[str] = []
    for i, node in enumerate(nodes):
        rest = _once(p.compiled for later in nodes[i + 1 :] for p in _paths_in(later))
        # reaching an argument means the ones before it were evaluated: what they read
        # is read (``_Reads``)
        lines.append(f"    value = {_inline(node, names, local=True, reads=reads)}")
        # not is_empty(value) and truthy(value), text(value).strip(): text at once
        lines += [
            "    if type(value) is str:",
            "        chosen = value.strip()",
            "        if chosen:",
        ]
        if rest:
            rest_name = f"a{len(names)}"
            names[rest_name] = rest
            lines.append(f"            {alternatives}({rest_name}, scope, chosen)")
        # a position whose text decides (an HL7 v2 ReadNode, values.TEXT_DECIDES): present
        # and true exactly when its text is not blank, and that text is the one compared
        lines += [
            "            return value",
            "    elif type(value) in text_decides:",
            "        chosen = value.text.strip()",
            "        if chosen:",
        ]
        if rest:
            lines.append(f"            {alternatives}({rest_name}, scope, chosen)")
        lines += [
            "            return value",
            "    elif not (value is None or is_empty(value) or not truthy(value)):",
        ]
        if rest:
            lines.append(f"        {alternatives}({rest_name}, scope, text(value).strip())")
        lines.append("        return value")
    lines += ["    return None", ""]
    return _made("\n".join(_prologue(lines) + lines), names)  # type: ignore[no-any-return]


def _once(paths: Any) -> tuple[Any, ...]:
    """The paths in order, each compiled path once (``OBX-11`` in two alternatives): a
    second ``read_unless_other`` of a path gives what the first did (decision 0126)."""
    seen: set[int] = set()
    out = []
    for path in paths:
        if id(path) not in seen:
            seen.add(id(path))
            out.append(path)
    return tuple(out)


def _first_loop(nodes: tuple[Any, ...], args: tuple[Fn, ...]) -> Fn:
    """``first`` as a loop over its arguments' closures: the reference the generated
    ``_lazy_first`` is tested against (tests/unit/test_mapping_first_generated.py)."""
    options = tuple(
        (arg, tuple(p.compiled for later in nodes[i + 1 :] for p in _paths_in(later)))
        for i, arg in enumerate(args)
    )

    def first(ev: Any) -> Any:
        for arg, rest in options:
            value = arg(ev)
            # not is_empty(value) and truthy(value), text(value).strip(): text at once
            if type(value) is str:
                chosen = value.strip()
                if not chosen:
                    continue
            elif value is None or is_empty(value) or not truthy(value):
                continue
            elif rest:
                chosen = text(value).strip()
            if rest:
                _read_alternatives(ev, rest, chosen)
            return value
        return None

    return first


def _read_alternatives(ev: Any, rest: tuple[Any, ...], chosen: str) -> None:
    """The alternatives ``first`` did not take: a path there that is empty or gives the
    value taken lost nothing and counts as read; one with another value is left unread, so
    ``first(OBR-7, OBR-8)`` with two different times lists OBR-8 unless another rule reads
    it."""
    if not rest:
        return
    source = ev.state.source
    scope = ev.scope
    every = getattr(source, "read_alternatives", None)  # HL7 v2: one call for them all
    if every is not None:
        every(rest, scope, chosen)
        return
    both = getattr(source, "read_unless_other", None)  # XML: one evaluation for the two
    if both is not None:
        for path in rest:
            both(path, scope, chosen)
        return
    for path in rest:
        other = source.peek(path, scope).strip()
        if not other or other == chosen:
            source.resolve(path, scope)


def _paths_in(node: Any) -> list[Path]:
    if type(node) is Path:
        return [node]
    if type(node) is Call:
        return [p for arg in node.args for p in _paths_in(arg)]
    return []


def _lazy_when(nodes: tuple[Any, ...], args: tuple[Fn, ...]) -> Fn:
    if len(args) != 2:
        return lambda ev: ev.error("when() takes a condition and a value", None)
    cond, value = args
    return lambda ev: value(ev) if truthy(cond(ev)) else None


_LAZY: dict[str, Callable[[tuple[Any, ...], tuple[Fn, ...]], Fn]] = {
    "first": _lazy_first,
    "when": _lazy_when,  # of the wrong arity (other calls of when, all, any: _inline)
}


# -- templates -----------------------------------------------------------------------------


def _compile_build(node: Any) -> Fn:
    kind = type(node)
    if kind is Literal:
        value = node.value
        return lambda ev: value
    if kind is Path:
        return _build_path(node.compiled)
    if kind is Call and _inlined(node):
        return _build_call(node)
    if kind in _EXPR_KINDS:
        return _build_expr(expr_fn(node))
    if kind is DictNode:
        return _build_dict(node)
    if kind is ListNode:
        return _build_list(node)
    if kind is Gate:
        names: dict[str, Any] = {"truthy": truthy, "body": build_fn(node.body)}
        cond = _truth(node.cond, names)
        return _made(f"lambda ev: body(ev) if {cond} else None", names)  # type: ignore[no-any-return]
    if kind is FirstOf:
        return _build_first_of(node)
    return _build_each(node)


def _build_path(compiled: Any) -> Fn:
    """A path built into a resource. A source that has ``resolve_text`` (HL7 v2) gives a
    value's text at once, read as reading the value's ``text`` reads it; others resolve."""

    def build(ev: Any) -> Any:
        source = ev.state.source
        reader = getattr(source, "resolve_text", None) or source.resolve
        value = reader(compiled, ev.scope)
        if type(value) is str:
            value = value.strip()
            return value or None
        return _built(ev, value)

    return build


def _text_reader(source: Any) -> Any:
    """How a path built into a resource is read (``_build_path``)."""
    return getattr(source, "resolve_text", None) or source.resolve


def _build_expr(value_of: Fn) -> Fn:
    def build(ev: Any) -> Any:
        value = value_of(ev)
        kind = type(value)
        if kind is str:  # the common case, as materialize() treats it
            value = value.strip()
            return value or None
        if value is None or kind is dict:  # what _built gives them: themselves
            return value
        return _built(ev, value)

    return build


def _build_call(node: Call) -> Fn:
    """``_build_expr`` of a call, the call written into it (``_inline``)."""
    names: dict[str, Any] = {"truthy": truthy, "_built": _built, "str": str, "dict": dict}
    value = _inline(node, names, reads=_Reads())
    source = (
        "def build(ev):\n"
        f"    value = {value}\n"
        "    kind = type(value)\n"
        "    if kind is str:\n"
        "        value = value.strip()\n"
        "        return value or None\n"
        "    if value is None or kind is dict:\n"
        "        return value\n"
        "    return _built(ev, value)\n"
    )
    return _made(source, names)  # type: ignore[no-any-return]


def _text_property(value: Any) -> Any:
    """``value.text``: a position of ``TEXT_ALWAYS`` whose property is not registered."""
    return value.text


def _built(ev: Any, value: Any) -> Any:
    """What a value that is not text builds into (materialize()); a whole segment is an
    error."""
    kind = type(value)
    if kind in TEXT_DECIDES:  # what the branch below and the test after it give it
        return value.text.strip() or None
    if is_position_type(kind):  # a source position: materialize()'s last branch
        as_text = getattr(value, "text", None)
        if as_text is not None:
            value = as_text.strip() or None
    else:
        value = materialize(value)
    if is_position_without_text(value):
        where = value.location() if callable(getattr(value, "location", None)) else None
        ev.error(
            f"{where or 'this path'} is a whole segment, not a value: name a field "
            f"(e.g. {getattr(value, 'name', 'PID')}-3)",
            where,
        )
        return None
    return value


def _build_dict(node: DictNode) -> Fn:
    return _Builder().function(node)


def _build_list(node: ListNode) -> Fn:
    return _Builder().function(node)


# A dict or list template is written as one Python function: its items one after the other,
# a nested dict or list as statements in the same function (no closure per item), a path as
# the source's ``resolve_text`` (or ``resolve``), a call inline (``_inline``), other items
# (``first()``, a gate, ``each`` ...) as calls of their closures. Each item is built,
# normalised and kept or dropped exactly as the closures did it (``_build_path``,
# ``_build_call``, the tests of the dict and list builders below), in the same order. As
# for expressions, the source holds generated names only (``a0`` for what is bound in the
# namespace: keys, literals, paths, functions; ``v0``, ``d0``, ``l0``, ``h0`` for locals),
# never a key or a value of a mapping file.


_MAX_DEPTH = 8  # gates written inline inside each other (Python nests 20 blocks at most)


class _Builder:
    def __init__(self) -> None:
        self.names: dict[str, Any] = {
            "truthy": truthy,
            "_built": _built,
            "is_empty": is_empty,
            "str": str,
            "dict": dict,
            "list": list,
            "type": type,
            "isinstance": isinstance,
            "text_reader": _text_reader,
            "text_decides": TEXT_DECIDES,
            "text_always": TEXT_ALWAYS,
            "text_readers": TEXT_READERS,
            "text_property": _text_property,
            "plain_sized": (str, dict, list),  # is_empty: ``not value`` for these exactly
            "empty_text": "",
        }
        self.lines: list[str] = []
        self.reads = _Reads()  # the paths read so far in the function (decision 0144)
        self.indent = "    "  # one level more inside a gate
        self.count = 0

    def function(self, node: DictNode | ListNode) -> Fn:
        return self._made_returning(self.block(node))

    def _made_returning(self, result: str) -> Fn:
        """The function of the lines generated so far, returning ``result``."""
        body = [*self.lines, f"    return {result}", ""]
        return _made("\n".join(_prologue(body) + body), self.names)  # type: ignore[no-any-return]

    def parts_function(self, nodes: list[Any]) -> Fn:
        """A function giving the tuple of ``nodes`` built, one after the other (the parts of
        a resource id)."""
        results = [self.block(node) for node in nodes]
        return self._made_returning("(" + "".join(f"{r}, " for r in results) + ")")

    def bind(self, value: Any) -> str:
        name = f"a{len(self.names)}"
        self.names[name] = value
        return name

    def local(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def emit(self, *lines: str) -> None:
        self.lines.extend(self.indent + line for line in lines)

    def block(self, node: Any) -> str:
        """Statements building ``node``; the name (a local or a bound literal) of its value."""
        kind = type(node)
        if kind is DictNode:
            return self.dict_block(node)
        if kind is ListNode:
            return self.list_block(node)
        if kind is Literal:
            return self.bind(node.value)
        value = self.local("v")
        if kind is Path:  # _build_path
            self.emit(
                f"{value} = text_of({self.bind(node.compiled)}, scope)",
                f"if type({value}) is str:",
                f"    {value} = {value}.strip() or None",
                "else:",
                f"    {value} = _built(ev, {value})",
            )
        elif kind is Call or kind is Var:  # _build_call, _build_expr
            self.emit(
                f"{value} = {_inline(node, self.names, local=True, reads=self.reads)}",
                f"if type({value}) is str:",
                f"    {value} = {value}.strip() or None",
                # _built of a position whose text is always a str (a ReadNode, a Node: its
                # first branch, or its second with the text read), inline (decision 0144)
                f"elif type({value}) in text_always:",
                f"    {value} = {value}.text.strip() or None",
                f"elif {value} is not None and type({value}) is not dict:",
                f"    {value} = _built(ev, {value})",
            )
        elif kind is Gate and len(self.indent) < 4 * _MAX_DEPTH:  # _compile_build's Gate
            cond = _truth(node.cond, self.names, local=True, reads=self.reads)
            self.emit(f"{value} = None", f"if {cond}:")
            self.indent += "    "
            self.reads.enter()  # the body runs only when the condition holds
            self.emit(f"{value} = {self.block(node.body)}")
            self.reads.leave()
            self.indent = self.indent[:-4]
        else:
            self.emit(f"{value} = {self.bind(build_fn(node))}(ev)")
        return value

    def dict_block(self, node: DictNode) -> str:
        out = self.local("d")
        has = self.local("h") if node.dynamic else None
        self.emit(f"{out} = {{}}")
        if has is not None:
            self.emit(f"{has} = False")
        for key, item in node.items:
            # literals, also nested in dicts and lists without expressions, are not values
            counts = type(item) is not Literal and getattr(item, "dynamic", True)
            if type(item) is Literal:
                built = item.value
                if built is None or (not built and (built == "" or built == [] or built == {})):
                    continue  # dropped, whatever the message
                self.emit(f"{out}[{self.bind(key)}] = {self.bind(built)}")
                continue
            if type(item) is Call or type(item) is Var:
                store = [f"{out}[{self.bind(key)}] = {{}}"]
                if counts and has is not None:
                    store.append(f"{has} = True")
                self.value_kept(item, store, "dict")
                continue
            value = self.block(item)
            # None, "", [] or {} is dropped (a false value is tested no further); a nested
            # dict or list block gives None or a non-empty value
            if type(item) in (DictNode, ListNode):
                self.emit(f"if {value} is not None:")
            else:
                self.emit(
                    f"if {value} is not None and ({value} or not ({value} == empty_text or "
                    f"{value} == [] or {value} == {{}})):"
                )
            self.emit(f"    {out}[{self.bind(key)}] = {value}")
            if counts and has is not None:
                self.emit(f"    {has} = True")
        if has is not None:
            self.emit(f"{out} = ({out} or None) if {has} else None")
        else:
            self.emit(f"{out} = {out} or None")
        return out

    def value_kept(self, node: Any, store: list[str], into: str) -> None:
        """A call or variable built (``block``'s ``_build_call`` / ``_build_expr`` lines)
        and kept (``store``, ``{}`` standing for the value) when a dict or a list keeps it
        (``into``), in one test per type of value (decision 0144): a text stripped and kept
        when not blank; a dict kept when not empty; a position whose text is always a str
        (``text_always``) as its text; anything else (None dropped) through ``_built`` and
        the tests ``dict_block`` / ``list_block`` make of it."""
        value, kind = self.local("v"), self.local("t")
        keep = [f"    {line.format(value)}" for line in store]
        if into == "dict":
            other = (
                f"    if {value} is not None and ({value} or not ({value} == empty_text or "
                f"{value} == [] or {value} == {{}})):"
            )
        else:
            other = (
                f"    if {value} is not None and ({value} if type({value}) in plain_sized "
                f"else not is_empty({value})):"
            )
        self.emit(
            f"{value} = {_inline(node, self.names, local=True, reads=self.reads)}",
            f"{kind} = type({value})",
            f"if {kind} is str:",
            f"    {value} = {value}.strip()",
            f"    if {value}:",
            *("    " + line for line in keep),
            f"elif {kind} is dict:",
            f"    if {value}:",
            *("    " + line for line in keep),
            f"elif {kind} in text_decides:",  # a text attribute (a ReadNode)
            f"    {value} = {value}.text.strip()",
            f"    if {value}:",
            *("    " + line for line in keep),
            f"elif {kind} in text_always:",  # a text property: its function called at once
            f"    {value} = text_readers.get({kind}, text_property)({value}).strip()",
            f"    if {value}:",
            *("    " + line for line in keep),
            f"elif {value} is not None:",
            f"    {value} = _built(ev, {value})",
            other,
            *("    " + line for line in keep),
        )

    def list_block(self, node: ListNode) -> str:
        out = self.local("l")
        self.emit(f"{out} = []")
        for item in node.items:
            if type(item) is Call or type(item) is Var:
                self.value_kept(item, [f"{out}.append({{}})"], "list")
                continue
            value = self.block(item)
            if type(item) is Each:
                self.emit(
                    f"if {value} is not None:",
                    f"    if isinstance({value}, list):",
                    f"        {out}.extend({value})",
                    f"    elif not is_empty({value}):",
                    f"        {out}.append({value})",
                )
            elif type(item) in (DictNode, ListNode):
                self.emit(f"if {value} is not None:", f"    {out}.append({value})")
            else:
                # is_empty of a text, dict or list is ``not value``: told inline (0144)
                self.emit(
                    f"if {value} is not None and ({value} if type({value}) in plain_sized "
                    f"else not is_empty({value})):",
                    f"    {out}.append({value})",
                )
        self.emit(f"{out} = {out} or None")
        return out


def _build_first_of(node: FirstOf) -> Fn:
    options = tuple(build_fn(option) for option in node.options)

    def build(ev: Any) -> Any:
        for option in options:
            built = option(ev)
            if not is_empty(built):
                return built
        return None

    return build


def _build_each(node: Each) -> Fn:
    return _each_fn(node, build_fn(node.emit), lambda built: not is_empty(built))


def _compile_let_each(node: Each) -> Fn:
    # a ``let`` keeps only the items whose value is true as well as present
    return _each_fn(node, expr_fn(node.emit), lambda value: not is_empty(value) and truthy(value))


def _each_fn(node: Each, emit: Fn, keep: Callable[[Any], bool]) -> Fn:
    """``each`` over ``node.target``: every item bound, filtered by ``cond``, emitted, kept
    when ``keep`` says so; None when nothing is kept."""
    items_of, item_ev = items_fn(node.target), _item_fn(node)
    cond = expr_fn(node.cond) if node.cond is not None else None

    def run(ev: Any) -> list[Any] | None:
        out: list[Any] = []
        for item, scope in items_of(ev):
            child = item_ev(ev, item, scope)
            if cond is not None and not truthy(cond(child)):
                continue
            value = emit(child)
            if keep(value):
                out.append(value)
        return out or None

    return run


def _item_fn(node: Each) -> Callable[[Any, Any, Any], Any]:
    """The evaluation of one ``each`` item: its name bound, then its own ``let`` values."""
    name = node.name
    lets = tuple((let_name, let_fn(let_node)) for let_name, let_node in node.lets)

    def item_ev(ev: Any, item: Any, scope: Any) -> Any:
        # ``type(ev)(ev.state, scope, {**ev.vars, name: item})``, without its __init__ call
        child = _new(type(ev))
        child.state = ev.state
        child.scope = scope
        child.vars = {**ev.vars, name: item}
        for let_name, let in lets:
            child.vars[let_name] = let(child)
        return child

    return item_ev


def items_fn(target: Any) -> Callable[[Any], list[tuple[Any, Any]]]:
    """(item, scope) pairs for ``each``: a group / segment name or an expression."""
    if isinstance(target, str):

        def named(ev: Any) -> list[tuple[Any, Any]]:
            out = []  # a loop, not a comprehension (a function made per call)
            for s in ev.state.source.iterate_name(target, ev.scope):
                out.append((s, s))
            return out

        return named
    if isinstance(target, Path):
        compiled = target.compiled
        return lambda ev: ev.state.source.iterate_path(compiled, ev.scope)
    value_of = expr_fn(target)

    def items(ev: Any) -> list[tuple[Any, Any]]:
        source = ev.state.source
        value = value_of(ev)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        return [(item, source.scope_for(item, ev.scope)) for item in items if not is_empty(item)]

    return items


# -- values --------------------------------------------------------------------------------


def materialize(value: Any) -> Any:
    """A value as it goes into a resource: text stripped (empty: None), a source position
    as its text, lists without their empty items."""
    if value is None or isinstance(value, _AS_IS):
        return value
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, list):
        items = [materialize(v) for v in value]
        return [v for v in items if not is_empty(v)] or None
    as_text = getattr(value, "text", None)
    if as_text is not None:
        return as_text.strip() or None
    return value


def truthy(value: Any) -> bool:
    kind = type(value)
    if kind is bool:
        return value  # type: ignore[no-any-return]
    if kind is str or isinstance(value, str):
        return bool(value.strip())
    if kind in TEXT_DECIDES:  # not empty and text not blank: text not blank (values.py)
        return value.text.strip() != ""  # type: ignore[no-any-return]
    if kind is dict or kind is list:  # not empty, and no text attribute: "x" below
        return bool(value)
    if value is None:  # is_empty(None)
        return False
    reader = TEXT_READERS.get(kind)  # its ``text`` property's function, called at once (0149)
    if reader is not None:
        return not is_empty(value) and (reader(value) or "").strip() != ""
    return not is_empty(value) and (getattr(value, "text", "x") or "").strip() != ""
