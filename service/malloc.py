"""Heap tuning for a serving process: keep freed memory (glibc), and keep the startup heap out
of the garbage collector's full collections.

Keep freed memory in the process heap instead of returning it to the OS (glibc only).

A batch allocates tensors of a few MB (the beams' self-attention caches, FFN activations);
by default glibc serves those with mmap and unmaps them when freed, so every batch
page-faults its memory in again. Keeping it cut model time per request by ~9% (32 requests
at beam 64, ml-100k model, in a worker thread, four runs each: 2.54-2.68 -> 2.30-2.43 ms on
the shared 2-core host), at the cost of the heap staying at its peak size (tens of MB here).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Allocations up to 32 MB come from the heap and freed memory stays there; True if set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = bool(
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
            and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        ok = False
    log.info("malloc_keep_freed_memory enabled=%s", ok)
    return ok


def settle_heap() -> None:
    """Collect once, then move every object alive now (the app, the bundle's catalog and
    histories, torch, pydantic, …: ~220k objects) out of the collector's view for good.

    A full collection walks all of them: 78 ms in the server process, and under load one
    landed in a request every few seconds: in ad-hoc runs of the serving benchmark's server
    and load generator (open loop, ~1,090 req/s) the p99 was 165–183 ms without this and
    85–89 ms with it; benchmarks/results/serving.md is measured with it. Call it once startup
    is done. Objects made later (a reloaded bundle) are not frozen: a frozen object is never
    collected, so a replaced bundle's reference cycles would stay for good.
    """
    gc.collect()
    gc.freeze()
