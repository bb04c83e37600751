"""The allocator tuning applies on Linux/glibc and is harmless to call again."""

import sys

import pytest

from service.malloc import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_glibc_keeps_freed_memory():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
