"""The named functions of the mapping language: a short, fixed list (docs/mapping-language.md
section 7), one module per concept, all registered into ``FUNCTIONS``.

Names follow ``<source>_to_<target>`` where a conversion is meant (``dtm_to_datetime``);
predicates and helpers are short verbs (``first``, ``eq``, ``map``).
"""

from __future__ import annotations

# importing a module registers its functions
from adapter.mapping.functions import (  # noqa: F401
    codes,
    dates,
    facilities,
    logic,
    narrative,
    numbers,
    placeholders,
    strings,
)
from adapter.mapping.functions.registry import FUNCTIONS, FunctionContext, transform

__all__ = ["FUNCTIONS", "FunctionContext", "transform"]
