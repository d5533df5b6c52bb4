"""FHIR REST pull: poll a hospital FHIR server for resources changed since the bookmark.

Each poll searches every configured resource type with ``_lastUpdated=ge<bookmark>`` sorted
by ``_lastUpdated``, follows the ``next`` links page by page, and merges the types into one
stream in ``meta.lastUpdated`` order. Each resource is one document for the pipeline (its
JSON with sorted keys, so the same version always gives the same bytes).

The bookmark is the newest ``meta.lastUpdated`` among the documents this source has stored:
it is read back from the stored messages themselves, so it is committed in the same
transaction as the data it covers and can never run ahead of it. The search is inclusive
(``ge``), so the resources at the bookmark are read again; the pipeline recognises their
bytes and stores nothing twice. ``overlap_seconds`` widens that margin for servers whose
clocks or commits lag.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from adapter.connectors.base import CheckResult, parse_settings, timed_check
from adapter.connectors.http import (
    FHIR_JSON,
    HttpSettings,
    error_for_exception,
    error_for_response,
    http_client,
)
from adapter.consortium import Facility, SourceSystem
from adapter.errors import RetriableDeliveryError
from adapter.inbound.base import SourceDocument, register_source

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from adapter.pipeline import IngestResult

log = logging.getLogger(__name__)


class FhirPullSettings(HttpSettings):
    kind: Literal["fhir-pull"]
    resource_types: list[str] = Field(min_length=1)
    page_size: int = Field(100, ge=1, le=1000)
    interval_seconds: float = Field(60.0, gt=0)
    since: str | None = Field(
        None,
        description="first bookmark (an instant) when nothing was pulled yet; default: everything",
    )
    overlap_seconds: float = Field(
        0.0, ge=0, description="search this much before the bookmark (lagging servers)"
    )
    max_pages: int = Field(1000, ge=1, description="pages per resource type in one poll")
    params: dict[str, str] = Field(
        default_factory=dict, description="extra search parameters for every type"
    )

    @field_validator("resource_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.isalpha() or not name[:1].isupper():
                raise ValueError(f"{name!r} is not a FHIR resource type name")
        return value

    @field_validator("since")
    @classmethod
    def _since(cls, value: str | None) -> str | None:
        if value is not None:
            _instant(value)
        return value


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment


def canonical_bytes(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(
        "utf-8"
    )


class FhirPullSource:
    kind = "fhir-pull"
    channel = "fhir-pull"

    def __init__(self, source_id: str, settings: FhirPullSettings) -> None:
        self.id = source_id
        self.settings = settings
        self.interval_seconds = settings.interval_seconds
        self._client = http_client(
            settings, where=f"sources.{source_id}.connector", max_connections=2
        )
        self._origin = _origin(settings.base_url)

    # -- contract ---------------------------------------------------------------------------
    def check(self) -> CheckResult:
        def probe() -> str | None:
            response = self._client.get("metadata")
            if response.status_code != 200:
                return str(error_for_response(response, what="GET metadata"))
            return None

        return timed_check(self.id, "fhir-pull", probe)

    def bookmark(self, factory: sessionmaker[Session] | None) -> str | None:
        """The newest meta.lastUpdated among the resources this source has stored."""
        if factory is None:
            return self.settings.since
        from sqlalchemy import select

        from adapter.store.models import InboundMessage

        newest: tuple[datetime, str] | None = None
        with factory() as session:
            # documents are stored in lastUpdated order: the newest few hold the maximum
            rows = session.scalars(
                select(InboundMessage.raw)
                .where(InboundMessage.source_system == self.id)
                .order_by(InboundMessage.received_at.desc())
                .limit(50)
            )
            for raw in rows:
                stamp = _last_updated(bytes(raw))
                if stamp is not None and (newest is None or stamp[0] > newest[0]):
                    newest = stamp
        return newest[1] if newest else self.settings.since

    def read(self, bookmark: str | None) -> Iterator[SourceDocument]:
        since = bookmark
        if bookmark and self.settings.overlap_seconds:
            moment = _instant(bookmark) - timedelta(seconds=self.settings.overlap_seconds)
            since = moment.isoformat().replace("+00:00", "Z")
        streams = [self._resources(t, since) for t in self.settings.resource_types]
        for _, _, resource in heapq.merge(*streams, key=lambda e: (e[0], e[1])):
            if resource is None:
                # one type was cut at max_pages: nothing newer may be stored before the rest
                # of that type, or the bookmark would pass it by
                return
            stamp = (resource.get("meta") or {}).get("lastUpdated")
            name = f"{resource.get('resourceType')}/{resource.get('id')}"
            yield SourceDocument(
                raw=canonical_bytes(resource),
                content_type=FHIR_JSON,
                bookmark=stamp,
                name=name,
                # the Receipt drops any user, password or query of the configured base URL
                peer=f"{str(self.settings.base_url).rstrip('/')}/{name}",
            )

    def finish(
        self, document: SourceDocument, result: IngestResult | None, error: Exception | None = None
    ) -> None:
        pass  # the stored message is the bookmark

    def close(self) -> None:
        self._client.close()
        tokens = getattr(self._client.auth, "tokens", None)
        if tokens is not None:
            tokens.close()

    # -- paging -----------------------------------------------------------------------------
    def _resources(
        self, resource_type: str, since: str | None
    ) -> Iterator[tuple[datetime, str, dict[str, Any] | None]]:
        """(lastUpdated, "Type/id", resource) of one type, page by page, in server order;
        a last (lastUpdated, "\uffff", None) when max_pages cut it short."""
        params: dict[str, str] = {
            **self.settings.params,
            "_sort": "_lastUpdated",
            "_count": str(self.settings.page_size),
        }
        if since:
            params["_lastUpdated"] = f"ge{since}"
        url: str | None = resource_type
        query: dict[str, str] | None = params
        pages = 0
        last: datetime | None = None
        while url:
            if pages == self.settings.max_pages:
                log.warning(
                    "FHIR pull %s: %s has more than %d pages; the rest next time",
                    self.id,
                    resource_type,
                    pages,
                )
                if last is not None:
                    yield last, "\uffff", None
                return
            bundle = self._get(url, query)
            pages += 1
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if (
                    not isinstance(resource, dict)
                    or entry.get("search", {}).get("mode", "match") != "match"
                ):
                    continue  # included resources and outcomes are not results
                stamp = (resource.get("meta") or {}).get("lastUpdated")
                if not stamp:
                    log.warning(
                        "FHIR pull %s: %s/%s has no meta.lastUpdated; skipped",
                        self.id,
                        resource.get("resourceType"),
                        resource.get("id"),
                    )
                    continue
                moment = _instant(stamp)
                if last is not None and moment < last:
                    # unsorted results would let the bookmark pass resources not yet read
                    raise RetriableDeliveryError(
                        f"{resource_type}: the server does not sort by _lastUpdated; "
                        "a FHIR pull needs it"
                    )
                last = moment
                yield last, f"{resource_type}/{resource.get('id')}", resource
            url = _next_link(bundle)
            query = None  # the next link carries the whole query
            if url and _origin(url) != self._origin:
                raise RetriableDeliveryError(
                    f"the server's next link leaves {self._origin}; not followed (credentials "
                    "are only sent to the configured server)"
                )

    def _get(self, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        try:
            response = self._client.get(url, params=params)
        except Exception as exc:
            raise error_for_exception(exc, what=f"GET {url}") from None
        if response.status_code != 200:
            raise error_for_response(response, what=f"GET {url}")
        try:
            bundle = response.json()
        except ValueError:
            raise RetriableDeliveryError(f"GET {url}: the answer is not JSON") from None
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise RetriableDeliveryError(f"GET {url}: the answer is not a Bundle")
        return bundle


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _last_updated(raw: bytes) -> tuple[datetime, str] | None:
    try:
        stamp = json.loads(raw)["meta"]["lastUpdated"]
        return _instant(stamp), stamp
    except (ValueError, KeyError, TypeError):
        return None


@register_source("fhir-pull")
def build_source(facility: Facility, source: SourceSystem) -> FhirPullSource:
    settings = parse_settings(
        FhirPullSettings, source.connector, where=f"sources.{source.id}.connector"
    )
    return FhirPullSource(source.id, settings)
