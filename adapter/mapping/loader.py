"""Loading a mapping set: its files collected and overlaid (``folders.py``), each compiled
(``compiler.py``), then every name a file uses checked against what the set defines, so a
mapping error stops start-up with its file and line instead of failing message by message.

``cached_mapping_set`` keeps one compiled set per process and per content of its files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from adapter.mapping import shared_files
from adapter.mapping.closures import prepare_datatype, prepare_message, prepare_template
from adapter.mapping.compiler import (
    Compiler,
    check_codes,
    compile_datatype,
    compile_message,
    compile_resource,
)
from adapter.mapping.folders import (
    COMMON,
    CONCEPT_MAPS,
    KIND_FOLDERS,
    SHARED,
    MappingFile,
    Stamp,
    check_schema,
    collect,
    stamp,
)
from adapter.mapping.formats import FORMATS
from adapter.mapping.nodes import FormatMappings, MappingSet
from adapter.mapping.schema import mapping_schemas
from adapter.mapping.terminology import ConceptMap, concept_map_from_data

__all__ = ["SHARED", "FormatMappings", "MappingSet", "cached_mapping_set", "load_mapping_set"]

# variables a translation gives every mapping (adapter.pipeline.readers.translation_context)
CONTEXT_VARIABLES = frozenset({"facility", "consortium", "original"})


_CACHE: dict[tuple[str, str, tuple[str, ...]], tuple[Stamp, MappingSet]] = {}


def cached_mapping_set(root: Path, folder: str, *, overlays: tuple[str, ...] = ()) -> MappingSet:
    """``load_mapping_set`` once per process and per content of the files (several apps or
    pipelines in one process share the compiled set; a changed file is loaded again)."""
    key = (str(root.resolve()), folder, overlays)
    current = stamp(root, [folder, *overlays])
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == current:
        return hit[1]
    mapping_set = load_mapping_set(root, folder, overlays=overlays)
    _CACHE[key] = (current, mapping_set)
    return mapping_set


def load_mapping_set(root: Path, folder: str, *, overlays: tuple[str, ...] = ()) -> MappingSet:
    """Load, check and compile ``_shared`` overlaid with ``folder`` (``_shared`` alone is fine),
    then with each of ``overlays`` (e.g. a facility's own code tables)."""
    files = collect(root, [folder, *overlays])
    formats: dict[str, FormatMappings] = {}
    concept_maps: dict[str, ConceptMap] = {}
    references: list[tuple[MappingFile, Compiler, str]] = []
    digest = hashlib.sha256()
    versions: dict[str, int] = {}
    # what compiling each format's files needs from the whole set (XML namespace prefixes)
    options = {name: fmt.options(files) for name, fmt in FORMATS.items()}
    schemas = mapping_schemas({name: fmt.match_schema for name, fmt in FORMATS.items()})
    for rel, file in sorted(files.items()):
        content = repr(file.data).encode()
        digest.update(rel.encode())
        digest.update(content)
        versions[rel] = int(file.data["version"])
        parts = rel.split("/")
        # the same file with the same content, read from the same files with the same
        # format options, was compiled by another set of this process: shared, not redone
        key = shared_files.key_of(file, options.get(parts[0]))
        file_hash = shared_files.content_hash(content)
        compiled = shared_files.get(key, file_hash)
        if compiled is None:
            compiled = _compile_file(file, schemas, options)
            shared_files.put(key, file_hash, compiled)
        if compiled.kind == "concept-map":
            concept_maps[Path(rel).stem] = compiled.value
            continue
        fmt = compiled.fmt
        assert fmt is not None
        bucket = formats.setdefault(fmt, FormatMappings())
        name = Path(rel).stem
        if compiled.kind == "resource":
            bucket.templates[name] = compiled.value
        elif compiled.kind == "datatype":
            bucket.datatypes[name] = compiled.value
        elif compiled.kind == "message":
            bucket.messages[name] = compiled.value
        references.append((file, compiled.compiler, fmt))
    common = formats.pop(COMMON, FormatMappings())
    _add_common(common, formats, files)
    _check_references(references, {**formats, COMMON: common}, concept_maps)
    name = "+".join([folder, *overlays])
    return MappingSet(name, formats, concept_maps, digest.hexdigest()[:16], versions)


def _compile_file(
    file: MappingFile, schemas: dict[str, dict[str, Any]], options: dict[str, Any]
) -> shared_files.Compiled:
    """One file checked against its kind's schema and compiled, with its closures made (a
    shared file is prepared once, whichever set compiles it first)."""
    kind = check_schema(file, schemas)
    name = Path(file.rel).stem
    parts = file.rel.split("/")
    if kind == "concept-map":
        if parts[0] != CONCEPT_MAPS:
            raise file.fail(f"concept maps live in {CONCEPT_MAPS}/", ("kind",))
        check_codes(file)
        value = concept_map_from_data(name, file.indexes[0].file, file.data)
        return shared_files.Compiled(kind, None, value, None)
    fmt = _format_folder(file, kind, parts)
    compiler = Compiler(file, fmt, options.get(fmt))
    compiled: Any
    if kind == "resource":
        compiled = compile_resource(file, compiler, name)
        prepare_template(compiled)
    elif kind == "datatype":
        compiled = compile_datatype(file, compiler, name)
        prepare_datatype(compiled)
    else:
        compiled = compile_message(file, compiler, name, FORMATS[fmt], options[fmt])
        prepare_message(compiled)
    return shared_files.Compiled(kind, fmt, compiled, compiler)


def _format_folder(file: MappingFile, kind: str, parts: list[str]) -> str:
    """The format folder a template or message file is in (``common`` included), checked."""
    fmt = parts[0]
    if fmt not in FORMATS and fmt != COMMON:
        raise file.fail(f"unknown format folder {fmt!r}; known: {', '.join([COMMON, *FORMATS])}")
    if fmt == COMMON and kind == "message":
        raise file.fail(
            f"a message mapping reads one format: it lives in <format>/messages/, "
            f"not in {COMMON}/ (which holds resources/ and datatypes/)",
            ("kind",),
        )
    if len(parts) != 3 or parts[1] != KIND_FOLDERS[kind]:
        raise file.fail(
            f"a {kind} file lives in {fmt}/{KIND_FOLDERS[kind]}/, not in {'/'.join(parts[:-1])}/",
            ("kind",),
        )
    return fmt


def _add_common(
    common: FormatMappings, formats: dict[str, FormatMappings], files: dict[str, MappingFile]
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


def _check_references(
    references: list[tuple[MappingFile, Compiler, str]],
    buckets: dict[str, FormatMappings],
    concept_maps: dict[str, ConceptMap],
) -> None:
    """Every variable, concept map, datatype and template a file names exists in the set (a
    ``common/`` file sees the common datatypes only)."""
    bound = set(CONTEXT_VARIABLES).union(*(c.bound for _, c, _ in references))
    for file, compiler, fmt in references:
        for variable, key_path in compiler.variables:
            if variable not in bound:
                hint = FORMATS[fmt].variable_hint(variable) if fmt in FORMATS else ""
                raise file.fail(
                    f"@{variable} is not a variable: no let, each (as), bind, "
                    f"collect or datatype param names it{hint}",
                    key_path,
                )
        for table, key_path in compiler.tables:
            if table not in concept_maps:
                raise file.fail(
                    f"no concept map named {table!r} ({CONCEPT_MAPS}/{table}.yaml)", key_path
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
