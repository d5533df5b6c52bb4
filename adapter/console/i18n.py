"""The console's words: one message catalogue per language, as data
(``adapter/console/messages/<lang>.yaml``, flat ``key: text``). zh-CN is the reference and
the default; English is switchable (the language link sets a cookie). A key missing from
a catalogue falls back to zh-CN, then to the key itself (a test checks both catalogues
have the same keys)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from fastapi import Request

from adapter.console.session import LANG_COOKIE

CATALOGUES = Path(__file__).parent / "messages"
LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"


@cache
def catalogue(lang: str) -> dict[str, str]:
    data = yaml.safe_load((CATALOGUES / f"{lang}.yaml").read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


def language_of(request: Request) -> str:
    wanted = request.cookies.get(LANG_COOKIE, DEFAULT)
    return wanted if wanted in LANGUAGES else DEFAULT


class Translator:
    """``t("nav.messages")`` in templates; ``{name}`` placeholders filled from keywords."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._own = catalogue(lang)
        self._default = catalogue(DEFAULT)

    def __call__(self, key: str, **values: object) -> str:
        text = self._own.get(key) or self._default.get(key) or key
        return text.format(**values) if values else text
