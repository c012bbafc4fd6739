"""Making many small objects at once: reading a large store and building its leaderboards."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block, then restore it as it was.

    Decoding 100,000 result rows makes millions of dicts and strings, none of them in a
    reference cycle; the collector's passes over the ever larger heap were nearly half of the
    read (``benchmarks/leaderboard_scale.py``). Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
