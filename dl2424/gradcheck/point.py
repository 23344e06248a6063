"""Where to check: a generic point near the initial weights, off every kink.

Biases start at exactly zero and batch-norm scales at exactly one. A zero bias puts every
all-padding window of the surname ConvNet exactly on its ReLU's kink (b1 and b2 "fail"
with relative error 1), and equal values tie in max-pools. The default check therefore
moves entries that are exactly zero or exactly tied by a small seeded jitter, recorded in
the report; `--at init` checks the initial weights as they are.
"""

from __future__ import annotations

import numpy as np

from ..rng import Stream, generator

JITTER = 1e-2  # relative to the parameter's size (absolute for all-zero parameters)


TIES_UP_TO = 100_000  # larger arrays are searched for zeros and constant values only


def degenerate(w: np.ndarray) -> np.ndarray:
    """Mask of the entries of w that are exactly zero or exactly equal to another entry
    (in arrays of more than TIES_UP_TO entries: zeros, or all entries when w is constant;
    random initialisations do not repeat values, constant ones are caught either way)."""
    flat = w.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return np.ones(w.shape, dtype=bool)
    if flat.size > TIES_UP_TO:
        return w == 0
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    return ((flat == 0) | (counts[inverse] > 1)).reshape(w.shape)


def jitter_point(params: dict[str, np.ndarray], seed: int, scale: float = JITTER
                 ) -> dict[str, int]:
    """Add scale * size * N(0, 1) to the degenerate entries of every parameter, in place;
    size is the root-mean-square of the parameter's non-zero entries (1 if it has none).
    Draws from (seed, Stream.CHECK, 2), parameter by parameter in order. Returns how many
    entries of each parameter moved."""
    rng = generator(seed, Stream.CHECK, 2)
    moved = {}
    for name, w in params.items():
        mask = degenerate(w)
        if not mask.any():
            continue
        nonzero = w[w != 0]
        size = float(np.sqrt(np.mean(np.square(nonzero)))) if nonzero.size else 1.0
        w[mask] += scale * size * rng.standard_normal(int(mask.sum()))
        moved[name] = int(mask.sum())
    return moved
