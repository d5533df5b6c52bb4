"""A night of files: a dated export folder, or a watched folder with a manifest per night.

Without a manifest the folder listing is the source's own list (every file one document,
its name without extension the business key). A manifest (CSV: ``file,key[,op]``) is the
source's list instead: a line whose file is not there is a gap, found by its key.

A file of several HL7 v2 messages (adapter/hl7v2/split.py) is one item per message, keyed
``<key>#1``, ``<key>#2`` ...: each is stored, quarantined and counted on its own, and the
source's list (listing or manifest) claims every one of them once the file is there. A file
of one message keeps its key as it is.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from adapter.hl7v2.split import Part, looks_like_hl7v2, split_messages, surely_one_message
from adapter.sync.config import FileNight
from adapter.sync.fetch import Claim, Item, SourceDown

_OPS = {"": "new", "new": "new", "corrected": "corrected", "deleted": "deleted"}


class FileFetcher:
    def __init__(self, settings: FileNight, content_type: str | None = None) -> None:
        self.settings = settings
        self.content_type = content_type  # not HL7 v2 (XML, JSON, CSV): never split

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

    def _parts(self, raw: bytes) -> list[Part]:
        return split_messages(raw, self.content_type)

    def _items(self, day: date, after: list[Any] | None, keys: set[str] | None) -> Iterator[Item]:
        folder = self._folder(day)
        for number, (name, key, op) in enumerate(self._entries(day)):
            if after is not None and [number, 1 << 30] <= after:
                continue  # the whole file is before the checkpoint
            if (
                keys is not None
                and key not in keys
                and not any(k.startswith(key + "#") for k in keys)
            ):
                continue
            path = folder / name
            try:
                raw: bytes | None = path.read_bytes()
            except FileNotFoundError:
                if op != "deleted":
                    continue  # listed but not there: a gap, reported by its key
                raw = None
            parts = self._parts(raw) if raw is not None else []
            if len(parts) <= 1:
                if after is not None and [number] <= after:
                    continue
                if keys is None or key in keys:
                    raw = parts[0].raw if parts else raw  # a batch of one: the message
                    yield Item(key=key, day=day.isoformat(), raw=raw, position=[number], op=op)
                continue
            for part in parts:
                position = [number, part.number]
                part_key = f"{key}#{part.number}"
                if after is not None and position <= after:
                    continue
                if keys is not None and part_key not in keys:
                    continue
                yield Item(
                    key=part_key, day=day.isoformat(), raw=part.raw, position=position, op=op
                )

    def total(self, window: dict[str, Any]) -> int | None:
        return len(self._entries(date.fromisoformat(window["day"])))

    def claim(self, day: date) -> Claim:
        """The night's keys: a file of several messages claims one key per message."""
        entries = self._entries(day)
        how = "manifest" if self.settings.manifest else "folder listing"
        keys: set[str] = set()
        count = 0
        folder = self._folder(day)
        splits = not self.content_type or looks_like_hl7v2(b"MSH|", self.content_type)
        for name, key, op in entries:
            n = 1
            if op != "deleted" and splits:  # else one message per file, read or not
                with contextlib.suppress(FileNotFoundError):  # a gap, claimed by its key
                    n = self._count((folder / name).read_bytes())
            keys.update([key] if n == 1 else [f"{key}#{i}" for i in range(1, n + 1)])
            count += n
        return Claim(
            how=how,
            keys=keys,
            count=count,
            deleted={key for _, key, op in entries if op == "deleted"},
        )

    def _count(self, raw: bytes) -> int:
        """How many messages ``_parts`` finds in ``raw``: without a second MSH and without a
        batch wrapper segment it is one, whatever the bytes (the report's count of a night
        read every file again and split it: 50,000 regular-expression scans in the
        reconciliation, which runs alone at the end of the night)."""
        if surely_one_message(raw):
            return 1
        return len(self._parts(raw))

    def fetch_keys(self, day: date, keys: set[str]) -> Iterator[Item]:
        yield from self._items(day, None, keys)

    def close(self) -> None:
        pass
