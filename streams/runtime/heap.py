"""Freed memory back to the system (glibc's malloc; elsewhere these do nothing).

A room's flat tables grow and shrink all night (new viewers, then expiry), and glibc
keeps what is freed: blocks below its mmap threshold stay in the heap as free space,
and the threshold itself rises to 32 MB after the first big block is freed, so later
big tables come from the heap too. Measured in the `memory` load test: `malloc_trim`
at t = 400 s gave back 46 MB of a 624 MB worker.
"""

from __future__ import annotations

import ctypes
import os
import time

M_MMAP_THRESHOLD = -3  # mallopt(3)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's starting value, kept fixed


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    return libc


_LIBC = _glibc()


def tune_malloc() -> bool:
    """Blocks of 128 kB and more (a busy room's table) in mappings of their own, given
    back when freed: the threshold no longer rises. True if set."""
    return _LIBC is not None and _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


def release_free_memory() -> float:
    """Give the heap's free pages back (`malloc_trim(0)`); the seconds it took."""
    if _LIBC is None:
        return 0.0
    started = time.perf_counter()
    _LIBC.malloc_trim(0)
    return time.perf_counter() - started


def rss_bytes() -> int:
    """This process's resident memory (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
