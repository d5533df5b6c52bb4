"""One ``Receipt`` for every way a document comes in: who sent it, by which channel, from
where, as what, and when.

Every way in builds one and hands it to ``Pipeline.ingest`` (or ``refuse``): ``POST
/ingest``, the MLLP listener, the file-drop and FHIR-pull sources, ``adapter ingest`` and
``adapter demo``. The channel and the peer are kept on the inbound message row and shown by
``/messages`` and ``adapter messages``. A reprocess keeps the row's channel and peer (they
say how the bytes came in) and uses the ``reprocess`` channel only for its audit event.

The peer is shown to operators, so it is made safe here, once, whoever builds it: no
credentials or query string of a URL, no national ID or phone number (a file named after a
patient), no control characters, at most 255 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from adapter.logs import redact

PEER_CHARS = 255  # inbound_message.peer
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Channel(StrEnum):
    HTTP = "http"  # POST /ingest
    MLLP = "mllp"  # the MLLP listener
    FILE_DROP = "file-drop"  # a polled folder
    FHIR_PULL = "fhir-pull"  # a polled FHIR server
    CLI = "cli"  # adapter ingest / adapter demo
    SYNC = "sync"  # adapter sync: a document of a night (peer: the sync source and its key)
    REPROCESS = "reprocess"  # a stored message translated again (audit only)


def safe_peer(text: str | None) -> str | None:
    """``text`` fit to be stored and listed: a URL without user, password, query or
    fragment; national IDs and phone numbers masked; one line; at most 255 characters."""
    if not text:
        return None
    if "://" in text:
        text = _bare_url(text)
    text = redact(_CONTROL.sub("?", text))
    return text[:PEER_CHARS] or None


def _bare_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not a URL after all: keep only what comes before a query
        return url.split("?", 1)[0].split("#", 1)[0]
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def address(host: object, port: object = None) -> str | None:
    """``host:port`` of a socket peer (``[::1]:port`` for IPv6)."""
    if not host:
        return None
    text = str(host)
    if ":" in text:
        text = f"[{text}]"
    return f"{text}:{port}" if port is not None else text


@dataclass(frozen=True, slots=True)
class Receipt:
    """How one document was received. ``peer`` is made safe on construction."""

    source_system: str
    channel: Channel
    peer: str | None = None  # host:port, a file name, or a URL without credentials
    content_type: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel", Channel(self.channel))
        object.__setattr__(self, "peer", safe_peer(self.peer))
