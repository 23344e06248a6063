"""k-layer fully connected network; `hidden: []` is the linear classifier of Assignment 1.

Layer l computes s_l = x_{l-1} W_l + b_l, then (optionally) batch norm, the activation and
dropout; the last layer gives the scores. W_l is (d_{l-1}, d_l): a batch is a row per example.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, NonNegativeInt

from ..errors import UserError
from ..nn import layers
from ..registry import MODELS
from .base import Model, ModelParams, make_init, make_loss


class MLPParams(ModelParams):
    hidden: list[NonNegativeInt] = Field(default_factory=list)
    activation: Literal["relu", "leaky_relu"] = "relu"
    leaky_slope: float = Field(0.02, ge=0, lt=1)
    dropout: float = Field(1.0, gt=0, le=1, description="keep probability on hidden layers")


class MLP(Model):
    def __init__(self, p: MLPParams, d_in: int, n_classes: int, dtype, rng):
        super().__init__(make_loss(p), p.l2)
        self.p = p
        init = make_init(p)
        sizes = [d_in, *p.hidden, n_classes]
        self.n_layers = len(sizes) - 1
        for l in range(1, self.n_layers + 1):
            # W before b, as the hand-outs do, so a seed gives their initial weights.
            self.params[f"W{l}"] = init(sizes[l - 1], (sizes[l - 1], sizes[l]), rng, dtype)
            self.params[f"b{l}"] = np.zeros(sizes[l], dtype=dtype)
            self.decay.append(f"W{l}")

    def _act_forward(self, s):
        if self.p.activation == "relu":
            return layers.relu_forward(s)
        return layers.leaky_relu_forward(s, self.p.leaky_slope)

    def _act_backward(self, d, cache):
        if self.p.activation == "relu":
            return layers.relu_backward(d, cache)
        return layers.leaky_relu_backward(d, cache)

    def forward(self, X, train, rng=None):
        caches, x = [], X
        for l in range(1, self.n_layers):
            s, c_aff = layers.affine_forward(x, self.params[f"W{l}"], self.params[f"b{l}"])
            x, c_act = self._act_forward(s)
            c_drop = None
            if train and self.p.dropout < 1:
                x, c_drop = layers.dropout_forward(x, self.p.dropout, rng)
            caches.append((c_aff, c_act, c_drop))
        L = self.n_layers
        scores, c_out = layers.affine_forward(x, self.params[f"W{L}"], self.params[f"b{L}"])
        return scores, (caches, c_out)

    def backward(self, dscores, cache):
        caches, c_out = cache
        grads = {}
        L = self.n_layers
        if L == 1:
            grads["W1"], grads["b1"] = layers.affine_backward_params(dscores, c_out)
            return grads
        dx, grads[f"W{L}"], grads[f"b{L}"] = layers.affine_backward(dscores, c_out)
        for l in range(L - 1, 0, -1):
            c_aff, c_act, c_drop = caches[l - 1]
            if c_drop is not None:
                dx = layers.dropout_backward(dx, c_drop)
            ds = self._act_backward(dx, c_act)
            if l > 1:
                dx, grads[f"W{l}"], grads[f"b{l}"] = layers.affine_backward(ds, c_aff)
            else:
                grads["W1"], grads["b1"] = layers.affine_backward_params(ds, c_aff)
        return grads


@MODELS.register("mlp", MLPParams)
def mlp(p: MLPParams, info, dtype, rng):
    """Fully connected network: hidden sizes, ReLU/LeakyReLU, dropout; [] = linear."""
    if len(info.input_shape) != 1 or "vocab" in info.meta:
        raise UserError(f"model.type: mlp needs flat input vectors, but the dataset gives "
                        f"examples of shape {info.input_shape}; use a model made for it")
    return MLP(p, int(info.input_shape[0]), info.n_classes, dtype, rng)
