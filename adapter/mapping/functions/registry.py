"""The function table of the mapping language, and what a function may use of the evaluation.

Every function takes the evaluation context first and already evaluated arguments after
it. A function that meets a value it cannot convert reports an issue at the value's
location (``ctx.error(...)``) and returns None: the engine decides what an error means
(quarantine). Functions know the evaluation only through ``FunctionContext``, so they
never import the engine (which imports them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any, Protocol

from adapter.mapping.terminology import Target


class FunctionContext(Protocol):
    """The services of ``adapter.mapping.evaluation.Evaluation`` a function may call."""

    vars: dict[str, Any]

    @property
    def timezone(self) -> tzinfo: ...

    def error(self, message: str, where: str | None, code: str = ...) -> None: ...

    def warning(self, message: str, where: str | None, code: str = ...) -> None: ...

    def information(self, message: str, where: str | None, code: str = ...) -> None: ...

    def facility_system(self, kind: str) -> str: ...

    def lookup(self, table: str, value: Any, report: bool = True) -> Target | None: ...

    def apply_datatype(self, name: str, args: list[Any]) -> Any: ...


Transform = Callable[..., Any]
FUNCTIONS: dict[str, Transform] = {}


def transform(name: str) -> Callable[[Transform], Transform]:
    """Register a function of the language under ``name`` (lower case, as written in YAML)."""

    def register(func: Transform) -> Transform:
        FUNCTIONS[name] = func
        return func

    return register
