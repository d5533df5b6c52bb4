"""Compiling mapping files into the nodes of ``adapter.mapping.nodes``: expressions (with the
format's path syntax), templates, the steps of message mappings; arities of functions.

The compiler checks what one file can show by itself (syntax, function names and argument
counts, structure); names that other files define (variables, concept maps, datatypes,
templates) are noted and checked by the loader once the whole set is compiled.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

from adapter.mapping.expressions import Call, ExpressionSyntaxError, Literal, Var, compile_value
from adapter.mapping.folders import COMMON, MappingFile
from adapter.mapping.formats import FORMATS, MatchError, SourceFormat
from adapter.mapping.functions import FUNCTIONS
from adapter.mapping.functions.placeholders import placeholder_table
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
    is_dynamic,
)

_FUNCTION_NAMES = set(FUNCTIONS)
_TABLE_FUNCTIONS = {"map", "map_display", "map_system", "coding"}


def _arity(func: Any) -> tuple[int, int | None]:
    """(fewest, most) arguments a transform takes after the evaluation; most None: any."""
    params = list(inspect.signature(func).parameters.values())[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return sum(
            1 for p in params if p.kind is not p.VAR_POSITIONAL and p.default is p.empty
        ), None
    return sum(1 for p in params if p.default is p.empty), len(params)


_ARITY = {name: _arity(func) for name, func in FUNCTIONS.items()}


class Compiler:
    """Compiles the expressions, templates and steps of one file, and notes every name they
    use (variables, concept maps, datatypes, templates) for the loader to check once the
    whole set is compiled."""

    def __init__(self, file: MappingFile, fmt: str | None, options: Any = None) -> None:
        """``fmt``: the folder the file is in (a format, or ``common``); ``options``: what the
        format's paths need from the whole set (``SourceFormat.options``)."""
        self.file = file
        self.fmt = fmt
        source_format = FORMATS.get(fmt or "")
        self.has_groups = fmt is None or (source_format is not None and source_format.has_groups)
        self.compile_path: Callable[[str], Any] = (
            partial(source_format.compile_path, options=options)
            if source_format is not None
            else no_paths
        )
        self.variables: list[tuple[str, tuple[Any, ...]]] = []  # (@name used, where)
        self.bound: set[str] = set()  # names this file binds (let, as, bind, collect, params)
        self.tables: list[tuple[str, tuple[Any, ...]]] = []
        # (datatype name, number of arguments given to it, where)
        self.datatypes: list[tuple[str, int, tuple[Any, ...]]] = []
        self.resources: list[tuple[str, tuple[Any, ...]]] = []  # templates named by steps
        self.bundles: list[tuple[str, tuple[Any, ...]]] = []  # templates of bundle steps

    def expr(self, value: Any, key_path: tuple[Any, ...]) -> Any:
        try:
            compiled = compile_value(value, self.compile_path, _FUNCTION_NAMES)
        except ExpressionSyntaxError as exc:
            raise self.file.fail(f"{exc}", key_path) from None
        self._note_references(compiled, key_path)
        return compiled

    def _note_references(self, node: Any, key_path: tuple[Any, ...]) -> None:
        if isinstance(node, Var):
            self.variables.append((node.name, key_path))
        if isinstance(node, Call):
            least, most = _ARITY[node.name]
            if not least <= len(node.args) <= (most if most is not None else len(node.args)):
                wanted = (
                    f"{least}"
                    if least == most
                    else f"at least {least}"
                    if most is None
                    else f"{least} to {most}"
                )
                raise self.file.fail(
                    f"{node.name}() takes {wanted} argument(s), {len(node.args)} given", key_path
                )
            if node.name in _TABLE_FUNCTIONS and node.args and isinstance(node.args[0], Literal):
                self.tables.append((str(node.args[0].value), key_path))
            if node.name == "present" and node.args and isinstance(node.args[0], Literal):
                # present(kind, x) reads the concept map placeholder-<kind>
                self.tables.append((placeholder_table(str(node.args[0].value)), key_path))
            if node.name == "apply" and node.args and isinstance(node.args[0], Literal):
                self.datatypes.append((str(node.args[0].value), len(node.args) - 1, key_path))
            for arg in node.args:
                self._note_references(arg, key_path)

    def condition(self, value: Any, key_path: tuple[Any, ...]) -> Any:
        if not isinstance(value, str) or not value.startswith("="):
            raise self.file.fail("a condition must be an expression starting with '='", key_path)
        return self.expr(value, key_path)

    def template(self, node: Any, key_path: tuple[Any, ...]) -> Any:
        if isinstance(node, dict):
            if "each" in node:
                return self._each(node, key_path)
            if "first_of" in node:
                extra = set(node) - {"first_of"}
                if extra or not isinstance(node["first_of"], list):
                    raise self.file.fail(
                        "first_of takes a list of alternatives and nothing else", key_path
                    )
                return FirstOf(
                    [
                        self.template(option, (*key_path, "first_of", i))
                        for i, option in enumerate(node["first_of"])
                    ]
                )
            if "if" in node:
                cond = self.condition(node["if"], (*key_path, "if"))
                rest = {k: v for k, v in node.items() if k != "if"}
                return Gate(cond, self.template(rest, key_path))
            items = [(str(k), self.template(v, (*key_path, k))) for k, v in node.items()]
            return DictNode(items, any(is_dynamic(v) for _, v in items))
        if isinstance(node, list):
            items = [self.template(v, (*key_path, i)) for i, v in enumerate(node)]
            return ListNode(items, any(is_dynamic(i) for i in items))
        return self.expr(node, key_path)

    def _each(self, node: dict[str, Any], key_path: tuple[Any, ...]) -> Each:
        extra = set(node) - {"each", "as", "let", "if", "emit"}
        if extra or "emit" not in node:
            raise self.file.fail(
                "each takes 'each', 'as', 'let', 'if' and 'emit' (the template of one item); "
                f"unexpected: {', '.join(sorted(extra)) or 'no emit'}",
                key_path,
            )
        target = node["each"]
        compiled_target: Any
        if isinstance(target, str) and target.startswith("="):
            compiled_target = self.expr(target, (*key_path, "each"))
        elif isinstance(target, str):
            compiled_target = self.group_name(target, (*key_path, "each"))
        else:
            raise self.file.fail("each names a group or segment, or is an expression", key_path)
        name = node.get("as", "it")
        self.bound.add(str(name))
        lets = node.get("let")
        if lets is not None and not isinstance(lets, dict):
            raise self.file.fail("let inside each is a block of name: value", (*key_path, "let"))
        compiled_lets = self.lets(lets, (*key_path, "let"))
        cond = self.condition(node["if"], (*key_path, "if")) if "if" in node else None
        emit = self.template(node["emit"], (*key_path, "emit"))
        return Each(compiled_target, str(name), cond, emit, lets=compiled_lets)

    def group_name(self, target: str, key_path: tuple[Any, ...]) -> str:
        """``each: PATIENT_RESULT`` names an HL7 v2 group or segment; other formats iterate
        paths, written as expressions."""
        if self.fmt == COMMON:
            raise self.file.fail(
                f"each: {target!r}: a file in {COMMON}/ has no groups; iterate a variable, "
                "written as an expression (each: =@name)",
                key_path,
            )
        if not self.has_groups:
            raise self.file.fail(
                f"each: {target!r}: {self.fmt} has no groups; iterate a path, "
                f"written as an expression (each: ={target})",
                key_path,
            )
        return target

    def lets(self, data: dict[str, Any] | None, key_path: tuple[Any, ...]) -> list[tuple[str, Any]]:
        self.bound.update(str(k) for k in data or {})
        return [(str(k), self.template(v, (*key_path, k))) for k, v in (data or {}).items()]

    def steps(self, steps: list[dict[str, Any]], key_path: tuple[Any, ...]) -> list[Any]:
        out: list[Any] = []
        for i, step in enumerate(steps):
            here = (*key_path, i)
            cond = self.condition(step["if"], (*here, "if")) if "if" in step else None
            if "each" in step:
                target = step["each"]
                compiled = (
                    self.expr(target, (*here, "each"))
                    if target.startswith("=")
                    else self.group_name(target, (*here, "each"))
                )
                out.append(EachStep(compiled, self.steps(step["do"], (*here, "do")), cond))
            elif "resource" in step:
                self.resources.append((step["resource"], (*here, "resource")))
                self.bound.update(n for n in (step.get("bind"), step.get("collect")) if n)
                out.append(
                    ResourceStep(step["resource"], step.get("bind"), step.get("collect"), cond)
                )
            elif "bundle" in step:
                self.resources.append((step["bundle"], (*here, "bundle")))
                self.bundles.append((step["bundle"], (*here, "bundle")))
                out.append(BundleStep(step["bundle"], step.get("first"), cond))
            else:
                for name, value in step["let"].items():
                    self.bound.add(str(name))
                    out.append(LetStep(str(name), self.template(value, (*here, "let", name))))
        return out


def no_paths(text: str) -> Any:
    raise ValueError(
        f"{text!r}: a file in {COMMON}/ reads variables only (@name); paths belong in a "
        f"format folder ({', '.join(FORMATS)})"
    )


def compile_resource(file: MappingFile, compiler: Compiler, name: str) -> ResourceTemplate:
    data = file.data
    skip = None
    if "skip" in data:
        skip = (
            compiler.condition(data["skip"]["if"], ("skip", "if")),
            data["skip"]["reason"],
            data["skip"].get("severity", "information"),
            compiler.condition(data["skip"]["at"], ("skip", "at"))
            if "at" in data["skip"]
            else None,
        )
    body = compiler.template(data["body"], ("body",))
    if not isinstance(body, DictNode):
        raise file.fail(
            "body holds the resource's elements; a condition on the whole "
            "resource is written as skip: {if: ..., reason: ...}",
            ("body",),
        )
    return ResourceTemplate(
        name=name,
        file=file.indexes[0].file,
        resource_type=data["resourceType"],
        lets=compiler.lets(data.get("let"), ("let",)),
        id_from=[
            [compiler.template(p, ("id_from", i, j)) for j, p in enumerate(alt)]
            for i, alt in enumerate(data["id_from"])
        ],
        required=list(data.get("required", [])),
        skip=skip,
        body=body,
        checks=[
            (
                compiler.condition(c["if"], ("checks", i, "if")),
                c["severity"],
                c["message"],
                compiler.condition(c["at"], ("checks", i, "at")) if "at" in c else None,
            )
            for i, c in enumerate(data.get("checks", []))
        ],
        on_conflict=data.get("on_conflict"),
    )


def compile_datatype(file: MappingFile, compiler: Compiler, name: str) -> DatatypeTemplate:
    data = file.data
    compiler.bound.update(str(p) for p in data.get("params", []))
    return DatatypeTemplate(
        name=name,
        file=file.indexes[0].file,
        params=list(data.get("params", [])),
        lets=compiler.lets(data.get("let"), ("let",)),
        body=compiler.template(data["body"], ("body",)),
    )


def compile_message(
    file: MappingFile, compiler: Compiler, name: str, fmt: SourceFormat, options: Any
) -> MessageMapping:
    data = file.data
    if data["format"] != fmt.name:
        raise file.fail(
            f"format {data['format']!r} does not match folder {fmt.name!r}", ("format",)
        )
    for key in ("structure", "namespaces", "embedded"):
        if key in data and key not in fmt.message_keys:
            only = next(f.name for f in FORMATS.values() if key in f.message_keys)
            raise file.fail(f"{key} is for {only} message mappings only", (key,))
    structure = fmt.compile_structure(file)
    try:
        match = fmt.compile_match(data["match"], options)
    except MatchError as exc:
        raise file.fail(f"match: {exc}", ("match", exc.key)) from None
    ignore = []
    for i, entry in enumerate(data.get("ignore", [])):
        try:
            ignore.append(fmt.compile_ignore(entry, options))
        except ValueError as exc:
            raise file.fail(f"ignore: {exc}", ("ignore", i)) from None
    try:
        clinical = fmt.compile_clinical(data.get("clinical", list(fmt.default_clinical)))
    except ValueError as exc:
        raise file.fail(f"clinical: {exc}", ("clinical",)) from None
    embedded = None
    if "embedded" in data:
        try:
            embedded = fmt.compile_path(data["embedded"]["xpath"], options)
        except ValueError as exc:
            raise file.fail(f"embedded: {exc}", ("embedded", "xpath")) from None
    mapping = MessageMapping(
        name=name,
        file=file.indexes[0].file,
        version=int(data["version"]),
        format=fmt.name,
        match=match,
        structure=structure,
        ignore=ignore,
        clinical=clinical,
        steps=compiler.steps(data["produce"], ("produce",)),
        embedded=embedded,
    )
    fmt.check_steps(file, mapping)
    return mapping


def check_codes(file: MappingFile) -> None:
    """Codes are text: YAML reads 0010 as the number 8 and yes / true as booleans, and such
    a code would never match what a message says."""
    for code in file.data.get("map") or {}:
        if not isinstance(code, str):
            raise file.fail(
                f"code {code!r} is read by YAML as {type(code).__name__}, not as "
                'text: write codes in quotes ("0010": ...)',
                ("map", code),
            )
