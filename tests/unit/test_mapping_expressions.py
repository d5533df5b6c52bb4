"""The expression language: literals, paths, variables, calls, and syntax errors that the
loader reports with the file and line of the expression."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.errors import MappingDefinitionError
from adapter.mapping.expressions import (
    Call,
    ExpressionSyntaxError,
    Literal,
    Var,
    compile_value,
)
from adapter.mapping.expressions import Path as PathExpr
from adapter.mapping.functions import FUNCTIONS
from adapter.mapping.hl7v2_paths import Hl7Path, compile_path
from tests.unit.mapping_support import hl7, load, mapping_root, of_type, translate

FUNCS = set(FUNCTIONS)


def compile_(text: object) -> object:
    return compile_value(text, compile_path, FUNCS)


# -- literals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("plain text", "plain text"),
        ("检验科", "检验科"),
        ("==OBX-5", "=OBX-5"),  # a literal that starts with '='
        ("==", "="),
        (3, 3),
        (True, True),
        (None, None),
        ("='quoted'", "quoted"),
        ('="double"', "double"),
        ("=3.5", 3.5),
        ("=-2", -2),
        ("=42", 42),
        ("='血清'", "血清"),
        ("='it\\'s'", "it's"),
        ("='血清\\'s'", "血清's"),  # an escape next to Chinese text keeps the Chinese text
        ("='a\\tb'", "a\tb"),
        ("='\\d+(\\.\\d+)?'", "\\d+(\\.\\d+)?"),  # other backslashes stay: regular expressions
    ],
)
def test_literals(written: object, value: object) -> None:
    compiled = compile_(written)
    assert isinstance(compiled, Literal)
    assert compiled.value == value


def test_a_path_is_compiled_by_the_format() -> None:
    compiled = compile_("=PID-3[2].4.2")
    assert isinstance(compiled, PathExpr)
    assert compiled.compiled == Hl7Path("PID", 3, 2, 4, 2)
    assert str(compiled.compiled) == "PID-3[2].4.2"


@pytest.mark.parametrize(
    ("written", "name", "path"),
    [
        ("=@cx", "cx", ()),
        ("=@cx.4.2", "cx", ("4", "2")),
        ("=@facility.id", "facility", ("id",)),
        ("=@list.1", "list", ("1",)),
        ("=@national_ids", "national_ids", ()),
    ],
)
def test_variables_with_sub_paths(written: str, name: str, path: tuple[str, ...]) -> None:
    assert compile_(written) == Var(name, path)


def test_nested_calls() -> None:
    compiled = compile_("=dtm_to_instant(first(OBR-22, MSH-7, 'x'))")
    assert isinstance(compiled, Call) and compiled.name == "dtm_to_instant"
    (inner,) = compiled.args
    assert isinstance(inner, Call) and inner.name == "first"
    assert [type(a) for a in inner.args] == [PathExpr, PathExpr, Literal]
    assert compile_("=concat()") == Call("concat", ())


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("=frobnicate(OBX-5)", "unknown function 'frobnicate'"),
        ("=first(OBX-5", "expected ',' or ')'"),
        ("=first(OBX-5))", "unexpected ')'"),
        ("=first(OBX-5,)", "unexpected ')'"),
        ("=first(,OBX-5)", "unexpected ','"),
        ("=OBX-5.1.2.3", "not an HL7 v2 path"),
        ("=obx-5", "not an HL7 v2 path"),
        ("=OBX[2]-5", "segment occurrences"),
        ("=OBX-5 OBX-6", "unexpected 'OBX-6'"),
        ("=", "ends too early"),
        ("='unterminated", "cannot read expression"),
    ],
)
def test_syntax_errors(written: str, words: str) -> None:
    with pytest.raises(
        ExpressionSyntaxError,
        match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\["),
    ):
        compile_(written)


# -- syntax errors through the loader: file and line -------------------------------------------


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("=frobnicate(OBX-5)", "unknown function"),
        ("=first(OBX-5", "expected ',' or ')'"),
        ("=OBX-5.1.2.3", "not an HL7 v2 path"),
        ("=concat(OBX-5, 'a'))", "unexpected ')'"),
    ],
)
def test_loader_names_file_and_line_of_a_bad_expression(
    tmp_path: Path, expression: str, words: str
) -> None:
    root = mapping_root(
        tmp_path,
        body=f"""
        status: final
        code:
          text: "{expression}"
    """,
    )
    with pytest.raises(MappingDefinitionError) as caught:
        load(root)
    error = caught.value
    assert error.file.endswith("_shared/hl7v2/resources/thing.yaml")
    # THING has 6 lines up to "body:"; "text:" is the 3rd line of the body
    assert error.line == 9
    assert words in error.message
    assert "thing.yaml:9" in error.message


def test_a_path_in_a_concept_map_file_is_not_allowed_anywhere_but_format_folders() -> None:
    def no_paths(text: str) -> object:
        raise ValueError(f"{text!r}: paths are only allowed in format-specific files")

    with pytest.raises(ExpressionSyntaxError, match="format-specific"):
        compile_value("=OBX-5", no_paths, FUNCS)


def test_wrong_number_of_arguments_is_a_load_error(tmp_path: Path) -> None:
    """A call with too many or too few arguments fails at load time with its line, not as an
    internal error on every message."""
    root = mapping_root(
        tmp_path,
        body="""
        status: =text_to_decimal(OBX-5, OBX-6)
    """,
    )
    with pytest.raises(MappingDefinitionError) as caught:
        load(root)
    assert caught.value.line == 7  # the first line of the body
    assert "text_to_decimal" in caught.value.message
    assert "argument" in caught.value.message


# -- evaluation of the forms ------------------------------------------------------------------


def test_forms_evaluate_against_a_message(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        body="""
        literal: 检验
        escaped: ==OBX-5
        number: =3.5
        path: =OBX-5
        component: =PID-3.4.2
        second_rep: =PID-3[2].1
        facility: =@facility.id
        nested: =upper(first(OBX-99, OBX-6))
        identifiers:
          - each: =PID-3
            as: cx
            emit:
              value: =@cx.1
              authority: =@cx.4.2
    """,
    )
    translation = translate(
        load(root),
        hl7(
            "PID|1||P001^^^LAB&2.16.1&ISO~ID9^^^GA&2.16.156.10011.1.3&ISO",
            "OBR|1||R1|CBC",
            "OBX|1|NM|WBC||6.5|g/l",
        ),
    )
    (thing,) = of_type(translation, "Basic")
    assert thing["literal"] == "检验"
    assert thing["escaped"] == "=OBX-5"
    assert thing["number"] == 3.5
    assert thing["path"] == "6.5"
    assert thing["component"] == "2.16.1"
    assert thing["second_rep"] == "ID9"
    assert thing["facility"] == "test-lab"
    assert thing["nested"] == "G/L"
    assert thing["identifiers"] == [
        {"value": "P001", "authority": "2.16.1"},
        {"value": "ID9", "authority": "2.16.156.10011.1.3"},
    ]


def test_list_variable_index(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/resources/thing.yaml": """\
            version: 1
            kind: resource
            resourceType: Basic
            let:
              reps:
                each: =PID-3
                as: cx
                emit: =@cx.1
            id_from:
              - [=OBX-3.1]
            body:
              first: =@reps.1
              second: =@reps.2
              beyond: =@reps.3
              zero: =@reps.0
        """
        },
    )
    translation = translate(load(root), hl7("PID|1||A~B", "OBR|1||R1", "OBX|1|ST|X||v"))
    (thing,) = of_type(translation, "Basic")
    assert thing == {"resourceType": "Basic", "id": thing["id"], "first": "A", "second": "B"}
