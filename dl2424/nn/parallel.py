"""Two cores for the image ConvNet: the batch is cut in fixed parts run on a thread pool.

NumPy releases the GIL inside large array operations and BLAS calls, so Python threads that
each work on their own part of the batch (their own slices of the same buffers) run at the
same time. The parts do not depend on the thread count (`parts(n)`: two halves), and what is
summed over parts (batch-norm statistics, weight gradients) is summed in part order, so one
thread and two give the same numbers bit for bit; BLAS stays at one thread per caller.

The thread count is `set_threads(n)`, else the environment variable DL2424_THREADS, else
every core up to two (`benchmarks/bench_cnn.py` shows two threads beating one on the image
ConvNets). A forward pass whose non-smooth choices are being recorded for the gradient check
(`kinks.recording()`) runs its parts in order on the calling thread, so that the recording
does not depend on thread timing.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from ..errors import UserError
from . import kinks

N_PARTS = 2

_threads: int | None = None
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (workers, pool)


def default_threads(environ=os.environ) -> int:
    """DL2424_THREADS if set, else every core up to two."""
    env = environ.get("DL2424_THREADS", "").strip()
    if not env:
        return min(N_PARTS, os.cpu_count() or 1)
    if not env.isdigit() or int(env) < 1:
        raise UserError(f"DL2424_THREADS={env!r}: the number of threads must be a whole "
                        "number of at least 1 (unset it to use every core up to two)")
    return int(env)


def threads() -> int:
    return _threads or default_threads()


def set_threads(n: int | None) -> None:
    """Use n threads from now on (1: everything on the calling thread; None: the default)."""
    global _threads
    _threads = None if n is None else max(1, int(n))


def parts(n: int) -> list[slice]:
    """The fixed cut of a batch of n examples: two halves (one part when n < 2)."""
    k = min(N_PARTS, n) or 1
    bounds = [n * i // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def map_parts(fn, items) -> list:
    """[fn(item) for item in items], the items after the first on pool threads when
    threads() > 1. Returns the results in order; an exception in any part is raised here."""
    cuts = list(items)
    if threads() == 1 or len(cuts) == 1 or kinks.recording_active():
        return [fn(cut) for cut in cuts]
    global _pool
    if _pool is None or _pool[0] != threads() - 1:
        _pool = (threads() - 1, ThreadPoolExecutor(threads() - 1, thread_name_prefix="dl2424"))
    futures = [_pool[1].submit(fn, cut) for cut in cuts[1:]]
    first = fn(cuts[0])
    return [first, *(f.result() for f in futures)]


def total(partials):
    """The sum of the parts' partial results, added in part order (a new array)."""
    out = partials[0].copy()
    for p in partials[1:]:
        out += p
    return out
