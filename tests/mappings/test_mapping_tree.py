"""Rules over the whole mappings/ tree (not per case)."""

from __future__ import annotations

import hashlib

from tests.mappings.conftest import ROOT

MAPPINGS = ROOT / "mappings"


def test_no_two_files_under_mappings_are_identical() -> None:
    """A rule that does not depend on the input format is written once, in
    ``_shared/common/`` (templates, datatypes) or ``_shared/concept-maps/``; two identical
    files would be a copy that can drift from its original."""
    by_content: dict[str, list[str]] = {}
    for path in sorted(MAPPINGS.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            by_content.setdefault(digest, []).append(path.relative_to(MAPPINGS).as_posix())
    copies = [paths for paths in by_content.values() if len(paths) > 1]
    assert not copies, f"identical files under mappings/: {copies}"
    assert sum(len(paths) for paths in by_content.values()) > 100  # the tree was read
