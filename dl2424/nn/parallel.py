"""How many threads dl2424's image ConvNet uses (set_threads; DL2424_THREADS)."""

from __future__ import annotations

import os

_threads: int | None = None


def default_threads() -> int:
    """DL2424_THREADS if set, else every core up to two."""
    env = os.environ.get("DL2424_THREADS")
    return max(1, int(env)) if env else min(2, os.cpu_count() or 1)


def threads() -> int:
    return _threads or default_threads()


def set_threads(n: int) -> None:
    global _threads
    _threads = max(1, int(n))
