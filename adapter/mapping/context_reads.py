"""Which context variables a message mapping can read (decision 0144).

A translation is given context variables besides the document (``@facility``,
``@consortium``, ``@original``). ``@original`` (the bytes as received: base64, SHA-1,
SHA-256) costs hashing and encoding the whole message, and only the templates that keep
the original document (the referrals' DocumentReference) read it: it is worked out only
for a message mapping that can reach a read of it (``TranslationContext.variables_for``).

What a message mapping can read is found from its compiled steps, once per mapping and
format folder: every ``@name`` in its steps, in the resource and bundle templates its steps
make, and in the datatypes their ``apply()`` names (all of the folder's datatypes when the
name is not written as a literal), and the context variables the functions it calls read
themselves (``_FUNCTION_READS``). Anything the walk does not know answers "all of them"
(``None``): a variable is then worked out as it always was.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapter.mapping.expressions import Call, Literal, Path, Var
from adapter.mapping.nodes import (
    BundleStep,
    DatatypeTemplate,
    DictNode,
    Each,
    EachStep,
    FirstOf,
    FormatMappings,
    Gate,
    LetStep,
    ListNode,
    MessageMapping,
    ResourceStep,
    ResourceTemplate,
)

# functions of the language that read a context variable themselves (``ev.vars``), not
# through an argument: tests/unit/test_mapping_cpu_0144.py checks the table against the
# functions' sources
FUNCTION_READS: dict[str, frozenset[str]] = {
    "facility_of": frozenset({"consortium"}),
    "level_direction": frozenset({"consortium"}),
}

_PLAIN = (str, int, float, bool, Decimal, type(None))


class _Unknown(Exception):
    """A node the walk does not know: every variable may be read."""


def variables_read(bucket: FormatMappings, mapping: MessageMapping) -> frozenset[str] | None:
    """The variable names ``mapping`` can read when run with ``bucket``'s templates and
    datatypes; None when that cannot be told (then any may be read). Kept per mapping in
    the bucket (a mapping set's templates do not change once loaded)."""
    kept = bucket._reads.get(mapping.name)
    if kept is not None and kept[0] is mapping:
        return kept[1]  # type: ignore[no-any-return]
    walk = _Walk(bucket)
    try:
        walk.steps(mapping.steps)
        found: frozenset[str] | None = frozenset(walk.names)
    except _Unknown:
        found = None
    if len(bucket._reads) < 256:
        bucket._reads[mapping.name] = (mapping, found)
    return found


class _Walk:
    def __init__(self, bucket: FormatMappings) -> None:
        self.bucket = bucket
        self.names: set[str] = set()
        self.templates: set[str] = set()
        self.datatypes: set[str] = set()

    def steps(self, steps: list[Any]) -> None:
        for step in steps:
            kind = type(step)
            if kind is LetStep:
                self.value(step.value)
            elif kind is EachStep:
                if not isinstance(step.target, str):
                    self.value(step.target)
                self.value(step.cond)
                self.steps(step.steps)
            elif kind is ResourceStep or kind is BundleStep:
                self.value(step.cond)
                self.template(step.template)
            else:
                raise _Unknown(kind)

    def template(self, name: str) -> None:
        if name in self.templates:
            return
        self.templates.add(name)
        template = self.bucket.templates.get(name)
        if type(template) is not ResourceTemplate:
            raise _Unknown(name)
        for _let, value in template.lets:
            self.value(value)
        for alternative in template.id_from:
            for part in alternative:
                self.value(part)
        if template.skip is not None:
            self.value(template.skip[0])
            self.value(template.skip[3])
        for condition, _severity, _message, at in template.checks:
            self.value(condition)
            self.value(at)
        self.value(template.body)

    def datatype(self, name: str) -> None:
        if name in self.datatypes:
            return
        self.datatypes.add(name)
        datatype = self.bucket.datatypes.get(name)
        if type(datatype) is not DatatypeTemplate:
            raise _Unknown(name)
        for _let, value in datatype.lets:
            self.value(value)
        self.value(datatype.body)

    def value(self, node: Any) -> None:
        kind = type(node)
        if kind is Var:
            self.names.add(node.name)
        elif kind is Call:
            self.names.update(FUNCTION_READS.get(node.name, ()))
            if node.name == "apply":
                first = node.args[0] if node.args else None
                if type(first) is Literal and type(first.value) is str:
                    self.datatype(first.value)
                else:  # a name worked out per message: any datatype of the folder
                    for name in list(self.bucket.datatypes):
                        self.datatype(name)
            for arg in node.args:
                self.value(arg)
        elif kind is Literal or kind is Path or isinstance(node, _PLAIN):
            return
        elif kind is DictNode:
            for _key, item in node.items:
                self.value(item)
        elif kind is ListNode:
            for item in node.items:
                self.value(item)
        elif kind is Gate:
            self.value(node.cond)
            self.value(node.body)
        elif kind is FirstOf:
            for option in node.options:
                self.value(option)
        elif kind is Each:
            if not isinstance(node.target, str):
                self.value(node.target)
            self.value(node.cond)
            self.value(node.emit)
            for _let, value in node.lets:
                self.value(value)
        else:
            raise _Unknown(kind)
