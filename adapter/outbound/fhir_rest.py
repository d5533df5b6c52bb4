"""FHIR REST destination: PUT on the deterministic ids, in transaction or batch Bundles.

Because every entry is a PUT to ``Type/id`` with the adapter's deterministic id, sending a
resource again updates it at the destination: a retry or a replay never makes a second
resource. ``bundle: transaction`` (the default) applies a chunk all-or-nothing;
``bundle: batch`` lets the server take each entry on its own and answer per entry;
``bundle: none`` sends one PUT per resource.

One bad resource must not hold back the others: when a transaction is refused with a 4xx
(the server names no entry), its resources are sent again one PUT each, so only the bad
one fails, with the server's OperationOutcome kept.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import httpx
from pydantic import Field

from adapter.connectors.base import CheckResult, parse_settings, timed_check
from adapter.connectors.http import (
    FHIR_JSON,
    HttpSettings,
    error_for_exception,
    error_for_response,
    error_for_status,
    http_client,
)
from adapter.consortium import Destination as DestinationConfig
from adapter.consortium import Facility
from adapter.credentials import header_secrets
from adapter.errors import DeliveryError, FatalDeliveryError, RetriableDeliveryError
from adapter.outbound.base import ConnectorContext, DeliveryItem, ItemResult, register_destination
from adapter.outbound.bundle import SEQUENCE_HEADER, outgoing, put_bundle

# what one request did for one resource: status, error (None when delivered), milliseconds
_Outcome = tuple[int | str | None, DeliveryError | None, float]


class FhirDestinationSettings(HttpSettings):
    bundle: Literal["transaction", "batch", "none"] = "transaction"
    batch_size: int = Field(50, ge=1, le=1000, description="resources per Bundle")
    max_concurrency: int = Field(
        4, ge=1, le=64, description="requests in flight to this destination at once"
    )
    prefer_minimal: bool = Field(True, description="ask for Prefer: return=minimal answers")


class FhirRestDestination:
    kind = "fhir"

    def __init__(self, destination_id: str, settings: FhirDestinationSettings) -> None:
        self.id = destination_id
        self.settings = settings
        where = f"destinations.{destination_id}.settings"
        self._client = http_client(settings, where=where, max_connections=settings.max_concurrency)
        self._slots = threading.BoundedSemaphore(settings.max_concurrency)
        self._headers = {"Content-Type": FHIR_JSON}
        if settings.prefer_minimal:
            self._headers["Prefer"] = "return=minimal"

    # -- contract ---------------------------------------------------------------------------
    def secrets(self) -> list[str]:
        """Credentials this destination sends (stripped from any answer that is stored)."""
        auth = self._client.auth
        held = auth.secrets() if hasattr(auth, "secrets") else []
        return [*held, *header_secrets(self.settings.headers)]

    def check(self) -> CheckResult:
        def probe() -> str | None:
            with self._slots:
                response = self._client.get("metadata")
            if response.status_code != 200:
                return str(
                    error_for_response(response, what="GET metadata", secrets=self.secrets())
                )
            try:
                kind = response.json().get("resourceType")
            except ValueError:
                kind = None
            if kind != "CapabilityStatement":
                return "GET metadata gave no CapabilityStatement (is base_url the FHIR base?)"
            return None

        return timed_check(self.id, self.kind, probe)

    @property
    def ordered(self) -> bool:
        """A patient's queued rows may go in one ``send`` when it is one transaction: the
        server applies them all or none. Not a ``batch`` (each entry succeeds or fails on
        its own), nor single PUTs (a round trip per row all the same)."""
        return self.settings.bundle == "transaction"

    def send(self, batch: list[DeliveryItem]) -> list[ItemResult]:
        results: list[ItemResult] = []
        size = self.settings.batch_size
        # order keys with a row that failed and will be retried: their later rows are held
        waiting: set[int] = set()
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            ready = [i for i in chunk if not _behind(i, waiting)]
            sent = {r.outbox_id: r for r in self._send_chunk(ready, waiting)} if ready else {}
            results.extend(sent.get(i.outbox_id) or _held(i) for i in chunk)
        return results

    def close(self) -> None:
        self._client.close()
        tokens = getattr(self._client.auth, "tokens", None)
        if tokens is not None:
            tokens.close()

    # -- sending ----------------------------------------------------------------------------
    def _send_chunk(self, chunk: list[DeliveryItem], waiting: set[int]) -> list[ItemResult]:
        # the same resource twice in a chunk (two outbox rows, two versions) goes once: both
        # rows carry its current body, and a transaction may not name it twice
        unique: dict[tuple[str, str], list[DeliveryItem]] = {}
        for item in chunk:
            unique.setdefault((item.resource_type, item.resource_id), []).append(item)
        keys = list(unique)
        if self.settings.bundle == "none":
            outcomes = self._put_each([unique[key][0] for key in keys], waiting)
        else:
            outcomes = self._post_bundle([unique[key][0] for key in keys], waiting, chunk)
        results: list[ItemResult] = []
        for key, outcome in zip(keys, outcomes, strict=True):
            for item in unique[key]:
                if outcome is None:
                    results.append(_held(item))
                    continue
                status, error, duration = outcome
                results.append(ItemResult(item.outbox_id, error is None, error, status, duration))
                if error is not None and not isinstance(error, FatalDeliveryError):
                    _wait_behind(item, waiting)
        order = {item.outbox_id: n for n, item in enumerate(chunk)}
        results.sort(key=lambda r: order[r.outbox_id])
        return results

    def _put_each(self, items: list[DeliveryItem], waiting: set[int]) -> list[_Outcome | None]:
        """One PUT each, in order; after a retriable failure the rows behind it of its
        order key are not sent (None: held). A refused one (dead) holds nothing back."""
        outcomes: list[_Outcome | None] = []
        for item in items:
            if _behind(item, waiting):
                outcomes.append(None)
                continue
            outcome = self._put(item)
            if outcome[1] is not None and not isinstance(outcome[1], FatalDeliveryError):
                _wait_behind(item, waiting)
            outcomes.append(outcome)
        return outcomes

    def _request(
        self, method: str, url: str, body: dict[str, Any], sequence: int | None = None
    ) -> tuple[httpx.Response | None, DeliveryError | None, float]:
        started = time.perf_counter()
        headers = self._headers
        if sequence is not None:  # the destination's sequence number (docs/routing.md)
            headers = {**headers, SEQUENCE_HEADER: str(sequence)}
        try:
            with self._slots:
                response = self._client.request(method, url, json=body, headers=headers)
        except Exception as exc:  # transport failures and token endpoint errors
            return None, error_for_exception(exc, what=f"{method} {self._where(url)}"), _ms(started)
        return response, None, _ms(started)

    def _put(self, item: DeliveryItem) -> _Outcome:
        url = f"{item.resource_type}/{item.resource_id}"
        response, error, duration = self._request(
            "PUT", url, outgoing(item.resource), item.sequence
        )
        if response is None:
            return None, error, duration
        if response.is_success:
            return response.status_code, None, duration
        return (
            response.status_code,
            error_for_response(response, what=f"PUT {url}", secrets=self.secrets()),
            duration,
        )

    def _post_bundle(
        self, items: list[DeliveryItem], waiting: set[int], rows: list[DeliveryItem]
    ) -> list[_Outcome | None]:
        """``items``: one per resource; ``rows``: every row they stand for (a resource's
        one entry carries the sequence numbers of all its rows)."""
        bundle_type = self.settings.bundle
        assert bundle_type != "none"
        bundle = put_bundle(rows, bundle_type=bundle_type, base_url=self.settings.base_url)
        response, error, duration = self._request("POST", "", bundle)
        what = f"{bundle_type} of {len(items)}"
        if response is None:
            assert error is not None
            return [(None, error, duration)] * len(items)
        if not response.is_success:
            error = error_for_response(response, what=f"POST {what}", secrets=self.secrets())
            if isinstance(error, FatalDeliveryError) and len(items) > 1:
                # which entry was refused is not said reliably (or the Bundle as a whole was
                # too large): find out with one PUT each
                return self._put_each(items, waiting)
            return [(response.status_code, error, duration)] * len(items)
        return self._entry_results(response, items, what, duration)

    def _entry_results(
        self, response: httpx.Response, items: list[DeliveryItem], what: str, duration: float
    ) -> list[tuple[int | str | None, DeliveryError | None, float]]:
        try:
            body = response.json()
            entries = body.get("entry") or []
        except (ValueError, AttributeError):
            entries = None
        if not isinstance(entries, list) or len(entries) != len(items):
            # stored or not, we cannot tell; PUT makes another try harmless
            error = RetriableDeliveryError(
                f"{what}: the answer is not a Bundle with one entry per request",
                status=response.status_code,
            )
            return [(response.status_code, error, duration)] * len(items)
        out: list[tuple[int | str | None, DeliveryError | None, float]] = []
        for item, entry in zip(items, entries, strict=True):
            answer = (entry or {}).get("response") or {}
            status = _entry_status(answer.get("status"))
            if status is None:
                out.append(
                    (
                        None,
                        RetriableDeliveryError(
                            f"{what}: entry for {item.resource_type}/{item.resource_id} "
                            "has no status"
                        ),
                        duration,
                    )
                )
            elif 200 <= status < 300:
                out.append((status, None, duration))
            else:
                out.append(
                    (
                        status,
                        error_for_status(
                            status,
                            what=f"{item.resource_type}/{item.resource_id} in {what}",
                            outcome=answer.get("outcome"),
                            secrets=self.secrets(),
                        ),
                        duration,
                    )
                )
        return out

    def _where(self, url: str) -> str:
        return f"{self.settings.base_url}/{url}".rstrip("/")


def _behind(item: DeliveryItem, waiting: set[int]) -> bool:
    return item.order_key is not None and item.order_key in waiting


def _wait_behind(item: DeliveryItem, waiting: set[int]) -> None:
    if item.order_key is not None:
        waiting.add(item.order_key)


def _held(item: DeliveryItem) -> ItemResult:
    return ItemResult(item.outbox_id, False, held=True)


def _entry_status(value: Any) -> int | None:
    """``"201 Created"`` / ``"200"`` -> the number."""
    if value is None:
        return None
    head = str(value).strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@register_destination("fhir")
def build(
    facility: Facility, config: DestinationConfig, context: ConnectorContext
) -> FhirRestDestination:
    settings = parse_settings(
        FhirDestinationSettings, config.settings, where=f"destinations.{config.id}.settings"
    )
    return FhirRestDestination(config.id, settings)
