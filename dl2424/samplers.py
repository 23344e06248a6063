"""Samplers decide which training examples make up each epoch's mini-batches.

An epoch's order is a pure function of (labels, epoch generator), so any step of any epoch
can be reproduced exactly, which is what makes resuming bit-identical.
"""

from __future__ import annotations

import numpy as np

from .registry import SAMPLERS


class Sampler:
    """`epoch_order(rng)` returns the indices of one epoch, steps_per_epoch * batch long;
    mini-batch j is order[j*B:(j+1)*B]. A trailing incomplete batch is dropped."""

    def __init__(self, y: np.ndarray, batch_size: int):
        self.y, self.batch_size = y, batch_size

    @property
    def epoch_size(self) -> int:
        return len(self.y)

    @property
    def steps_per_epoch(self) -> int:
        return self.epoch_size // self.batch_size

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class Sequential(Sampler):
    def epoch_order(self, rng):
        return np.arange(self.steps_per_epoch * self.batch_size)


class Shuffle(Sampler):
    def epoch_order(self, rng):
        return rng.permutation(self.epoch_size)[: self.steps_per_epoch * self.batch_size]


class Balanced(Sampler):
    """Each epoch draws, per class, as many examples as the smallest class has (without
    replacement), then shuffles them together (the A3 hand-out author's scheme)."""

    def __init__(self, y, batch_size):
        super().__init__(y, batch_size)
        self.by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
        self.per_class = min(len(ix) for ix in self.by_class)

    @property
    def epoch_size(self):
        return self.per_class * len(self.by_class)

    def epoch_order(self, rng):
        drawn = np.concatenate([rng.choice(ix, self.per_class, replace=False)
                                for ix in self.by_class])
        return rng.permutation(drawn)[: self.steps_per_epoch * self.batch_size]


@SAMPLERS.register("shuffle")
def shuffle(p, y, batch_size):
    """A new random permutation of the training set every epoch."""
    return Shuffle(y, batch_size)


@SAMPLERS.register("sequential")
def sequential(p, y, batch_size):
    """Mini-batches in data order, j = 1..n/B, as in the A1 base exercise."""
    return Sequential(y, batch_size)


@SAMPLERS.register("balanced")
def balanced(p, y, batch_size):
    """Per epoch, an equal number of examples of every class (the smallest class's size)."""
    return Balanced(y, batch_size)
