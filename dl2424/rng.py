"""Every random number comes from a generator derived from (seed, stream, key...).

Deriving instead of carrying one generator along makes any epoch or step reproducible on
its own: a resumed run draws exactly what an uninterrupted one would.
"""

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    INIT = 0  # weight initialisation
    EPOCH = 1  # the sampler's order for epoch e
    STEP = 2  # dropout masks and augmentation at update step t
    EVAL = 3  # the fixed training subset used for evaluation
    CHECK = 4  # gradient checks
    SAMPLE = 5  # text synthesis at update step t


def generator(seed: int, stream: Stream, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, int(stream), *keys]))


class LazyGenerator:
    """A generator built on first use: most update steps of most models draw nothing, and
    seeding a PCG64 costs more than a small model's whole step."""

    def __init__(self, seed: int, stream: Stream, *keys: int):
        self._args, self._gen = (seed, stream, *keys), None

    def __getattr__(self, name):
        if self._gen is None:
            self._gen = generator(*self._args)
        return getattr(self._gen, name)
