"""adapter.heap: the heap frozen and the young generation collected in larger steps only
for the block, undone after it (a test process runs many commands)."""

from __future__ import annotations

import gc
import weakref

from adapter.heap import YOUNG_THRESHOLD, settled


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settled_freezes_and_restores() -> None:
    before_threshold = gc.get_threshold()
    before_frozen = gc.get_freeze_count()
    kept = _Node()  # exists before the block: frozen with the rest
    with settled():
        assert gc.get_freeze_count() > before_frozen
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        with settled():  # nested: settles once, undone only by the outer block
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > before_frozen
    assert gc.get_threshold() == before_threshold
    assert gc.get_freeze_count() == before_frozen
    del kept


def test_cycles_made_in_the_block_are_still_collected() -> None:
    with settled():
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None


def test_cycles_frozen_with_the_heap_are_collected_after_it() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    with settled():
        del a, b
        gc.collect()
        assert gone() is not None  # frozen: the passes skip it
    gc.collect()
    assert gone() is None  # unfrozen at the end of the block: collected
