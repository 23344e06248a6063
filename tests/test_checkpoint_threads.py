"""Checkpoints read from many threads at once: runs trained in threads (a dask worker's, the
same-second test of test_interrupt.py) each read their own."""

import gc
import sys
import threading
import types

import numpy as np

from dl2424 import checkpoint


class _Cycle:
    """A reference cycle with a finalizer: the garbage collector runs Python code (and may
    switch threads) wherever an allocation triggers it."""

    def __init__(self):
        self.me = self

    def __del__(self):
        sum(range(50))


def test_checkpoints_load_in_threads_racing_the_garbage_collector(tmp_path):
    # np.load parses every .npy header with ast.literal_eval; on CPython 3.11 two threads
    # building ASTs at once can fail with "SystemError: AST constructor recursion depth
    # mismatch". A collection at every few allocations, with finalizers that let other
    # threads in, makes that interleaving likely within a few hundred loads.
    model = types.SimpleNamespace(params={f"W{i}": np.full((3, 2), i, np.float32)
                                          for i in range(8)}, state={})
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, model, None, {"step": 5, "sampled": [], "best": None})
    errors, steps = [], []

    def load_many():
        try:
            for _ in range(60):
                _Cycle()
                ckpt = checkpoint.load(path)
                steps.append(checkpoint.read_step(path, -1))
                assert np.array_equal(ckpt.params["W7"], model.params["W7"])
        except Exception as e:  # noqa: BLE001 — reported below
            errors.append(e)

    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(5)
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=load_many) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)
    assert not errors
    assert steps == [5] * 8 * 60
