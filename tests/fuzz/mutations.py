"""Mutated real inputs for the fuzz suite: every fixture message of every input format
(HL7 v2, CDA and other XML, JSON, CSV) with one to three mutations drawn by hypothesis.

Mutations: byte flips, truncation, duplication of a line (an HL7 v2 segment, a CSV row, an
XML element on its own line), insertion of odd characters (NUL and other controls, byte
order marks, separators, surrogate bytes, bidi marks, emoji), a wrong encoding (the text
re-encoded in another character set), huge or odd numbers in place of a number, and deep
nesting or over-long structure in the format's own syntax (JSON arrays and objects, XML
elements, HL7 v2 repetitions, components and segments, CSV columns).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from adapter.consortium import load_consortium
from adapter.settings import DEFAULT_CONSORTIUM

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
FORMATS = ("hl7v2", "xml", "json", "csv")
CONTENT_TYPES = {
    "hl7v2": "x-application/hl7-v2+er7",
    "xml": "application/xml",
    "json": "application/json",
    "csv": "text/csv",
}


@dataclass(frozen=True, slots=True)
class Sample:
    fmt: str  # hl7v2, xml (CDA included), json, csv
    source: str  # the X-Source-System it is sent as
    name: str
    raw: bytes


def _samples() -> dict[str, list[Sample]]:
    """Every fixture message, by format, with the source system whose folder it is in."""
    consortium = load_consortium(DEFAULT_CONSORTIUM)
    known = {s.id: s.format for f in consortium.facilities for s in f.sources}
    found: dict[str, list[Sample]] = {fmt: [] for fmt in FORMATS}
    patterns = {"hl7v2": "*.hl7", "xml": "*.xml", "json": "*.json", "csv": "*.csv"}
    for fmt, pattern in patterns.items():
        for path in sorted(FIXTURES.rglob(pattern)):
            if "peer" in path.parts or path.name.endswith(".expected.json"):
                continue
            source = path.parent.name
            if source not in known and fmt == "hl7v2":
                source = "std-hl7v2"  # fixtures/hl7v2/bad: malformed on purpose
            if source not in known:
                continue
            wanted = "xml" if known[source] in ("cda", "xml") else known[source]
            if wanted == fmt:
                found[fmt].append(Sample(fmt, source, path.name, path.read_bytes()))
    return found


SAMPLES = _samples()

# -- the mutations -------------------------------------------------------------------------------

Mutation = Callable[[bytes], bytes]

ODD = [
    b"\x00",
    b"\x01",
    b"\x1b",
    b"\x7f",
    b"\x0b",
    b"\x1c\r",
    b"\r",
    b"\n",
    b"\r\n\r\n",
    b"\xef\xbb\xbf",  # a byte order mark in the middle
    b"\xff\xfe",
    b"\xed\xa0\x80",  # a UTF-8 encoded surrogate
    b"\xc0\x80",  # an overlong NUL
    b"\xff",
    b"\x81",  # half a GB18030 character
    "\u202e".encode(),  # right-to-left override
    "\ufffd".encode(),
    "\U0001f600".encode(),
    "𠀀䶵龥".encode(),  # CJK extension B and rare characters
    "\u3000".encode(),  # ideographic space
    b"|",
    b"^",
    b"~",
    b"\\",
    b"&",
    b"<",
    b">",
    b'"',
    b"'",
    b",",
    b"]]>",
    b"&#0;",
    b"&#xD800;",
    b"&unknown;",
    b"\\X00\\",
    b"\\Xzz\\",
    b"\\E",
    b"%00",
    b"MSH|^~\\&|",
    b"{",
    b"}",
    b"[",
    b"]",
]

NUMBERS = [
    b"9" * 20,
    b"9" * 400,
    b"1" + b"0" * 30 + b".5",
    b"0." + b"3" * 40,
    b"1e309",
    b"-1e309",
    b"1E-400",
    b"-0",
    b"NaN",
    b"Infinity",
    b"0x1F",
    "１２３".encode(),  # full-width digits
    "²".encode(),
    b"99999999999999999999.99999999999999999999",
]

ENCODINGS = ["gb18030", "utf-16", "utf-16-be", "latin-1", "cp1252", "utf-32", "big5"]
_NUMBER = re.compile(rb"\d+(?:\.\d+)?")


def flip(position: int, value: int) -> Mutation:
    def mutate(raw: bytes) -> bytes:
        if not raw:
            return bytes([value])
        i = position % len(raw)
        return raw[:i] + bytes([value]) + raw[i + 1 :]

    return mutate


def truncate(position: int) -> Mutation:
    return lambda raw: raw[: position % (len(raw) + 1)]


def _lines(raw: bytes) -> list[bytes]:
    return re.split(rb"(?<=[\r\n])", raw)


def duplicate_line(position: int, copies: int) -> Mutation:
    def mutate(raw: bytes) -> bytes:
        lines = _lines(raw)
        i = position % len(lines)
        line = lines[i] if lines[i].endswith((b"\r", b"\n")) else lines[i] + b"\r"
        return b"".join(lines[:i] + [line] * copies + lines[i:])

    return mutate


def insert(position: int, odd: bytes) -> Mutation:
    def mutate(raw: bytes) -> bytes:
        i = position % (len(raw) + 1)
        return raw[:i] + odd + raw[i:]

    return mutate


def reencode(codec: str) -> Mutation:
    def mutate(raw: bytes) -> bytes:
        text = raw.decode("utf-8", errors="replace")
        return text.encode(codec, errors="replace")

    return mutate


def huge_number(position: int, number: bytes) -> Mutation:
    def mutate(raw: bytes) -> bytes:
        found = list(_NUMBER.finditer(raw))
        if not found:
            return raw + number
        match = found[position % len(found)]
        return raw[: match.start()] + number + raw[match.end() :]

    return mutate


def nest(fmt: str, position: int, depth: int) -> Mutation:
    """Deep nesting, or a long run of the format's structure, at a position."""
    if fmt == "json":
        pieces = (b"[" * depth + b"1" + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth)
        deep = pieces[position % 2]

        def mutate(raw: bytes) -> bytes:
            found = list(re.finditer(rb":\s*", raw))
            if not found:
                return deep
            at = found[position % len(found)].end()
            end = re.compile(rb'"(?:[^"\\]|\\.)*"|[^,}\]]*').match(raw, at)
            stop = end.end() if end else at
            return raw[:at] + deep + raw[stop:]

        return mutate
    if fmt == "xml":

        def mutate(raw: bytes) -> bytes:
            found = [m.end() for m in re.finditer(rb"<[A-Za-z][^<>]*[^/]>", raw)]
            at = found[position % len(found)] if found else 0
            return raw[:at] + b"<a>" * depth + b"x" + b"</a>" * depth + raw[at:]

        return mutate
    if fmt == "hl7v2":
        runs = (b"~x" * depth, b"^x" * depth, b"&x" * depth, b"|x" * depth, b"\rNTE|1" * depth)
        return insert(position, runs[position % len(runs)])
    runs = (b",x" * depth, b'"' + b"x\r\n" * depth + b'"')
    return insert(position, runs[position % len(runs)])


@st.composite
def mutation(draw: st.DrawFn, fmt: str) -> Mutation:
    position = draw(st.integers(min_value=0, max_value=2**20))
    kind = draw(
        st.sampled_from(["flip", "truncate", "duplicate", "insert", "encoding", "number", "nest"])
    )
    if kind == "flip":
        return flip(position, draw(st.integers(0, 255)))
    if kind == "truncate":
        return truncate(position)
    if kind == "duplicate":
        return duplicate_line(position, draw(st.sampled_from([2, 3, 10, 50])))
    if kind == "insert":
        odd = draw(st.sampled_from(ODD) | st.binary(min_size=1, max_size=8))
        return insert(position, odd)
    if kind == "encoding":
        return reencode(draw(st.sampled_from(ENCODINGS)))
    if kind == "number":
        return huge_number(position, draw(st.sampled_from(NUMBERS)))
    return nest(fmt, position, draw(st.sampled_from([3, 50, 101, 300, 1_100, 12_000])))


@st.composite
def mutated(draw: st.DrawFn, fmt: str) -> tuple[Sample, bytes]:
    """A fixture of the format and its bytes after one to three mutations."""
    sample = draw(st.sampled_from(SAMPLES[fmt]))
    raw = sample.raw
    for change in draw(st.lists(mutation(fmt), min_size=1, max_size=3)):
        raw = change(raw)
    return sample, raw
