"""The message's delimiters and HL7 v2 escape sequences (chapter 2, "escape sequences").

Reading unescapes lazily (``Segment.get`` calls :func:`unescape` only on values that hold
the escape character); :func:`escape` is the inverse, used to build messages and by the
round-trip tests.
"""

from __future__ import annotations

import re
from functools import lru_cache

DEFAULT_FIELD_SEPARATOR = "|"
DEFAULT_ENCODING_CHARACTERS = "^~\\&"


class Delimiters:
    """MSH-1 and MSH-2 of one message, plus the codec its text was decoded with.

    ``truncation`` is the optional fifth MSH-2 character of v2.7+ (``#``); it is data
    everywhere except in the ``\\P\\`` escape. Instances are immutable by convention and
    compare and hash by their characters and codec.
    """

    __slots__ = (
        "codec",
        "component",
        "escape",
        "field",
        "repetition",
        "simple",
        "special",
        "subcomponent",
        "truncation",
    )

    def __init__(
        self,
        field: str = DEFAULT_FIELD_SEPARATOR,
        encoding_characters: str = DEFAULT_ENCODING_CHARACTERS,
        codec: str = "utf-8",
    ) -> None:
        enc = encoding_characters
        self.field = field
        self.component, self.repetition, self.escape, self.subcomponent = enc[:4]
        self.truncation: str | None = enc[4] if len(enc) > 4 else None
        self.codec = codec
        # escape letter -> replacement text
        self.simple: dict[str, str] = {
            "F": field,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": self.escape,
            ".br": "\n",
            "H": "",  # start/end of highlighting: formatting only, dropped
            "N": "",
        }
        if self.truncation:
            self.simple["P"] = self.truncation
        # any character that makes a value need splitting or unescaping
        self.special = re.compile("[" + re.escape(enc[:4]) + "]")

    @property
    def encoding_characters(self) -> str:
        return (
            self.component
            + self.repetition
            + self.escape
            + self.subcomponent
            + (self.truncation or "")
        )

    def _key(self) -> tuple[str, str, str]:
        return (self.field, self.encoding_characters, self.codec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Delimiters) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Delimiters({self.field!r}, {self.encoding_characters!r}, {self.codec!r})"


@lru_cache(maxsize=64)
def delimiters_for(field: str, encoding_characters: str, codec: str) -> Delimiters:
    """Shared Delimiters (messages from one sender reuse the same instance)."""
    return Delimiters(field, encoding_characters, codec)


def unescape(value: str, d: Delimiters) -> str:
    """Resolve the escape sequences in one leaf value (already split on separators).

    Consecutive ``\\Xhh..\\`` sequences are joined before decoding, so a multi-byte
    character may be split over several of them. Sequences that are unknown, malformed
    or not decodable in the message charset are kept as written. Never raises.
    """
    esc = d.escape
    parts = value.split(esc)
    if len(parts) == 1:
        return value
    simple = d.simple
    out = [parts[0]]
    pending = bytearray()  # bytes of consecutive \X..\ sequences
    pending_raw: list[str] = []

    def flush() -> None:
        if not pending_raw:
            return
        try:
            out.append(bytes(pending).decode(d.codec))
        except (UnicodeDecodeError, LookupError):
            out.extend(pending_raw)
        pending.clear()
        pending_raw.clear()

    last = len(parts) - 1
    for i in range(1, len(parts), 2):
        seq = parts[i]
        if i == last:  # an escape character without its closing partner: literal
            flush()
            out.append(esc + seq)
            break
        hexbytes = _hex_bytes(seq)
        if hexbytes is not None:
            pending.extend(hexbytes)
            pending_raw.append(esc + seq + esc)
        else:
            flush()
            replacement = simple.get(seq)
            out.append(esc + seq + esc if replacement is None else replacement)
        text = parts[i + 1]
        if text:
            flush()
            out.append(text)
    flush()
    return "".join(out)


_HEX = re.compile(r"[0-9A-Fa-f\s]+")


def _hex_bytes(seq: str) -> bytes | None:
    if len(seq) < 3 or seq[0] != "X" or not _HEX.fullmatch(seq, 1):
        return None
    digits = "".join(seq[1:].split())
    if len(digits) % 2:
        return None
    return bytes.fromhex(digits)


@lru_cache(maxsize=32)
def _escape_table(d: Delimiters) -> dict[int, str]:
    e = d.escape
    table: dict[int, str] = {c: f"{e}X{c:02X}{e}" for c in (*range(0x20), 0x7F)}
    table[ord("\n")] = f"{e}.br{e}"
    table[ord("\t")] = "\t"  # tabs are allowed as text
    for letter in ("E", "F", "S", "T", "R", "P"):
        char = d.simple.get(letter)
        if char:
            table[ord(char)] = f"{e}{letter}{e}"
    return table


def escape(value: str, d: Delimiters | None = None) -> str:
    """Escape ``value`` so it reads back unchanged as one leaf of a field.

    Separators and the escape character become ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` (and the
    v2.7 truncation character ``\\P\\``), a newline ``\\.br\\``, other control characters
    ``\\Xhh\\`` (ASCII bytes, the same in every supported charset).
    """
    return value.translate(_escape_table(d or DEFAULT_DELIMITERS))


DEFAULT_DELIMITERS = Delimiters()
