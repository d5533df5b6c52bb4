"""Placeholders: text a Chinese HIS / LIS export writes where it has no value (无, -, /,
00000000, 未知 ...), per field kind, as data.

``present(kind, value)`` gives ``value`` unless the source's ``placeholder-<kind>`` concept
map lists its text; then nothing, with an information note at the value's position. The
lists are per kind because the same text means a value in one field and nothing in
another: ``-`` is a negative result in OBX-5 and no unit in OBX-6, so results are never
passed through ``present``. A dialect adds or removes entries in its own
``concept-maps/placeholder-<kind>.yaml`` (``extends: _shared``).
"""

from __future__ import annotations

from typing import Any

from adapter.mapping.functions.registry import FunctionContext, transform
from adapter.mapping.values import TEXT_DECIDES, location, text

TABLE_PREFIX = "placeholder-"


def placeholder_table(kind: str) -> str:
    return f"{TABLE_PREFIX}{kind}"


_TABLES: dict[str, str] = {}


@transform("present")
def present(ev: FunctionContext, kind: Any, value: Any) -> Any:
    """``value``, or nothing when its text is a placeholder of this kind (with a note)."""
    written = (
        value if type(value) is str else value.text if type(value) in TEXT_DECIDES else text(value)
    ).strip()
    if not written:
        return value
    name = kind if type(kind) is str else kind.text if type(kind) in TEXT_DECIDES else text(kind)
    table = _TABLES.get(name)  # placeholder_table(name), made once per kind (0149)
    if table is None:
        table = placeholder_table(name)
        if len(_TABLES) < 256:  # the kinds a mapping names: bounded all the same
            _TABLES[name] = table
    if ev.lookup(table, written, False) is None:  # report: by position (a keyword: slower)
        return value
    ev.information(
        f"{written!r} stands for no value here ({table}); left out",
        location(value),
        code="informational",
    )
    return None
