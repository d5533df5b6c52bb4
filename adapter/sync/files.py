"""A night of files: a dated export folder, or a watched folder with a manifest per night.

Without a manifest the folder listing is the source's own list (every file one document,
its name without extension the business key). A manifest (CSV: ``file,key[,op]``) is the
source's list instead: a line whose file is not there is a gap, found by its key.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from adapter.sync.config import FileNight
from adapter.sync.fetch import Claim, Item, SourceDown

_OPS = {"": "new", "new": "new", "corrected": "corrected", "deleted": "deleted"}


class FileFetcher:
    def __init__(self, settings: FileNight) -> None:
        self.settings = settings

    def _folder(self, day: date) -> Path:
        return Path(self.settings.path.format(date=day))

    def check(self) -> None:
        base = Path(self.settings.path.split("{", 1)[0] or ".")
        if not base.is_dir():
            raise SourceDown(f"no folder {base}")

    def window(self, day: date, watermark: str | None, overlap: timedelta) -> dict[str, Any]:
        folder = self._folder(day)
        if not folder.is_dir():
            raise SourceDown(f"no export folder {folder} for {day.isoformat()}")
        if self.settings.manifest and not (folder / self._manifest_name(day)).is_file():
            raise SourceDown(f"no manifest {folder / self._manifest_name(day)}")
        return {"day": day.isoformat()}

    def _manifest_name(self, day: date) -> str:
        return (self.settings.manifest or "").format(date=day)

    def _entries(self, day: date) -> list[tuple[str, str, str]]:
        """(file name, key, op) of the night, in a stable order."""
        folder = self._folder(day)
        if self.settings.manifest:
            text = (folder / self._manifest_name(day)).read_text(encoding="utf-8-sig")
            rows = []
            for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
                if not row or row[0].strip().lower() in ("", "file", "#"):
                    continue
                if len(row) < 2:
                    raise SourceDown(f"manifest line {number}: expected file,key[,op]")
                op = _OPS.get(row[2].strip().lower() if len(row) > 2 else "")
                if op is None:
                    raise SourceDown(f"manifest line {number}: op must be new, corrected, deleted")
                rows.append((row[0].strip(), row[1].strip(), op))
            return rows
        names = sorted(
            e.name
            for e in os.scandir(folder)
            if e.is_file()
            and not e.name.startswith(".")
            and fnmatch.fnmatch(e.name, self.settings.pattern)
        )
        return [(name, self._key(name), "new") for name in names]

    def _key(self, name: str) -> str:
        return name if self.settings.key == "name" else name.rsplit(".", 1)[0]

    def items(self, window: dict[str, Any], after: list[Any] | None) -> Iterator[Item]:
        day = date.fromisoformat(window["day"])
        yield from self._items(day, after, None)

    def _items(self, day: date, after: list[Any] | None, keys: set[str] | None) -> Iterator[Item]:
        folder = self._folder(day)
        for number, (name, key, op) in enumerate(self._entries(day)):
            if after is not None and [number] <= after:
                continue
            if keys is not None and key not in keys:
                continue
            path = folder / name
            try:
                raw: bytes | None = path.read_bytes()
            except FileNotFoundError:
                if op != "deleted":
                    continue  # listed but not there: a gap, reported by its key
                raw = None
            yield Item(key=key, day=day.isoformat(), raw=raw, position=[number], op=op)

    def total(self, window: dict[str, Any]) -> int | None:
        return len(self._entries(date.fromisoformat(window["day"])))

    def claim(self, day: date) -> Claim:
        entries = self._entries(day)
        how = "manifest" if self.settings.manifest else "folder listing"
        return Claim(
            how=how,
            keys={key for _, key, _ in entries},
            count=len(entries),
            deleted={key for _, key, op in entries if op == "deleted"},
        )

    def fetch_keys(self, day: date, keys: set[str]) -> Iterator[Item]:
        yield from self._items(day, None, keys)

    def close(self) -> None:
        pass
