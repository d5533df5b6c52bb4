"""Documents larger than ``ADAPTER_MAX_MESSAGE_BYTES``: refused, and kept as a prefix.

Every way in (HTTP, MLLP, file drop) stops reading at the limit, so an oversize document
never sits whole in memory or in the database. What is kept is a quarantined message whose
``raw`` holds the first ``ADAPTER_OVERSIZE_KEEP_BYTES`` bytes (enough to see the sender,
the message type and the patient) and whose ``size`` is the document's true size (declared
by Content-Length, the file's size, the whole MLLP frame counted while it was discarded),
or, when the end was never read, the bytes read before reading stopped.

The value (``Oversize``) is read by every way in and by the shared MLLP framing, so it sits
at the bottom of the layers, next to adapter.errors.

A stored message is a prefix exactly when ``size > len(raw)``: such a message cannot be
reprocessed; the sender has to send the document again (smaller, or after the limit was
raised).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapter.errors import Issue


@dataclass(frozen=True, slots=True)
class Oversize:
    """The part of an oversize document that was read: its first bytes and its size.

    ``size_exact`` is False when reading stopped before the end: ``size`` is then the
    number of bytes read, a lower bound of the true size.
    """

    prefix: bytes
    size: int
    size_exact: bool = True


def oversize_issue(oversize: Oversize, limit: int, kept: int) -> Issue:
    if oversize.size_exact:
        what = f"the document is {oversize.size} bytes"
    else:
        what = f"the document is larger than {limit} bytes (reading stopped after {oversize.size})"
    return Issue(
        "error",
        "too-long",
        f"{what}; the limit is {limit} bytes (ADAPTER_MAX_MESSAGE_BYTES). It was refused and "
        f"only its first {kept} bytes are kept (ADAPTER_OVERSIZE_KEEP_BYTES): have the sender "
        "split it, or raise the limit and have it sent again",
        location="body",
    )


def is_prefix_only(size: int, raw: bytes) -> bool:
    """A stored message that holds only the first bytes of what was received."""
    return size > len(raw)
