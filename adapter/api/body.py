"""Reading a request body without ever holding more than the limit.

A Content-Length over the limit is refused up front: only the first bytes are read (to be
kept), the rest is never read. A body without a length (chunked) is counted while it
arrives and reading stops as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.requests import Request

from adapter.oversize import Oversize


async def read_limited_body(request: Request, *, limit: int, keep: int) -> bytes | Oversize:
    """The whole body, or what was read of it when it is larger than ``limit`` bytes."""
    declared = _content_length(request)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if declared is not None and declared > limit and len(received) >= keep:
            return Oversize(bytes(received[:keep]), declared)
        if len(received) > limit:
            return Oversize(bytes(received[:keep]), len(received), size_exact=False)
    if declared is not None and declared > limit:  # the sender stopped short of its length
        return Oversize(bytes(received[:keep]), declared)
    return bytes(received)


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None
