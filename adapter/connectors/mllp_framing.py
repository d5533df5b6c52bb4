"""MLLP framing: ``0x0B message 0x1C 0x0D``.

The receiver answers each message with an ACK on the same connection before the next one
is sent. The listener (adapter.inbound.mllp) cuts received messages out of the stream with
:class:`FrameReader`, the sender (adapter.outbound.mllp) the ACKs.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapter.oversize import Oversize

START = b"\x0b"
END = b"\x1c\x0d"


def frame(message: bytes) -> bytes:
    return START + message + END


class FrameTooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class CutFrame:
    """The bytes of a frame that never ended: a start block came before its end block (the
    sender stopped in the middle of a message and began the next one). 0x0B never occurs in
    HL7 text, so the new start block is the next frame; these bytes are not a message."""

    data: bytes


class FrameReader:
    """Cuts a byte stream into MLLP frames. Bytes outside a frame are dropped.

    A frame longer than ``max_bytes`` raises ``FrameTooLarge``, or, when ``keep`` is given,
    is read to its end without being held: it comes out as an ``Oversize`` with its first
    ``keep`` bytes and its length, and the frames after it are read as usual. The reader
    never holds more than ``max_bytes`` plus one read.
    """

    def __init__(self, max_bytes: int, *, keep: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.keep = keep
        self._buffer = bytearray()
        self._skipping: _Skipping | None = None

    def feed(self, data: bytes) -> list[bytes | Oversize | CutFrame]:
        frames: list[bytes | Oversize | CutFrame] = []
        if self._skipping is not None:
            data = self._skip(data, frames)
        self._buffer.extend(data)
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self._buffer.clear()
                break
            end = self._buffer.find(END, start + 1)
            restart = self._buffer.find(START, start + 1, end if end >= 0 else len(self._buffer))
            if restart > 0:  # a frame cut off: what follows the new start block is the next
                frames.append(CutFrame(bytes(self._buffer[start + 1 : restart])))
                del self._buffer[:restart]
                continue
            if end < 0:
                if start:
                    del self._buffer[:start]
                if len(self._buffer) > self.max_bytes + 1:
                    self._too_large(bytes(self._buffer[1:]))
                    self._buffer.clear()
                break
            body = bytes(self._buffer[start + 1 : end])
            del self._buffer[: end + len(END)]
            if len(body) > self.max_bytes:
                self._too_large(body)
                assert self._skipping is not None
                frames.append(self._skipping.done(0))
                self._skipping = None
            else:
                frames.append(body)
        return frames

    def _too_large(self, start_of_frame: bytes) -> None:
        if self.keep is None:
            raise FrameTooLarge(f"a frame is longer than {self.max_bytes} bytes")
        self._skipping = _Skipping(start_of_frame[: self.keep], len(start_of_frame))
        self._skipping.last = start_of_frame[-1:]

    def _skip(self, data: bytes, frames: list[bytes | Oversize | CutFrame]) -> bytes:
        """Count the bytes of an oversize frame up to its end; what follows it."""
        skipping = self._skipping
        assert skipping is not None
        if skipping.last == END[:1] and data[:1] == END[1:]:  # the end block was split
            frames.append(skipping.done(-1))
            self._skipping = None
            return data[1:]
        end = data.find(END)
        if end < 0:
            skipping.size += len(data)
            skipping.last = data[-1:] or skipping.last
            return b""
        frames.append(skipping.done(end))
        self._skipping = None
        return data[end + len(END) :]

    @property
    def pending(self) -> bool:
        return bool(self._buffer) or self._skipping is not None


class _Skipping:
    """An oversize frame being read to its end: its first bytes and the bytes counted."""

    def __init__(self, prefix: bytes, size: int) -> None:
        self.prefix = prefix
        self.size = size
        self.last = b""

    def done(self, more: int) -> Oversize:
        return Oversize(self.prefix, self.size + more)
