"""Source formats are objects of one protocol in one table (adapter/mapping/formats): the
table says what each consortium format is read with, and a new format is one class, added to
the table, with nothing else changed (the loader, compiler and pipeline read the table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from adapter.errors import Issue, MappingDefinitionError
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping.formats import BY_SOURCE_FORMAT, FORMATS, MEDIA_TYPES
from adapter.mapping.formats.base import Parsed, SourceFormat
from adapter.mapping.nodes import MessageMapping
from adapter.pipeline.readers import read_document
from tests.unit.mapping_support import context, errors, load, of_type, write


def test_the_table_of_formats() -> None:
    assert list(FORMATS) == ["hl7v2", "xml", "json", "csv"]
    assert {source: f.name for source, f in BY_SOURCE_FORMAT.items()} == {
        "hl7v2": "hl7v2",
        "cda": "xml",
        "xml": "xml",
        "json": "json",
        "csv": "csv",
    }
    assert MEDIA_TYPES == {
        "hl7v2": "x-application/hl7-v2+er7",
        "cda": "application/hl7-cda+xml",
        "xml": "application/xml",
        "json": "application/json",
        "csv": "text/csv",
    }


# -- a toy format: ``key=value`` lines, paths are keys -----------------------------------------


@dataclass(slots=True)
class Line:
    number: int
    key: str
    value: str

    @property
    def text(self) -> str:
        return self.value

    @property
    def location(self) -> str:
        return f"line {self.number}"

    def is_empty(self) -> bool:
        return not self.value.strip()


@dataclass(slots=True)
class KeyValueSource:
    lines: dict[str, Line]
    read: set[str] = field(default_factory=set)

    def resolve(self, path: str, scope: Any) -> Line | None:
        self.read.add(path)
        return self.lines.get(path)

    def iterate_path(self, path: str, scope: Any) -> list[tuple[Any, Any]]:
        found = self.resolve(path, scope)
        return [(found, scope)] if found else []

    def scope_for(self, item: Any, scope: Any) -> Any:
        return scope

    def iterate_name(self, name: str, scope: Any) -> list[Any]:
        return []

    def describe(self, scope: Any) -> str | None:
        return "document"


@dataclass(frozen=True, slots=True)
class HasKeys:
    keys: tuple[str, ...]

    def matches(self, document: dict[str, Line]) -> bool:
        return set(self.keys) <= set(document)

    def describe(self) -> str:
        return "keys " + ", ".join(self.keys)


class KeyValueFormat(SourceFormat):
    name = "kv"
    media_types: ClassVar[dict[str, str]] = {"kv": "text/x-key-value"}
    match_schema: ClassVar[dict[str, Any]] = {
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {"type": "string"}}},
    }

    def parse(
        self, raw: bytes, *, max_bytes: int | None = None, limits: InputLimits = DEFAULT_LIMITS
    ) -> Parsed:
        lines = {}
        for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            key, _, value = line.partition("=")
            lines[key.strip()] = Line(number, key.strip(), value.strip())
        return Parsed(lines, "utf-8", [])

    def compile_path(self, text: str, options: Any) -> str:
        if not text.isidentifier():
            raise ValueError(f"{text!r} is not a key")
        return text

    def compile_match(self, match: dict[str, Any], options: Any) -> HasKeys:
        return HasKeys(tuple(match["keys"]))

    def start(
        self, document: dict[str, Line], mapping: MessageMapping
    ) -> tuple[KeyValueSource, Any, list[Issue]]:
        return KeyValueSource(document), None, []

    def unread(
        self, document: dict[str, Line], source: Any, mapping: MessageMapping
    ) -> list[tuple[str, str, bool]]:
        ignored = set(mapping.ignore)
        return [
            (line.location, "line", "*" in mapping.clinical or key in mapping.clinical)
            for key, line in document.items()
            if key not in source.read and key not in ignored
        ]


FILES = {
    "_shared/kv/messages/person.yaml": """\
        version: 1
        kind: message
        format: kv
        match: {keys: [nid]}
        ignore: [sent]
        produce:
          - let: {nid: =nid, who: =name}
          - resource: person
    """,
    # a common template: it serves the new format as it serves the others
    "_shared/common/resources/person.yaml": """\
        version: 1
        kind: resource
        resourceType: Patient
        id_from: [[national-id, =@nid]]
        body:
          identifier: [{system: "urn:oid:2.16.156.10011.1.3", value: =national_id(@nid)}]
          name: [{text: =@who}]
    """,
}


@pytest.fixture
def kv_format(monkeypatch: pytest.MonkeyPatch) -> KeyValueFormat:
    kv = KeyValueFormat()
    monkeypatch.setitem(FORMATS, kv.name, kv)
    monkeypatch.setitem(BY_SOURCE_FORMAT, "kv", kv)
    return kv


def test_a_new_format_is_one_class_in_the_table(kv_format: KeyValueFormat, tmp_path: Path) -> None:
    mappings = load(write(tmp_path, FILES))
    raw = "nid=110101199003078515\nname=张三\nsent=20261120\nward=3\n".encode()
    document = read_document("kv", raw, max_bytes=1000)  # the pipeline's reader
    translation = document.translate(mappings, *_facility())
    assert not errors(translation.issues)
    (patient,) = of_type(translation, "Patient")
    assert patient["name"] == [{"text": "张三"}]
    assert translation.unread == ["line 4"]  # ward: not read, not ignored
    direct = kv_format.translate(mappings, kv_format.parse(raw).document, context())
    assert of_type(direct, "Patient") == [patient]


def test_the_new_format_checks_its_own_match_and_paths(
    kv_format: KeyValueFormat, tmp_path: Path
) -> None:
    bad_match = FILES["_shared/kv/messages/person.yaml"].replace("{keys: [nid]}", "{kees: [nid]}")
    root = write(tmp_path / "a", {**FILES, "_shared/kv/messages/person.yaml": bad_match})
    with pytest.raises(MappingDefinitionError, match="match: 'keys' is a required property"):
        load(root)
    bad_path = FILES["_shared/kv/messages/person.yaml"].replace("=name", "=na-me")
    root = write(tmp_path / "b", {**FILES, "_shared/kv/messages/person.yaml": bad_path})
    with pytest.raises(MappingDefinitionError, match="'na-me' is not a key"):
        load(root)


def test_without_the_table_entry_the_folder_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(MappingDefinitionError, match="format: 'kv' is not one of"):
        load(write(tmp_path, FILES))


def _facility() -> tuple[Any, Any]:
    from zoneinfo import ZoneInfo

    from adapter.consortium import Facility

    facility = Facility.model_validate(
        {
            "id": "test-lab",
            "name": "测试",
            "level": "county",
            "namespace": "https://example.cn/sid/t",
        }
    )
    return facility, ZoneInfo("Asia/Shanghai")
