"""A FHIR server as a night's source: a ``_lastUpdated`` window search, or Bulk Data
``$export`` (kick-off with ``_type`` and ``_since``, polling that honours ``Retry-After``,
NDJSON download, ``deleted[]``).

A search window is read sorted by ``_lastUpdated``; the checkpoint is the last
(lastUpdated, id) stored, and a resumed run searches again from that instant and skips what
it passed. An export's status URL is the checkpoint's first part, so a run killed while the
server works on the export polls the same export again instead of starting a second one;
then the file number and line. Each resource is stored as its JSON with sorted keys (the same
version always gives the same bytes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from adapter.connectors.base import parse_settings
from adapter.connectors.http import FHIR_JSON, HttpSettings, http_client, retry_after
from adapter.inbound.fhir_pull import canonical_bytes
from adapter.sync.config import FhirNight
from adapter.sync.fetch import Claim, Item, SourceDown, day_bounds

_RETRY_AFTER_CAP = 60.0  # a server asking for longer is polled after this anyway


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class FhirFetcher:
    def __init__(self, sync_id: str, settings: FhirNight, zone: ZoneInfo) -> None:
        self.settings = settings
        self.zone = zone
        where = f"sync.sources.{sync_id}.fhir"
        http = {"base_url": settings.base_url, "headers": settings.headers}
        http["timeout_seconds"] = settings.timeout_seconds
        if settings.auth is not None:
            http["auth"] = settings.auth
        if settings.tls is not None:
            http["tls"] = settings.tls
        self.http = parse_settings(HttpSettings, http, where=where)
        self.client = http_client(self.http, where=where, max_connections=2)
        self.origin = _origin(settings.base_url)

    # -- the contract ------------------------------------------------------------------------
    def check(self) -> None:
        self._get_json("metadata", None)

    def window(self, day: date, watermark: str | None, overlap: timedelta) -> dict[str, Any]:
        start, _ = day_bounds(day, self.zone)
        since = start if watermark is None else min(start, datetime.fromisoformat(watermark))
        return {
            "since": _instant(since - overlap),
            "until": _instant(datetime.now(UTC)),
        }

    def items(self, window: dict[str, Any], after: list[Any] | None) -> Iterator[Item]:
        if self.settings.mode == "bulk":
            yield from self._bulk(window, after)
        else:
            yield from self._search(window, after)

    def total(self, window: dict[str, Any]) -> int | None:
        if self.settings.mode == "bulk":
            return None
        params = {
            "_lastUpdated": [f"gt{window['since']}", f"le{window['until']}"],
            "_summary": "count",
        }
        return _total(self._get_json(self.settings.resource_type, params))

    def claim(self, day: date) -> Claim:
        """The day's resources as the server lists them (keys), and its own count."""
        start, end = day_bounds(day, self.zone)
        params: dict[str, Any] = {
            "_lastUpdated": [f"ge{_instant(start)}", f"lt{_instant(end)}"],
            "_count": str(self.settings.page_size),
        }
        keys = {self._key(r) for r in self._pages(self.settings.resource_type, params)}
        count = None
        if self.settings.count:
            count = _total(
                self._get_json(
                    self.settings.resource_type, {**params, "_summary": "count", "_count": "0"}
                )
            )
        return Claim(
            how="search" + (" + _summary=count" if count is not None else ""),
            keys=keys,
            count=count if count is not None else len(keys),
        )

    def fetch_keys(self, day: date, keys: set[str]) -> Iterator[Item]:
        for key in sorted(keys):
            if self.settings.key_system:
                params = {"identifier": f"{self.settings.key_system}|{key}"}
                found = list(self._pages(self.settings.resource_type, params))
            else:
                found = [self._get_json(key, None)]
            for resource in found:
                yield self._item(resource, [])

    def close(self) -> None:
        self.client.close()

    # -- search ------------------------------------------------------------------------------
    def _search(self, window: dict[str, Any], after: list[Any] | None) -> Iterator[Item]:
        since = f"gt{window['since']}" if after is None else f"ge{after[0]}"
        params = {
            "_lastUpdated": [since, f"le{window['until']}"],
            "_sort": "_lastUpdated",
            "_count": str(self.settings.page_size),
        }
        for resource in self._pages(self.settings.resource_type, params):
            stamp = (resource.get("meta") or {}).get("lastUpdated")
            if not stamp:
                continue
            position = [stamp, str(resource.get("id"))]
            if after is not None and (_parse(stamp), position[1]) <= (_parse(after[0]), after[1]):
                continue
            yield self._item(resource, position)

    def _pages(self, path: str, params: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
        url: str | None = path
        while url:
            bundle = self._get_json(url, params)
            params = None  # the next link carries the whole query
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if (
                    isinstance(resource, dict)
                    and (entry.get("search") or {}).get("mode", "match") == "match"
                ):
                    yield resource
            url = next(
                (
                    str(link["url"])
                    for link in bundle.get("link") or []
                    if link.get("relation") == "next" and link.get("url")
                ),
                None,
            )
            if url and _origin(url) != self.origin:
                raise SourceDown(f"the server's next link leaves {self.origin}; not followed")

    # -- bulk --------------------------------------------------------------------------------
    def _bulk(self, window: dict[str, Any], after: list[Any] | None) -> Iterator[Item]:
        status_url = after[0] if after else None
        manifest = self._manifest(status_url) if status_url else None
        if manifest is None:
            status_url = self._kick_off(window)
            manifest = self._manifest(status_url)
            after = None
        if manifest is None:
            raise SourceDown("the export was lost by the server after its kick-off")
        outputs = [
            o for o in manifest.get("output") or [] if o.get("type") == self.settings.resource_type
        ]
        deleted = list(manifest.get("deleted") or [])
        files = [(o["url"], "output") for o in outputs] + [(d["url"], "deleted") for d in deleted]
        for number, (url, part) in enumerate(files):
            if after is not None and number < after[1]:
                continue
            for line_no, resource in enumerate(self._ndjson(url)):
                position = [status_url, number, line_no]
                if after is not None and position[1:] <= after[1:]:
                    continue
                if part == "output":
                    yield self._item(resource, position)
                else:
                    yield from self._deletions(resource, position)

    def _kick_off(self, window: dict[str, Any]) -> str:
        params = {"_type": self.settings.resource_type, "_since": window["since"]}
        try:
            response = self.client.get(
                "$export",
                params=params,
                headers={"Prefer": "respond-async", "Accept": FHIR_JSON},
            )
        except httpx.HTTPError as exc:
            raise SourceDown(f"$export kick-off: {type(exc).__name__}") from None
        location = response.headers.get("Content-Location")
        if response.status_code != 202 or not location:
            raise SourceDown(f"$export kick-off answered {response.status_code}, not 202")
        return location

    def _manifest(self, status_url: str) -> dict[str, Any] | None:
        """Poll until the export is complete; None when the server no longer knows it."""
        deadline = time.monotonic() + self.settings.poll_max_seconds
        while True:
            try:
                response = self.client.get(status_url, headers={"Accept": "application/json"})
            except httpx.HTTPError as exc:
                raise SourceDown(f"export status: {type(exc).__name__}") from None
            if response.status_code == 200:
                return dict(response.json())
            if response.status_code in (404, 410):
                return None
            if response.status_code not in (202, 429):
                raise SourceDown(f"export status answered {response.status_code}")
            if time.monotonic() > deadline:
                raise SourceDown(f"export not finished after {self.settings.poll_max_seconds:g} s")
            wait = retry_after(response.headers.get("Retry-After")) or 1.0
            time.sleep(min(max(wait, 0.05), _RETRY_AFTER_CAP))

    def _ndjson(self, url: str) -> Iterator[dict[str, Any]]:
        if _origin(url) != self.origin:
            raise SourceDown(f"an export file outside {self.origin}; not fetched")
        try:
            with self.client.stream(
                "GET", url, headers={"Accept": "application/fhir+ndjson"}
            ) as response:
                if response.status_code != 200:
                    raise SourceDown(f"export file answered {response.status_code}")
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as exc:
            raise SourceDown(f"export file: {type(exc).__name__}") from None

    def _deletions(self, bundle: dict[str, Any], position: list[Any]) -> Iterator[Item]:
        stamp = (bundle.get("meta") or {}).get("lastUpdated") or bundle.get("timestamp")
        day = self._day(stamp)
        for entry in bundle.get("entry") or []:
            request = entry.get("request") or {}
            if request.get("method") == "DELETE" and request.get("url"):
                yield Item(
                    key=str(request["url"]), day=day, raw=None, position=position, op="deleted"
                )

    # -- parts -------------------------------------------------------------------------------
    def _item(self, resource: dict[str, Any], position: list[Any]) -> Item:
        stamp = (resource.get("meta") or {}).get("lastUpdated")
        return Item(
            key=self._key(resource),
            day=self._day(stamp),
            raw=canonical_bytes(resource),
            position=position,
        )

    def _key(self, resource: dict[str, Any]) -> str:
        if self.settings.key_system:
            for identifier in resource.get("identifier") or []:
                if identifier.get("system") == self.settings.key_system and identifier.get("value"):
                    return str(identifier["value"])
        return f"{resource.get('resourceType')}/{resource.get('id')}"

    def _day(self, stamp: str | None) -> str:
        if not stamp:
            return "unknown"
        return _parse(stamp).astimezone(self.zone).date().isoformat()

    def _get_json(self, url: str, params: dict[str, Any] | None) -> dict[str, Any]:
        try:
            response = self.client.get(url, params=params, headers={"Accept": FHIR_JSON})
        except httpx.HTTPError as exc:
            raise SourceDown(f"{self.settings.base_url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise SourceDown(f"GET {url} answered {response.status_code}")
        try:
            return dict(response.json())
        except ValueError:
            raise SourceDown(f"GET {url}: the answer is not JSON") from None


def _total(bundle: dict[str, Any]) -> int | None:
    total = bundle.get("total")
    return int(total) if isinstance(total, int) else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
