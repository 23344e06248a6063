"""What every model shares: parameters, state, the cost J = loss + lambda * sum ||W||^2."""

from __future__ import annotations

import numpy as np
from pydantic import NonNegativeFloat

from ..limits import Footprint
from ..nn import init as _inits  # noqa: F401  (registers the initializers)
from ..nn import losses as _losses  # noqa: F401  (registers the losses)
from ..registry import INITS, LOSSES, Params, component


class Model:
    """A network with a flat `params` dict and gradients keyed the same way.

    Subclasses implement `forward(X, train, rng) -> (scores, cache)` and
    `backward(dscores, cache) -> grads` (data-loss gradients only). `state` holds arrays
    the optimizer never touches but checkpoints save (batch-norm moving averages).
    `decay` names the params the L2 penalty applies to (weights, never biases).
    """

    def __init__(self, loss, l2: float):
        self.loss_fn = loss
        self.l2 = l2
        self.params: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.decay: list[str] = []

    def forward(self, X, train: bool, rng=None):
        raise NotImplementedError

    def backward(self, dscores, cache):
        raise NotImplementedError

    def penalty(self) -> float:
        if not self.l2:
            return 0.0
        return self.l2 * sum(float(np.sum(self.params[k] ** 2)) for k in self.decay)

    def loss(self, X, target, weights=None, train: bool = True, rng=None,
             with_penalty: bool = True):
        """Returns (data loss, penalty, grads of the cost J = loss + penalty). The penalty's
        value is skipped (None) with with_penalty=False; its gradient is always included."""
        scores, cache = self.forward(X, train=train, rng=rng)
        loss, dscores = self.loss_fn(scores, target, weights)
        grads = self.backward(dscores, cache)
        if self.l2:
            for k in self.decay:
                grads[k] += (2 * self.l2) * self.params[k]
        return loss, self.penalty() if with_penalty else None, grads

    def scores(self, X, batch_size: int = 2000):
        """Evaluation-mode scores (n, K), computed in chunks to bound memory."""
        out = [self.forward(X[i : i + batch_size], train=False)[0]
               for i in range(0, X.shape[0], batch_size)]
        return np.concatenate(out, axis=0)

    def proba(self, X):
        return self.loss_fn.proba(self.scores(X))

    def n_params(self) -> int:
        return sum(int(v.size) for v in self.params.values())

    def methods(self) -> dict[str, str]:
        """How each layer computes where the input's size decides it (an image ConvNet's
        convolution methods), {layer: method}; empty when nothing depends on it."""
        return {}


class ModelParams(Params):
    """Keys every model shares: its loss, L2 strength lambda and weight initializer."""

    loss: component(LOSSES) = "softmax_ce"
    l2: NonNegativeFloat = 0.0
    init: component(INITS) = "he"

    def footprint(self, info) -> Footprint | None:
        """Parameters and per-example activations this model would have for data `info`
        (DataInfo), computed from the config alone so that a model too big for memory is
        refused before it is allocated; None when unknown (or the shapes do not fit, which
        the model's own constructor then reports)."""
        return None


def dense_footprint(sizes: list[int], batchnorm: bool = False) -> Footprint:
    """Fully connected layers sizes[0] -> ... -> sizes[-1]: weights, biases (BN: gamma,
    beta and two statistics per unit); the input plus four values per unit per example."""
    units = sum(sizes[1:])
    weights = sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))
    return Footprint(weights + units + (4 * units if batchnorm else 0), sizes[0] + 4 * units)


def make_loss(p: ModelParams):
    return LOSSES[p.loss.type].factory(p.loss.params)


def make_init(p: ModelParams):
    return INITS[p.init.type].factory(p.init.params)
