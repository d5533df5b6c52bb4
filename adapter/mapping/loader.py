"""Loading a mapping set: ``_shared`` overlaid by a source system's folder, checked, compiled.

Layout (see docs/mapping-language.md)::

    mappings/_shared/concept-maps/<name>.yaml        code tables, shared by every format
    mappings/_shared/common/resources/<name>.yaml     format-neutral resource templates and
    mappings/_shared/common/datatypes/<name>.yaml     datatypes (variables only, no paths):
                                                      usable by every format's files
    mappings/_shared/<format>/messages/<name>.yaml    message mappings (structure + steps)
    mappings/_shared/<format>/resources/<name>.yaml   one resource template each
    mappings/_shared/<format>/datatypes/<name>.yaml   reusable datatype templates
    mappings/<system>/...                             the same layout, only what differs

A file in the system folder with the same relative path replaces the shared one; with
``extends: _shared`` it is merged onto it (mappings merge key by key, lists are replaced,
``null`` removes a key). Every file is checked against the schema of its ``kind`` and every
expression is compiled; errors name the file and line.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from adapter.errors import MappingDefinitionError
from adapter.mapping import formats as source_formats
from adapter.mapping import hl7v2_paths
from adapter.mapping import narrative as _narrative  # noqa: F401  (registers xhtml())
from adapter.mapping.engine import (
    BundleStep,
    DatatypeTemplate,
    DictNode,
    Each,
    EachStep,
    FirstOf,
    Gate,
    LetStep,
    ListNode,
    ResourceStep,
    ResourceTemplate,
)
from adapter.mapping.expressions import (
    Call,
    ExpressionSyntaxError,
    Literal,
    Var,
    compile_value,
)
from adapter.mapping.expressions import (
    Path as PathExpr,
)
from adapter.mapping.schema import SCHEMAS
from adapter.mapping.terminology import ConceptMap, concept_map_from_data
from adapter.mapping.transforms import FUNCTIONS
from adapter.yamlsource import LineIndex, YamlSyntaxError, load_yaml

SHARED = "_shared"
# the folder of format-neutral templates and datatypes: they read variables only (no paths),
# are compiled once and are available to the files of every format
COMMON = "common"
_FUNCTION_NAMES = set(FUNCTIONS)
# variables a translation gives every mapping (adapter.pipeline.readers.translation_context)
CONTEXT_VARIABLES = frozenset({"facility", "consortium", "original"})
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


@dataclass(slots=True)
class MessageMapping:
    name: str
    file: str
    version: int
    format: str
    message_types: list[str]
    structure: Any
    ignore: set[str]
    steps: list[Any]
    match: Any = None  # xml / json / csv: the format's matcher (adapter.mapping.formats)
    ignore_paths: list[Any] = field(default_factory=list)  # xml / json: compiled ignore paths


@dataclass(slots=True)
class FormatMappings:
    messages: dict[str, MessageMapping] = field(default_factory=dict)
    templates: dict[str, ResourceTemplate] = field(default_factory=dict)
    datatypes: dict[str, DatatypeTemplate] = field(default_factory=dict)


@dataclass(slots=True)
class MappingSet:
    """Everything one source system's documents are translated with."""

    folder: str
    formats: dict[str, FormatMappings]
    concept_maps: dict[str, ConceptMap]
    fingerprint: str  # changes whenever any file of the set changes
    files: dict[str, int]  # relative path -> version
    # resource type -> the ``on_conflict`` its templates declare (the first, by file name);
    # storing applies the policy of the template that made each resource (Translation.policies)
    merge_policies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def matching(self, fmt: str, document: Any) -> list[MessageMapping]:
        """The message mappings of an xml / json / csv folder whose ``match:`` holds for
        ``document`` (root element, parsed JSON, CSV table), in file name order."""
        mappings = self.formats.get(fmt)
        if mappings is None:
            return []
        return [
            m
            for _, m in sorted(mappings.messages.items())
            if m.match is not None and m.match.matches(document)
        ]

    def message_for(self, fmt: str, message_type: str) -> MessageMapping | None:
        mappings = self.formats.get(fmt)
        if mappings is None:
            return None
        for mapping in mappings.messages.values():
            if message_type in mapping.message_types:
                return mapping
        return None


@dataclass(slots=True)
class _File:
    rel: str
    data: dict[str, Any]
    indexes: list[LineIndex]  # system file first, then the shared one it extends

    def where(self, key_path: tuple[Any, ...]) -> tuple[str, int | None]:
        for index in self.indexes:
            line = index.lines.get(tuple(key_path))
            if line is not None:
                return index.file, line
        for index in self.indexes:
            line = index.line_of(key_path)
            if line is not None:
                return index.file, line
        return self.indexes[0].file, None

    def fail(self, message: str, key_path: tuple[Any, ...] = ()) -> MappingDefinitionError:
        file, line = self.where(key_path)
        return MappingDefinitionError(message, file=file, line=line)


def _read(path: Path) -> tuple[dict[str, Any], LineIndex]:
    try:
        data, index = load_yaml(path)
    except YamlSyntaxError as exc:
        raise MappingDefinitionError(exc.message, file=exc.file, line=exc.line) from None
    if not isinstance(data, dict):
        raise MappingDefinitionError(
            "a mapping file must be a YAML mapping", file=str(path), line=1
        )
    return data, index


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = _merge(base.get(key), value)
        return out
    return over


def _collect(root: Path, folders: list[str]) -> dict[str, _File]:
    """``_shared`` first, then each folder in order, each replacing or extending the files
    before it at the same relative path."""
    files: dict[str, _File] = {}
    for position, folder in enumerate([SHARED, *[f for f in folders if f != SHARED]]):
        base_dir = root / folder
        if not base_dir.is_dir():
            if position == 0:
                continue
            raise MappingDefinitionError(
                f"mapping folder {folder!r} does not exist under {root}", file=str(base_dir)
            )
        for path in sorted(base_dir.rglob("*.yaml")):
            rel = path.relative_to(base_dir).as_posix()
            data, index = _read(path)
            if data.get("extends") == SHARED:
                base = files.get(rel)
                if base is None:
                    raise MappingDefinitionError(
                        f"extends {SHARED} but no earlier folder has {rel}",
                        file=str(path),
                        line=index.lines.get(("extends",)),
                    )
                merged = _merge(base.data, data)
                merged.pop("extends", None)
                files[rel] = _File(rel, merged, [index, *base.indexes])
            else:
                files[rel] = _File(rel, data, [index])
    return files


def _check_schema(file: _File) -> str:
    kind = file.data.get("kind")
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise file.fail(f"kind must be one of {', '.join(SCHEMAS)} (got {kind!r})", ("kind",))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(file.data), key=lambda e: len(list(e.absolute_path)))
    if errors:
        error = jsonschema.exceptions.best_match(errors) or errors[0]
        key_path = tuple(error.absolute_path)
        where = ".".join(str(p) for p in key_path) or "(top)"
        raise file.fail(f"{where}: {error.message}", key_path)
    return kind


# -- compiling ---------------------------------------------------------------------------------


class _Compiler:
    def __init__(
        self, file: _File, fmt: str | None, namespaces: dict[str, str] | None = None
    ) -> None:
        self.file = file
        self.fmt = fmt
        self.compile_path = (
            source_formats.path_compiler(fmt, namespaces or {})
            if fmt in source_formats.FORMATS
            else _no_paths
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
            return DictNode(items, any(_dynamic(v) for _, v in items))
        if isinstance(node, list):
            items = [self.template(v, (*key_path, i)) for i, v in enumerate(node)]
            return ListNode(items, any(_dynamic(i) for i in items))
        return self.expr(node, key_path)

    def _each(self, node: dict[str, Any], key_path: tuple[Any, ...]) -> Each:
        extra = set(node) - {"each", "as", "if", "emit"}
        if extra or "emit" not in node:
            raise self.file.fail(
                "each takes 'each', 'as', 'if' and 'emit' (the template of one item); "
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
        cond = self.condition(node["if"], (*key_path, "if")) if "if" in node else None
        emit = self.template(node["emit"], (*key_path, "emit"))
        return Each(compiled_target, str(name), cond, emit)

    def group_name(self, target: str, key_path: tuple[Any, ...]) -> str:
        """``each: PATIENT_RESULT`` names an HL7 v2 group or segment; other formats iterate
        paths, written as expressions."""
        if self.fmt == COMMON:
            raise self.file.fail(
                f"each: {target!r}: a file in {COMMON}/ has no groups; iterate a variable, "
                "written as an expression (each: =@name)",
                key_path,
            )
        if self.fmt not in (None, "hl7v2"):
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


def _dynamic(node: Any) -> bool:
    if isinstance(node, Literal):
        return False
    if isinstance(node, PathExpr | Var | Call | Each | Gate | FirstOf):
        return True
    if isinstance(node, DictNode):
        return node.dynamic
    if isinstance(node, ListNode):
        return node.dynamic
    return False


def _namespaces(files: dict[str, _File]) -> dict[str, str]:
    """XML prefixes, declared in the xml message mappings, for every xml file of the set."""
    declared: list[tuple[str, dict[str, str]]] = []
    for rel, file in sorted(files.items()):
        value = file.data.get("namespaces")
        if rel.startswith("xml/") and file.data.get("kind") == "message" and value is not None:
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise file.fail("namespaces maps prefixes to namespace URIs", ("namespaces",))
            declared.append((file.indexes[0].file, value))
            try:
                source_formats.namespaces_of(declared)
            except ValueError as exc:
                raise file.fail(str(exc), ("namespaces",)) from None
    return source_formats.namespaces_of(declared)


def _no_paths(text: str) -> Any:
    raise ValueError(
        f"{text!r}: a file in {COMMON}/ reads variables only (@name); paths belong in a "
        f"format folder ({', '.join(source_formats.FORMATS)})"
    )


def _check_each_targets(
    file: _File,
    steps: list[dict[str, Any]],
    scope: hl7v2_paths.GroupSpec,
    key_path: tuple[Any, ...],
) -> None:
    """``each: OBSERVATIONS`` (a typo) would silently make nothing: a step's group or segment
    must be a part of the group the step runs in."""
    for i, step in enumerate(steps):
        target = step.get("each")
        if not isinstance(target, str):
            continue
        inner = scope
        if not target.startswith("="):
            child = next((c for c in scope.children if c.name == target), None)
            if child is None:
                parts = ", ".join(c.name for c in scope.children) or "nothing"
                raise file.fail(
                    f"each: {target!r} is not a group or segment of {scope.name} "
                    f"(its parts: {parts})",
                    (*key_path, i, "each"),
                )
            inner = (
                child
                if isinstance(child, hl7v2_paths.GroupSpec)
                else hl7v2_paths.GroupSpec(child.name, [])
            )
        _check_each_targets(file, step.get("do") or [], inner, (*key_path, i, "do"))


_KIND_FOLDERS = {"resource": "resources", "datatype": "datatypes", "message": "messages"}


def _check_codes(file: _File) -> None:
    """Codes are text: YAML reads 0010 as the number 8 and yes / true as booleans, and such
    a code would never match what a message says."""
    for code in file.data.get("map") or {}:
        if not isinstance(code, str):
            raise file.fail(
                f"code {code!r} is read by YAML as {type(code).__name__}, not as "
                'text: write codes in quotes ("0010": ...)',
                ("map", code),
            )


def _add_common(
    common: FormatMappings, formats: dict[str, FormatMappings], files: dict[str, _File]
) -> None:
    """Give every format the templates and datatypes of ``common/``; a format file of the same
    name would make a name mean two things, so it is an error."""
    for fmt, bucket in formats.items():
        for kind, own, shared in (
            ("resources", bucket.templates, common.templates),
            ("datatypes", bucket.datatypes, common.datatypes),
        ):
            for name in sorted(set(own) & set(shared)):
                raise files[f"{fmt}/{kind}/{name}.yaml"].fail(
                    f"{name!r} is also {COMMON}/{kind}/{name}.yaml: a template name means one "
                    f"template for every format (rename one, or override the {COMMON} file)"
                )
            own.update(shared)


_Stamp = tuple[tuple[str, int, int], ...]
_CACHE: dict[tuple[str, str, tuple[str, ...]], tuple[_Stamp, MappingSet]] = {}


def _stamp(root: Path, folders: list[str]) -> tuple[tuple[str, int, int], ...]:
    """Every file of the folders with its modification time and size: a change in any of
    them (a mapping fix) makes the cached set stale."""
    out: list[tuple[str, int, int]] = []
    for folder in [SHARED, *folders]:
        base = root / folder
        if base.is_dir():
            for path in sorted(base.rglob("*.yaml")):
                stat = path.stat()
                out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def cached_mapping_set(root: Path, folder: str, *, overlays: tuple[str, ...] = ()) -> MappingSet:
    """``load_mapping_set`` once per process and per content of the files (several apps or
    pipelines in one process share the compiled set; a changed file is loaded again)."""
    key = (str(root.resolve()), folder, overlays)
    stamp = _stamp(root, [folder, *overlays])
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    mapping_set = load_mapping_set(root, folder, overlays=overlays)
    _CACHE[key] = (stamp, mapping_set)
    return mapping_set


def load_mapping_set(root: Path, folder: str, *, overlays: tuple[str, ...] = ()) -> MappingSet:
    """Load, check and compile ``_shared`` overlaid with ``folder`` (``_shared`` alone is fine),
    then with each of ``overlays`` (e.g. a facility's own code tables)."""
    files = _collect(root, [folder, *overlays])
    formats: dict[str, FormatMappings] = {}
    concept_maps: dict[str, ConceptMap] = {}
    references: list[tuple[_File, _Compiler, str]] = []
    digest = hashlib.sha256()
    versions: dict[str, int] = {}
    namespaces = _namespaces(files)
    merge_policies: dict[str, dict[str, Any]] = {}
    for rel, file in sorted(files.items()):
        kind = _check_schema(file)
        digest.update(rel.encode())
        digest.update(repr(file.data).encode())
        versions[rel] = int(file.data["version"])
        name = Path(rel).stem
        parts = rel.split("/")
        if kind == "concept-map":
            if parts[0] != "concept-maps":
                raise file.fail("concept maps live in concept-maps/", ("kind",))
            _check_codes(file)
            concept_maps[name] = concept_map_from_data(name, file.indexes[0].file, file.data)
            continue
        fmt = parts[0]
        if fmt not in source_formats.FORMATS and fmt != COMMON:
            raise file.fail(
                f"unknown format folder {fmt!r}; known: "
                f"{', '.join([COMMON, *source_formats.FORMATS])}"
            )
        if fmt == COMMON and kind == "message":
            raise file.fail(
                f"a message mapping reads one format: it lives in <format>/messages/, "
                f"not in {COMMON}/ (which holds resources/ and datatypes/)",
                ("kind",),
            )
        if len(parts) != 3 or parts[1] != _KIND_FOLDERS[kind]:
            raise file.fail(
                f"a {kind} file lives in {fmt}/{_KIND_FOLDERS[kind]}/, not in "
                f"{'/'.join(parts[:-1])}/",
                ("kind",),
            )
        compiler = _Compiler(file, fmt, namespaces)
        bucket = formats.setdefault(fmt, FormatMappings())
        data = file.data
        if kind == "resource":
            if "on_conflict" in data:
                merge_policies.setdefault(data["resourceType"], data["on_conflict"])
            skip = None
            if "skip" in data:
                skip = (
                    compiler.condition(data["skip"]["if"], ("skip", "if")),
                    data["skip"]["reason"],
                )
            body = compiler.template(data["body"], ("body",))
            if not isinstance(body, DictNode):
                raise file.fail(
                    "body holds the resource's elements; a condition on the whole "
                    "resource is written as skip: {if: ..., reason: ...}",
                    ("body",),
                )
            bucket.templates[name] = ResourceTemplate(
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
        elif kind == "datatype":
            compiler.bound.update(str(p) for p in data.get("params", []))
            bucket.datatypes[name] = DatatypeTemplate(
                name=name,
                file=file.indexes[0].file,
                params=list(data.get("params", [])),
                lets=compiler.lets(data.get("let"), ("let",)),
                body=compiler.template(data["body"], ("body",)),
            )
        elif kind == "message":
            if data["format"] != fmt:
                raise file.fail(
                    f"format {data['format']!r} does not match folder {fmt!r}", ("format",)
                )
            for key, only in (("structure", "hl7v2"), ("namespaces", "xml")):
                if key in data and fmt != only:
                    raise file.fail(f"{key} is for {only} message mappings only", (key,))
            try:
                structure = hl7v2_paths.compile_structure(data.get("structure") or [])
            except (ValueError, KeyError, TypeError) as exc:
                raise file.fail(f"structure: {exc}", ("structure",)) from None
            try:
                match = source_formats.compile_match(fmt, data["match"], namespaces)
            except source_formats.MatchError as exc:
                raise file.fail(f"match: {exc}", ("match", exc.key)) from None
            ignore_paths = []
            for i, entry in enumerate(data.get("ignore", [])):
                try:
                    ignore_paths.append(source_formats.compile_ignore(fmt, entry, namespaces))
                except ValueError as exc:
                    raise file.fail(f"ignore: {exc}", ("ignore", i)) from None
            mapping = MessageMapping(
                name=name,
                file=file.indexes[0].file,
                version=int(data["version"]),
                format=fmt,
                message_types=list(data["match"].get("message_type", [])),
                structure=structure,
                ignore={str(p) for p in ignore_paths}
                if fmt == "csv"
                else set(data.get("ignore", [])),
                steps=compiler.steps(data["produce"], ("produce",)),
                match=match,
                ignore_paths=ignore_paths,
            )
            bucket.messages[name] = mapping
            if fmt == "hl7v2":
                _check_each_targets(file, data["produce"], structure, ("produce",))
        references.append((file, compiler, fmt))
    common = formats.pop(COMMON, FormatMappings())
    _add_common(common, formats, files)
    buckets = {**formats, COMMON: common}
    # every name used must exist
    bound = set(CONTEXT_VARIABLES).union(*(c.bound for _, c, _ in references))
    for file, compiler, fmt in references:
        for variable, key_path in compiler.variables:
            if variable not in bound:
                hint = (
                    f"; an attribute of the current element is written ./@{variable}"
                    if fmt == "xml"
                    else ""
                )
                raise file.fail(
                    f"@{variable} is not a variable: no let, each (as), bind, "
                    f"collect or datatype param names it{hint}",
                    key_path,
                )
        for table, key_path in compiler.tables:
            if table not in concept_maps:
                raise file.fail(
                    f"no concept map named {table!r} (concept-maps/{table}.yaml)", key_path
                )
        for datatype, given, key_path in compiler.datatypes:
            found = buckets[fmt].datatypes.get(datatype)
            if found is None:
                raise file.fail(
                    f"no datatype template named {datatype!r} ({fmt}/datatypes/{datatype}.yaml)",
                    key_path,
                )
            if given != len(found.params):
                raise file.fail(
                    f"datatype {datatype!r} takes {len(found.params)} argument(s) "
                    f"({', '.join(found.params)}), {given} given",
                    key_path,
                )
        for template, key_path in compiler.resources:
            if template not in buckets[fmt].templates:
                raise file.fail(
                    f"no resource template named {template!r} ({fmt}/resources/{template}.yaml)",
                    key_path,
                )
        for template, key_path in compiler.bundles:
            found_type = buckets[fmt].templates[template].resource_type
            if found_type != "Bundle":
                raise file.fail(
                    f"a bundle step needs a Bundle template; {template!r} makes {found_type}",
                    key_path,
                )
    name = "+".join([folder, *overlays])
    return MappingSet(
        name, formats, concept_maps, digest.hexdigest()[:16], versions, merge_policies
    )
