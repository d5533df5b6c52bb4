"""Recognising a message that stops early: cut inside a character, or an unclosed MLLP frame.

A transfer that breaks off leaves bytes that are valid up to the very end, where the last
character (or the MLLP end block) is missing. That is reported as truncation at the last
segment the input reaches, not as a wrong character set: the sender has to resend, not
change MSH-18.
"""

from __future__ import annotations

import codecs
import re

from adapter.errors import ParseError

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SEGMENT_NAME = re.compile(r"[A-Z0-9]{3}")


def decoded_prefix(data: bytes, codec: str) -> str | None:
    """The text of ``data`` when the bytes are valid except for an incomplete character at
    the very end (the decoder only lacks more input); None when some byte is plainly wrong."""
    try:
        decoder = codecs.getincrementaldecoder(codec)()
        return decoder.decode(data, final=False)
    except (UnicodeDecodeError, LookupError):
        return None


def last_segment_location(text: str) -> str:
    """``OBX[2]`` for the last non-blank line of ``text`` (occurrence counted among the lines
    of that name), or ``segment 7`` when that line does not start with a segment name."""
    names: list[str] = []
    for line in _LINE_BREAK.split(text):
        line = line.strip()
        if line:
            names.append(line[:3])
    if not names:
        return "segment 1"
    name = names[-1]
    if _SEGMENT_NAME.fullmatch(name):
        return f"{name}[{names.count(name)}]"
    return f"segment {len(names)}"


def truncated_error(text: str, why: str) -> ParseError:
    return ParseError(
        f"the message is truncated: {why}; ask the sender to send it again",
        location=last_segment_location(text),
    )
