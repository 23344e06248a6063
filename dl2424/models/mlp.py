"""k-layer fully connected network; `hidden: []` is the linear classifier of Assignment 1.

Layer l computes s_l = x_{l-1} W_l + b_l, then (optionally) batch norm, the activation and
dropout; the last layer gives the scores. W_l is (d_{l-1}, d_l): a batch is a row per example.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt

from ..errors import UserError
from ..nn import batchnorm, layers
from ..registry import MODELS
from .base import Model, ModelParams, dense_footprint, make_init, make_loss


class MLPParams(ModelParams):
    hidden: list[PositiveInt] = Field(default_factory=list)
    activation: Literal["relu", "leaky_relu"] = "relu"
    leaky_slope: float = Field(0.02, ge=0, lt=1)
    keep: float = Field(1.0, gt=0, le=1, description="dropout keep probability, hidden layers")
    batchnorm: bool = False
    bn_placement: Literal["before", "after"] = "before"  # relative to the activation
    bn_eps: float = Field(1e-5, gt=0)
    bn_alpha: float = Field(0.9, ge=0, lt=1, description="moving-average decay")

    def footprint(self, info):
        if len(info.input_shape) != 1:
            return None
        return dense_footprint([int(info.input_shape[0]), *self.hidden, info.n_classes],
                               self.batchnorm)


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
            if not self._bn_absorbs_bias(l):
                self.params[f"b{l}"] = np.zeros(sizes[l], dtype=dtype)
            self.decay.append(f"W{l}")
            if p.batchnorm and l < self.n_layers:  # no BN on the output layer
                self.params[f"gamma{l}"] = np.ones(sizes[l], dtype=dtype)
                self.params[f"beta{l}"] = np.zeros(sizes[l], dtype=dtype)
                self.state |= batchnorm.init_state(f"bn{l}", sizes[l], dtype)

    def _bn_absorbs_bias(self, l) -> bool:
        # BN straight after the affine map subtracts the batch mean, so b_l cancels
        # (A3: "the biases are redundant"); beta_l takes its place.
        return self.p.batchnorm and self.p.bn_placement == "before" and l < self.n_layers



    def _bn_forward(self, x, l, train):
        if not self.p.batchnorm:
            return x, None
        P = self.params
        return batchnorm.batchnorm_forward(
            x, P[f"gamma{l}"], P[f"beta{l}"], batchnorm.layer_state(self.state, f"bn{l}"),
            train, self.p.bn_eps, self.p.bn_alpha)

    def forward(self, X, train, rng=None):
        caches, x = [], X
        before = self.p.bn_placement == "before"
        for l in range(1, self.n_layers):
            x, c_aff = layers.affine_forward(x, self.params[f"W{l}"], self.params.get(f"b{l}"))
            c_bn1 = c_bn2 = c_drop = None
            if before:
                x, c_bn1 = self._bn_forward(x, l, train)
            x, c_act = layers.activation_forward(x, self.p.activation, self.p.leaky_slope)
            if not before:
                x, c_bn2 = self._bn_forward(x, l, train)
            if train and self.p.keep < 1:
                x, c_drop = layers.dropout_forward(x, self.p.keep, rng)
            caches.append((c_aff, c_bn1, c_act, c_bn2, c_drop))
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
            c_aff, c_bn1, c_act, c_bn2, c_drop = caches[l - 1]
            if c_drop is not None:
                dx = layers.dropout_backward(dx, c_drop)
            if c_bn2 is not None:
                dx, grads[f"gamma{l}"], grads[f"beta{l}"] = batchnorm.batchnorm_backward(dx, c_bn2)
            ds = layers.activation_backward(dx, c_act)
            if c_bn1 is not None:
                ds, grads[f"gamma{l}"], grads[f"beta{l}"] = batchnorm.batchnorm_backward(ds, c_bn1)
            if l > 1:
                dx, grads[f"W{l}"], db = layers.affine_backward(ds, c_aff)
            else:
                grads["W1"], db = layers.affine_backward_params(ds, c_aff)
            if f"b{l}" in self.params:
                grads[f"b{l}"] = db
        return grads


@MODELS.register("mlp", MLPParams)
def mlp(p: MLPParams, info, dtype, rng):
    """Fully connected network: hidden sizes, ReLU/LeakyReLU, batch norm, dropout; [] = linear."""
    if len(info.input_shape) != 1 or "vocab" in info.meta:
        raise UserError(f"model.type: mlp needs flat input vectors, but the dataset gives "
                        f"examples of shape {info.input_shape}; use a model made for it")
    return MLP(p, int(info.input_shape[0]), info.n_classes, dtype, rng)
