"""The expression language of mapping files: parsed once at load time into a small AST.

A value in a mapping file that starts with ``=`` is an expression::

    =OBX-5                      a path into the source document (syntax depends on the format)
    =dtm_to_datetime(OBR-7)     a named transform applied to a path
    =first(OBR-22, MSH-7)       the first non-empty argument
    =@patient                   a variable (a bound resource, the each-item, the facility ...)
    =@cx.4.2                    a path below a variable (components, keys)
    ='literal' / =3.5           literals

Anything else is a literal. ``==text`` is the literal ``=text``.
Paths are opaque to this module: the format's path syntax (HL7 v2 ``PID-3[2].1``, XPath
``cda:id[@root='2.16.156.10011.1.3']/@extension``, JSON ``$.items[0].code``, CSV column
names) is parsed by the format's own ``compile_path`` (docs/mapping-formats.md). A path
token may hold brackets with quotes, spaces and parentheses, and ``()`` after a name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ExpressionSyntaxError(ValueError):
    """An expression could not be parsed; the loader adds file and line."""


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any
    # the node's closures, made once on first use (adapter.mapping.closures): what it
    # evaluates to and what it builds; no part of the node's value or equality
    _value: Any = field(default=None, init=False, repr=False, compare=False, hash=False)
    _build: Any = field(default=None, init=False, repr=False, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    path: tuple[str, ...]  # components below the variable: ("4", "2") or ("id",)
    # the node's closures, made once on first use (adapter.mapping.closures): what it
    # evaluates to and what it builds; no part of the node's value or equality
    _value: Any = field(default=None, init=False, repr=False, compare=False, hash=False)
    _build: Any = field(default=None, init=False, repr=False, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Path:
    text: str
    compiled: Any  # the format's compiled path object
    # the node's closures, made once on first use (adapter.mapping.closures): what it
    # evaluates to and what it builds; no part of the node's value or equality
    _value: Any = field(default=None, init=False, repr=False, compare=False, hash=False)
    _build: Any = field(default=None, init=False, repr=False, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    # the node's closures, made once on first use (adapter.mapping.closures): what it
    # evaluates to and what it builds; no part of the node's value or equality
    _value: Any = field(default=None, init=False, repr=False, compare=False, hash=False)
    _build: Any = field(default=None, init=False, repr=False, compare=False, hash=False)


Expr = Literal | Var | Path | Call

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?(?![\w\-\[.]))
      | (?P<var>@[A-Za-z_][\w]*(?:\.[\w\-]+)*)
      | (?P<call>[a-z_][a-z0-9_]*)\s*\(
      | (?P<punct>[(),])
      | (?P<path>(?:{plain}|{bracket})(?:{plain}|{bracket}|\(\))*)
    )""".format(
        # a path is opaque here: plain characters, brackets that may hold quotes, spaces and
        # parentheses (XPath predicates, nested twice), and ``()`` after a name (``text()``)
        plain=r"""[^\s(),'"\[\]]+""",
        bracket=r"""\[(?:[^\[\]'"]|'[^']*'|"[^"]*"|\[(?:[^\[\]'"]|'[^']*'|"[^"]*"
                    |\[(?:[^\[\]'"]|'[^']*'|"[^"]*")*\])*\])*\]""",
    ),
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ExpressionSyntaxError(f"cannot read expression at {text[pos:]!r}")
        kind = match.lastgroup or ""
        if kind == "path" and out and out[-1][0] == "var" and match.start(kind) == pos:
            written = out[-1][1] + match.group(kind)
            raise ExpressionSyntaxError(
                f"{written!r}: @name is a variable; an attribute of the current element is "
                f"written ./{written}"
            )
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "'": "'", '"': '"', "\\": "\\"}


def _unescape(body: str) -> str:
    """Backslash escapes of a quoted literal (\\n \\t \\r \\' \\" \\\\); any other backslash
    stays, so a regular expression such as '\\d+' reads as written. Works on text: Chinese
    characters next to an escape stay intact."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)


PathCompiler = Callable[[str], Any]


class _Parser:
    def __init__(self, text: str, compile_path: PathCompiler, functions: set[str]) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.compile_path = compile_path
        self.functions = functions

    def parse(self) -> Expr:
        expr = self.expr()
        if self.pos != len(self.tokens):
            raise ExpressionSyntaxError(
                f"unexpected {self.tokens[self.pos][1]!r} in expression {self.text!r}"
            )
        return expr

    def expr(self) -> Expr:
        if self.pos >= len(self.tokens):
            raise ExpressionSyntaxError(f"expression {self.text!r} ends too early")
        kind, value = self.tokens[self.pos]
        self.pos += 1
        if kind == "string":
            body = value[1:-1]
            return Literal(_unescape(body) if "\\" in body else body)
        if kind == "number":
            return Literal(float(value) if "." in value else int(value))
        if kind == "var":
            name, *rest = value[1:].split(".")
            return Var(name, tuple(rest))
        if kind == "call":
            if value not in self.functions:
                known = ", ".join(sorted(self.functions))
                raise ExpressionSyntaxError(f"unknown function {value!r}; known: {known}")
            args: list[Expr] = []
            if self._peek() == ")":
                self.pos += 1
                return Call(value, ())
            while True:
                args.append(self.expr())
                sep = self._next_punct()
                if sep == ")":
                    return Call(value, tuple(args))
                if sep != ",":
                    raise ExpressionSyntaxError(f"expected ',' or ')' in {self.text!r}")
        if kind == "path":
            try:
                return Path(value, self.compile_path(value))
            except ValueError as exc:
                raise ExpressionSyntaxError(str(exc)) from None
        raise ExpressionSyntaxError(f"unexpected {value!r} in expression {self.text!r}")

    def _peek(self) -> str | None:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "punct":
            return self.tokens[self.pos][1]
        return None

    def _next_punct(self) -> str | None:
        punct = self._peek()
        if punct is None:
            raise ExpressionSyntaxError(f"expected ',' or ')' in {self.text!r}")
        self.pos += 1
        return punct


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("=") and not value.startswith("==")


def compile_value(value: Any, compile_path: PathCompiler, functions: set[str]) -> Any:
    """Literal stays literal; ``=...`` becomes an Expr; ``==x`` becomes the literal ``=x``."""
    if isinstance(value, str):
        if value.startswith("=="):
            return Literal(value[1:])
        if value.startswith("="):
            return _Parser(value[1:].strip(), compile_path, functions).parse()
    return Literal(value)
