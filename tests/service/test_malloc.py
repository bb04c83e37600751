"""The allocator tuning applies on Linux/glibc and is harmless to call again."""

import sys

import pytest

from service.malloc import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_glibc_keeps_freed_memory():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True


def test_settle_heap_moves_what_is_alive_out_of_the_collectors_view():
    import gc

    from service.malloc import settle_heap

    try:
        settle_heap()
        assert gc.get_freeze_count() > 1000  # the interpreter, pytest, torch, …
    finally:
        gc.unfreeze()
