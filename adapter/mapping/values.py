"""What a value read from a document is, for the engine and the functions alike.

Values are source positions (an HL7 v2 ``Node``, an ``XmlNode``, a ``JsonNode``, a
``CsvCell``: each knows its ``text`` and its ``location``), strings, numbers, dicts (bound
resources, facility data) or lists of them. These helpers read any of them the same way.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

_DATA = (str, bool, int, float, Decimal, list, dict, tuple)
# isinstance() with tuples: ``int | float`` would make a union object per test (decision 0126)
_NUMBERS = (int, float, Decimal)
_VALUES = (str, int, float, Decimal, dict, list)
_SIZED = (str, list, dict, tuple)
_POSITIONS: dict[type, bool] = {}  # type -> neither None nor a kind of _DATA (a position)


# Source positions whose ``text`` is a plain ``str`` attribute (read already, reading it marks
# nothing), whose ``is_empty`` only caches its answer, and which are never empty when their
# text is not blank (an HL7 v2 ``ReadNode``: its text is a leaf of what ``is_empty`` looks
# at): ``truthy`` and ``exists`` of such a value are whether its text is blank, with no
# call of ``is_empty``. Registered by the format modules.
TEXT_DECIDES: set[type] = set()

# Source positions whose numbered parts are ``child(number)`` (an HL7 v2 ``Node``: ``@cwe.1``
# is its component 1), and never a dict or a list: a variable's part is read on them at once
# (closures._compile_var_part, decision 0121). Registered by the format modules.
NUMBERED_PARTS: set[type] = set()

# Source positions whose ``text`` is always a ``str`` (reading it may mark it read, as an HL7
# v2 ``Node``'s does): what a value of them builds into (``closures._built``: its text
# stripped, None when blank) is written at once in the generated builder (decision 0144).
# Registered by the format modules.
TEXT_ALWAYS: set[type] = set()

# Source positions whose ``text`` is a property, with the function the property calls (an
# HL7 v2 ``Node``'s ``Node.text.fget``): the hot readers call it directly, a Python call,
# where reading the property is a call from C into a new interpreter loop (decision 0144).
# Registered by the format modules.
TEXT_READERS: dict[type, Any] = {}

# Source positions that are never empty when their text is not blank, and whose text is
# what ``exists`` reads first (an HL7 v2 ``Node``: its text is the first leaf of what its
# ``is_empty`` looks at): ``exists`` of one is whether its text is blank (decision 0121).
TEXT_FIRST: set[type] = set()


def is_position_type(kind: type) -> bool:
    """Whether values of this type are source positions (or other objects), none of the
    data types these helpers tell apart first: what the helpers do with them is what
    their last branch does, so they may go there at once (values are read per rule)."""
    found = _POSITIONS.get(kind)
    if found is None:
        found = _POSITIONS[kind] = kind is not type(None) and not issubclass(kind, _DATA)
    return found


def text(value: Any) -> str:
    kind = type(value)
    if kind is str:  # the common cases first; the checks below keep their order
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if kind in TEXT_DECIDES:  # a position whose text is a plain str attribute
        return value.text  # type: ignore[no-any-return]
    reader = TEXT_READERS.get(kind)  # its ``text`` property's function, called at once
    if reader is not None:
        return reader(value)  # type: ignore[no-any-return]
    position = _POSITIONS.get(kind)  # is_position_type, its table read inline (hot)
    if position is None:
        position = is_position_type(kind)
    if position:
        as_text = getattr(value, "text", None)
        return as_text if isinstance(as_text, str) else ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _NUMBERS):
        return str(value)
    if isinstance(value, list):
        return text(value[0]) if value else ""
    if isinstance(value, dict):
        return ""
    as_text = getattr(value, "text", None)
    # a whole segment (``=PID``) has no text: never its inner representation
    return as_text if isinstance(as_text, str) else ""


def is_position_without_text(value: Any) -> bool:
    """A source position that is not a value, such as a whole HL7 v2 segment (``=ZPI``):
    it can only be there or not."""
    kind = type(value)
    if value is None or kind is str:
        return False
    position = _POSITIONS.get(kind)
    if position is None:
        position = is_position_type(kind)
    if position:
        return not isinstance(getattr(value, "text", None), str)
    return not isinstance(value, _VALUES) and not isinstance(getattr(value, "text", None), str)


def location(value: Any) -> str | None:
    if isinstance(value, list):
        return location(value[0]) if value else None
    return getattr(value, "location", None)


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    kind = type(value)
    if kind is str or kind is dict or kind is list:  # what the isinstance test below says
        return not value
    position = _POSITIONS.get(kind)
    if position is None:
        position = is_position_type(kind)
    if not position and isinstance(value, _SIZED):
        return len(value) == 0
    check = getattr(value, "is_empty", None)
    return bool(check()) if check else False
