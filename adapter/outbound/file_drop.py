"""File drop, outbound: a folder as a destination (one file per resource or per batch).

Each file is written to a hidden temporary name in the target folder, flushed to disk and
renamed into place, so a reader of the folder never sees half a file. Names come from a
template (``{resource_type}-{resource_id}.json`` by default), so a resend replaces the file
rather than adding one. A batch layout writes one transaction Bundle of PUTs
(:mod:`adapter.outbound.bundle`). The source side (a polled folder) is
:mod:`adapter.inbound.file_drop`.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from adapter.connectors.base import CheckResult, ConnectorSettings, parse_settings, timed_check
from adapter.connectors.files import write_atomically
from adapter.consortium import Destination as DestinationConfig
from adapter.consortium import Facility
from adapter.errors import RetriableDeliveryError
from adapter.outbound.base import ConnectorContext, DeliveryItem, ItemResult, register_destination
from adapter.outbound.bundle import outgoing, put_bundle

_RESOURCE_FIELDS = {
    "resource_type": "Observation",
    "resource_id": "x",
    "version_id": 1,
    "outbox_id": 1,
    "destination": "d",
    "timestamp": "20260101T000000000000",
    "sequence": 1,
}
_BUNDLE_FIELDS = {
    "first_outbox_id": 1,
    "first_sequence": 1,
    "count": 1,
    "destination": "d",
    "timestamp": "20260101T000000000000",
}


def _check_template(template: str, fields: dict[str, Any]) -> str:
    try:
        name = template.format(**fields)
    except KeyError as exc:
        raise ValueError(
            f"unknown placeholder {{{exc.args[0]}}}; known: "
            + ", ".join(f"{{{k}}}" for k in fields)
        ) from None
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a valid name template: {exc}") from None
    if "/" in name or "\\" in name or name.startswith(".") or not name:
        raise ValueError("a file name may not contain / or \\ nor start with a dot")
    return template


# -- destination ------------------------------------------------------------------------------
class FileDestinationSettings(ConnectorSettings):
    path: str = Field(description="folder the files are written to")
    layout: Literal["resource", "bundle"] = Field(
        "resource", description="one file per resource, or one transaction Bundle per batch"
    )
    naming: str = Field(
        "{resource_type}-{resource_id}.json",
        description="file name; {resource_type} {resource_id} {version_id} "
        "{outbox_id} {destination} {timestamp} {sequence} (the destination's sequence number)",
    )
    bundle_naming: str = Field(
        "bundle-{timestamp}-{first_outbox_id}.json",
        description="file name of a batch; {first_outbox_id} {first_sequence} {count} "
        "{destination} {timestamp}",
    )
    create_directory: bool = False
    fsync: bool = Field(True, description="flush each file to disk before renaming it")

    @field_validator("naming")
    @classmethod
    def _naming(cls, value: str) -> str:
        return _check_template(value, _RESOURCE_FIELDS)

    @field_validator("bundle_naming")
    @classmethod
    def _bundle_naming(cls, value: str) -> str:
        return _check_template(value, _BUNDLE_FIELDS)


class FileDestination:
    kind = "file"

    def __init__(self, destination_id: str, settings: FileDestinationSettings) -> None:
        self.id = destination_id
        self.settings = settings
        self.folder = Path(settings.path)
        if settings.create_directory:
            self.folder.mkdir(parents=True, exist_ok=True)

    def check(self) -> CheckResult:
        def probe() -> str | None:
            if not self.folder.is_dir():
                return f"no folder {self.folder}"
            probe_file = write_atomically(
                self.folder, f"check-{uuid.uuid4().hex}.probe", b"", fsync=False
            )
            probe_file.unlink()
            return None

        return timed_check(self.id, self.kind, probe)

    def send(self, batch: list[DeliveryItem]) -> list[ItemResult]:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        if self.settings.layout == "bundle":
            return self._send_bundle(batch, stamp)
        results = []
        for item in batch:
            started = time.perf_counter()
            name = self.settings.naming.format(
                resource_type=item.resource_type,
                resource_id=item.resource_id,
                version_id=item.version_id,
                outbox_id=item.outbox_id,
                destination=self.id,
                timestamp=stamp,
                sequence=item.sequence or 0,
            )
            results.append(self._write(name, outgoing(item.resource), [item], started)[0])
        return results

    def _send_bundle(self, batch: list[DeliveryItem], stamp: str) -> list[ItemResult]:
        if not batch:
            return []
        started = time.perf_counter()
        bundle = put_bundle(batch)  # one entry per resource; fullUrl Type/id (no server base)
        name = self.settings.bundle_naming.format(
            first_outbox_id=batch[0].outbox_id,
            first_sequence=min((i.sequence for i in batch if i.sequence is not None), default=0),
            count=len(batch),
            destination=self.id,
            timestamp=stamp,
        )
        return self._write(name, bundle, batch, started)

    def _write(
        self, name: str, body: dict[str, Any], items: list[DeliveryItem], started: float
    ) -> list[ItemResult]:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            write_atomically(self.folder, name, data, fsync=self.settings.fsync)
        except OSError as exc:  # full disk, permissions, folder gone: fixable, try again later
            error = RetriableDeliveryError(
                f"cannot write {self.folder / name}: {exc.strerror or exc}"
            )
            return [ItemResult(i.outbox_id, False, error, None, _ms(started)) for i in items]
        return [ItemResult(i.outbox_id, True, None, "written", _ms(started)) for i in items]

    def close(self) -> None:
        pass


@register_destination("file")
def build_destination(
    facility: Facility, config: DestinationConfig, context: ConnectorContext
) -> FileDestination:
    settings = parse_settings(
        FileDestinationSettings, config.settings, where=f"destinations.{config.id}.settings"
    )
    return FileDestination(config.id, settings)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
