"""k-layer fully connected network; `hidden: []` is the linear classifier of Assignment 1.

Layer l computes s_l = x_{l-1} W_l + b_l, then (optionally) batch norm, the activation and
dropout; the last layer gives the scores. W_l is (d_{l-1}, d_l): a batch is a row per example.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt

from ..data.bundle import DataInfo
from ..errors import UserError
from ..nn import batchnorm
from ..nn.blocks import Block, dense_backward, dense_forward
from ..registry import MODELS
from .base import Model, ModelParams, dense_footprint, make_init, make_loss


class MLPParams(ModelParams):
    hidden: list[PositiveInt] = Field(
        default_factory=list, description="hidden layer sizes; [] is the linear classifier")
    activation: Literal["relu", "leaky_relu"] = Field("relu", description="hidden activation")
    leaky_slope: float = Field(0.02, ge=0, lt=1, description="slope of leaky_relu below 0")
    keep: float = Field(1.0, gt=0, le=1, description="dropout keep probability, hidden layers")
    batchnorm: bool = Field(False, description="batch norm in every hidden layer")
    bn_placement: Literal["before", "after"] = Field(
        "before", description="batch norm before or after the activation")
    bn_eps: float = Field(1e-5, gt=0, description="added to the variance in batch norm")
    bn_alpha: float = Field(0.9, ge=0, lt=1, description="moving-average decay")

    def footprint(self, info):
        if len(info.input_shape) != 1:
            return None
        return dense_footprint([int(info.input_shape[0]), *self.hidden, info.n_classes],
                               self.batchnorm)


class MLP(Model):
    def __init__(self, p: MLPParams, info: DataInfo, dtype, rng):
        super().__init__(make_loss(p), p.l2)
        if len(info.input_shape) != 1 or "vocab" in info.meta:
            raise UserError(f"model.type: mlp needs flat input vectors, but the dataset gives "
                            f"examples of shape {info.input_shape}; use a model made for it")
        self.p = p
        init = make_init(p)
        sizes = [int(info.input_shape[0]), *p.hidden, info.n_classes]
        self.n_layers = len(sizes) - 1
        for l in range(1, self.n_layers + 1):
            # W before b, as the hand-outs do, so a seed gives their initial weights.
            self.params[f"W{l}"] = init(sizes[l - 1], (sizes[l - 1], sizes[l]), rng, dtype)
            if not self._bn_absorbs_bias(l):
                self.params[f"b{l}"] = np.zeros(sizes[l], dtype=dtype)
            self.decay.append(f"W{l}")
            if p.batchnorm and l < self.n_layers:  # no BN on the output layer
                self.params[f"gamma{l}"] = np.ones(sizes[l], dtype=dtype)
                self.params[f"beta{l}"] = np.zeros(sizes[l], dtype=dtype)
                self.state |= batchnorm.init_state(f"bn{l}", sizes[l], dtype)
        hidden = Block(p.activation, p.leaky_slope, p.keep, p.bn_placement, p.bn_eps,
                       p.bn_alpha)
        # Dropout acts on the input of every layer but the first (the hidden outputs).
        self.blocks = [replace(hidden, keep=1.0 if l == 1 else p.keep,
                               activation=hidden.activation if l < self.n_layers else None)
                       for l in range(1, self.n_layers + 1)]

    def _bn_absorbs_bias(self, l) -> bool:
        # BN straight after the affine map subtracts the batch mean, so b_l cancels
        # (A3: "the biases are redundant"); beta_l takes its place.
        return self.p.batchnorm and self.p.bn_placement == "before" and l < self.n_layers

    def _bn(self, l):
        P = self.params
        if f"gamma{l}" not in P:
            return None
        return P[f"gamma{l}"], P[f"beta{l}"], batchnorm.layer_state(self.state, f"bn{l}")

    def forward(self, X, train, rng=None):
        caches, x = [], X
        for l, block in enumerate(self.blocks, 1):
            x, c = dense_forward(x, self.params[f"W{l}"], self.params.get(f"b{l}"), block,
                                 self._bn(l), train, rng)
            caches.append(c)
        return x, caches

    def backward(self, dscores, cache):
        grads, d = {}, dscores
        for l in range(self.n_layers, 0, -1):
            d, grads[f"W{l}"], db, dgamma, dbeta = dense_backward(d, cache[l - 1], l > 1)
            if f"b{l}" in self.params:
                grads[f"b{l}"] = db
            if dgamma is not None:
                grads[f"gamma{l}"], grads[f"beta{l}"] = dgamma, dbeta
        return grads


@MODELS.register("mlp", MLPParams)
def mlp(p: MLPParams, info: DataInfo, dtype, rng) -> MLP:
    """Fully connected network: hidden sizes, ReLU/LeakyReLU, batch norm, dropout; [] = linear."""
    return MLP(p, info, dtype, rng)
