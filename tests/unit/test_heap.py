"""Freed memory goes back to the system (glibc): what the worker does every 10 s."""

from __future__ import annotations

from streams.runtime.heap import release_free_memory, rss_bytes, tune_malloc


def test_free_pages_inside_the_heap_go_back_to_the_system() -> None:
    assert tune_malloc()  # glibc here: the threshold is set
    # 100 MB of 64 kB blocks (below the mmap threshold: they live in the heap), then
    # every other one freed: free space between live blocks, which glibc keeps.
    blocks = [bytearray(64 * 1024) for _ in range(1_600)]
    del blocks[::2]
    before = rss_bytes()
    took = release_free_memory()
    freed = before - rss_bytes()
    assert 0 <= took < 1.0
    assert freed > 30 * 2**20, f"only {freed / 2**20:.1f} MB given back"
    assert len(blocks) == 800 and all(len(b) == 64 * 1024 for b in blocks)
