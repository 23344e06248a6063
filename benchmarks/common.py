"""Shared timing helpers for the benchmark scripts (run by `make bench`)."""

from __future__ import annotations

import argparse
import os
import statistics
import time


def parse_args(doc: str) -> argparse.Namespace:
    """The options every benchmark takes. Sets the BLAS thread count, so call it before
    NumPy is imported."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS / torch threads (default 1, as the dl2424 CLI)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is shown")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or this process's CPU time (steadier on a busy machine)")
    opts = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(opts.threads)
    return opts


def timer(opts):
    return time.process_time if opts.clock == "cpu" else time.perf_counter


def seconds_per_call(fn, repeats: int, number: int, warmup: int = 5,
                     clock=time.perf_counter) -> list[float]:
    """For each of `repeats` rounds, the mean time in seconds of `number` calls of fn."""
    for _ in range(warmup):  # caches, allocator, BLAS buffers
        fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        for _ in range(number):
            fn()
        times.append((clock() - t0) / number)
    return times


def median_ms(fn, repeats: int = 5, number: int = 50, warmup: int = 5) -> float:
    """Median over `repeats` of the mean time of `number` calls, in milliseconds."""
    return 1e3 * statistics.median(seconds_per_call(fn, repeats, number, warmup))


def paired_ratios(new: list[float], old: list[float]) -> tuple[float, float, float]:
    """(median, lower quartile, upper quartile) over rounds of new / old within a round, for
    times taken in interleaved rounds: drift slower than a round cancels out of each ratio,
    and the quartiles show how far the rounds disagree."""
    ratios = [a / b for a, b in zip(new, old, strict=True)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    low, mid, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return mid, low, high


def matmul_peak_gflops(dtype, n: int = 2048, repeats: int = 5, threads: int = 1) -> float:
    """The machine's practical matmul peak: best of a few n x n x n products, `threads` of
    them at once on Python threads, each calling BLAS on its thread as dl2424's parts do
    (BLAS itself is pinned to one thread: timing one product would give the one-core peak
    at any thread count)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = a.copy()
    with ThreadPoolExecutor(threads) as pool:
        def together():
            list(pool.map(lambda _: a @ b, range(threads)))

        together()
        best = min(_time(together) for _ in range(repeats))
    return threads * 2 * n**3 / best / 1e9


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch
