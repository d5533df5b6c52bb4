"""A mapped instance's column value, read the cheap way (decision 0155)."""

from __future__ import annotations

from typing import Any


def loaded(instance: Any, key: str) -> Any:
    """``getattr(instance, key)`` of a column attribute: the value the instance
    holds when it is loaded, which is what the attribute's descriptor answers then
    (``InstrumentedAttribute.__get__``: a column's value present in the instance's
    ``__dict__``), without the descriptor's call (~2,800 instructions: a bulk message's
    steps read its row's attributes ~40 times); else the descriptor's answer (which loads
    an expired or deferred value)."""
    values = instance.__dict__
    return values[key] if key in values else getattr(instance, key)
