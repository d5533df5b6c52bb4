"""What a file drop needs to set a poison file aside instead of stopping on it.

* Names as the file system has them: on Linux a name is bytes, and a sender's name need
  not be UTF-8 (a GBK name arrives as surrogate escapes in Python). Log lines and reason
  files show it readably, never by re-encoding it strictly.
* Names that still fit: a name of 244+ bytes plus ``.error.json`` or ``.1`` is over the
  255-byte limit of a name; such a name is shortened, with a hash of the whole name so
  that two long names stay apart.
* Attempts: a file that could not be stored is offered again; the ledger
  (``processing/.attempts.json``) counts the tries, recorded *before* each one, so even a
  file that kills the process is set aside after ``max_attempts`` restarts.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from adapter.connectors.files import NAME_MAX, fitting_name, name_bytes

__all__ = ["NAME_MAX", "AttemptLedger", "fitting_name", "name_bytes", "printable_name"]


def printable_name(name: str) -> str:
    """The name for people: UTF-8 as it is, else GB 18030 (GBK names) if it reads as that,
    else with the undecodable bytes escaped (``\\xbc``)."""
    raw = name_bytes(name)
    for codec in ("utf-8", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", "backslashreplace")


class AttemptLedger:
    """How many times each claimed file was offered to the pipeline, and the last error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, dict[str, Any]]) -> None:
        if not data:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_bytes(json.dumps(data).encode("ascii"))
        os.replace(temporary, self.path)

    @staticmethod
    def _key(name: str) -> str:
        return name_bytes(name).hex()  # any name, also one that is not UTF-8

    def get(self, name: str) -> dict[str, Any]:
        return self._load().get(self._key(name), {"count": 0, "last_error": None})

    def begin(self, name: str) -> int:
        """Record one more attempt (before it is made); the number of this attempt."""
        data = self._load()
        entry = data.setdefault(self._key(name), {"count": 0, "last_error": None})
        entry["count"] += 1
        self._save(data)
        return int(entry["count"])

    def failed(self, name: str, error: str, *, counts: bool = True) -> None:
        data = self._load()
        entry = data.setdefault(self._key(name), {"count": 0, "last_error": None})
        entry["last_error"] = error
        if not counts:  # not the file's fault (the database was down): not a try
            entry["count"] = max(0, entry["count"] - 1)
        self._save(data)

    def forget(self, name: str) -> None:
        data = self._load()
        if data.pop(self._key(name), None) is not None:
            self._save(data)
