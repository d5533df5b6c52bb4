"""Files in a shared folder: writing one so that a reader sees it complete or not at all
(written to a hidden temporary name, flushed to disk, renamed into place), and names that
fit the file system. Used by the file-drop destination (each delivered file) and the
file-drop source (error reports, poison files).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path

NAME_MAX = 255  # bytes in one name (ext4, xfs, btrfs)


def name_bytes(name: str) -> bytes:
    return os.fsencode(name)


def fitting_name(name: str, room: int) -> str:
    """``name``, or a shortened one, so that ``room`` more bytes still fit in a name."""
    raw = name_bytes(name)
    if len(raw) + room <= NAME_MAX:
        return name
    tag = "~" + hashlib.sha1(raw).hexdigest()[:12]
    keep = NAME_MAX - room - len(tag)
    # cut on bytes: a broken multibyte character stays bytes (surrogate escapes), as before
    return os.fsdecode(raw[:keep]) + tag


def write_atomically(folder: Path, name: str, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``folder/name`` so that it appears complete or not at all."""
    target = folder / name
    # hidden, and short enough for any name that fits (a name may use all 255 bytes)
    temporary = folder / f".{fitting_name(name, 14)}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    if fsync:
        _fsync_dir(folder)
    return target


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory; the rename still stands
        pass
    finally:
        os.close(fd)
