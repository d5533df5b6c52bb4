"""The Python source the mapping engine generates for expressions and templates
(adapter/mapping/closures.py) holds generated names and fixed names only: every key, text,
number and path of a mapping file is bound in the function's namespace, never written into
the source, so no mapping file can inject code. Checked on the real mapping sets and on a
template made of hostile keys and values, which must also come out as plain data."""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from pathlib import Path

from adapter.mapping import closures
from adapter.mapping.loader import load_mapping_set
from tests.unit.mapping_support import hl7, load, mapping_root, of_type, translate

# the names the generator writes itself (locals, parameters, helpers it binds)
FIXED = {
    "ev", "vars", "get", "state", "source", "resolve", "scope", "vget", "text_of",
    "text_reader", "truthy", "_built", "is_empty", "str", "dict", "list", "type",
    "isinstance", "empty_text", "build", "value", "kind", "strip", "append", "extend",
    "body", "chosen", "text", "read_alternatives", "text_decides", "text_always",
    "plain_sized", "text_readers", "text_property",
    "apply_datatype",  # apply() with a literal name, as the call it makes (decision 0126)
    # a datatype template's application, one function per template (decision 0154)
    "args", "variables", "given", "len", "new", "child",
}  # fmt: skip
# p: a path read kept, t: a value's type (decision 0144)
GENERATED = re.compile(r"^[avdlhpt]\d+$")

HOSTILE = """
status: final
"__import__('os').system('echo pwned')":
  text: "'); __import__('os'); ('"
code:
  text: =OBX-3.2
  note: "=eq(OBX-3.1, '\\"); import os #')"
  items:
    - "{0}"
    - =one_of(OBX-3.1, 'a\\\\', "b'c")
"""


def offending_tokens(source: str) -> list[str]:
    out = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.STRING, tokenize.NUMBER) or (
            token.type == tokenize.NAME
            and not (
                keyword.iskeyword(token.string)
                or token.string in FIXED
                or GENERATED.match(token.string)
            )
        ):
            out.append(token.string)
    return out


def test_generated_source_holds_no_value_of_a_mapping_file(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body=HOSTILE)
    mappings = load(root)
    real = Path(__file__).resolve().parents[2] / "mappings"
    for folder in ("huikang-lis", "jiahe-emr", "kangning-his", "ccda"):
        load_mapping_set(real, folder)
    sources = list(closures._CODE)
    assert any(source.startswith("def build") for source in sources)  # templates too
    for source in sources:
        assert offending_tokens(source) == [], source
        assert "pwned" not in source and "import" not in source
    (basic,) = of_type(
        translate(mappings, hl7("PID|1||P1", "OBR|1||F1", "OBX|1|ST|GLU^血糖||5")), "Basic"
    )
    # the hostile texts are data: keys and values as written
    assert basic["__import__('os').system('echo pwned')"] == {"text": "'); __import__('os'); ('"}
    assert basic["code"]["text"] == "血糖" and basic["code"]["items"] == ["{0}", False]
    assert "note" in basic["code"] and basic["code"]["note"] is False
