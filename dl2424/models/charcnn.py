"""The character-level ConvNet over surnames (DD2424 Assignment 3, 2020; with its bonuses).

X^(l) = pool(ReLU(X^(l-1) * F_l + b_l)), l = 1..L, then s = vec(X^(L)) W + bW.
Input: a batch of names as integer character indices (n, n_len), padding = d.
Layouts (batch rows, channels last; see dl2424.nn.charconv):
- F_l is (k_l, n_{l-1}, n_l), n_0 = d; `to_handout` gives the hand-out's (n_{l-1}, k_l, n_l).
- W is (n_L * n_len_L, K), the transpose of the hand-out's K x (n_L * n_len_L) W; its rows
  follow the hand-out's vec(X^(L)) order (position-major, filter fastest).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt

from ..data.bundle import DataInfo
from ..errors import UserError
from ..limits import Footprint
from ..nn import charconv as cc
from ..nn import kinks
from ..nn.layers import dropout_backward, dropout_forward
from ..registry import MODELS, Params
from .base import Model, ModelParams, make_init, make_loss


class ConvLayerParams(Params):
    filters: PositiveInt
    width: PositiveInt
    stride: PositiveInt = 1
    padding: NonNegativeInt = 0
    dilation: PositiveInt = 1
    pool: PositiveInt = 1  # max-pool window after the ReLU; 1 = no pooling
    pool_stride: PositiveInt | None = None  # default: the window (no overlap)


class CharCNNParams(ModelParams):
    layers: list[ConvLayerParams] = Field(
        default_factory=lambda: [ConvLayerParams(filters=20, width=5),
                                 ConvLayerParams(filters=20, width=3)],
        min_length=1)
    bias: bool = False  # the hand-out's network has no bias terms
    keep: float = Field(1.0, gt=0, le=1)  # dropout keep probability on the input of W

    def footprint(self, info):
        if len(info.input_shape) != 1 or not isinstance(info.meta.get("vocab"), int):
            return None
        c_in, length = info.meta["vocab"], int(info.input_shape[0])
        params, acts = 0, length
        for q in self.layers:
            spec = cc.ConvSpec(q.stride, q.padding, q.dilation, q.pool, q.pool_stride)
            n_out = cc.conv_length(length, q.width, q.stride, q.padding, q.dilation)
            if n_out < 1 or q.pool > n_out:
                return None
            params += q.width * c_in * q.filters + q.filters * self.bias
            acts += q.width * c_in * n_out + 3 * q.filters * n_out  # im2col, conv, ReLU, pool
            c_in, length = q.filters, cc.layer_length(length, q.width, spec)
        params += (c_in * length + self.bias) * info.n_classes
        return Footprint(params, acts + 2 * c_in * length + info.n_classes)


class CharCNN(Model):
    def __init__(self, p: CharCNNParams, info: DataInfo, dtype, rng: np.random.Generator):
        super().__init__(make_loss(p), p.l2)
        if len(info.input_shape) != 1 or "vocab" not in info.meta:
            raise UserError("model charcnn needs names as index sequences (DataInfo.meta "
                            "'vocab' and input_shape (n_len,)); use the names dataset")
        self.n_len, self.d = int(info.input_shape[0]), int(info.meta["vocab"])
        self.keep = p.keep
        self.specs = [cc.ConvSpec(q.stride, q.padding, q.dilation, q.pool, q.pool_stride)
                      for q in p.layers]
        init = make_init(p)
        c_in, length = self.d, self.n_len
        for l, (q, spec) in enumerate(zip(p.layers, self.specs, strict=True), 1):
            length = _checked_length(length, q, spec, l)
            # Layer 1 sees one-hot columns: only k1 of a window's d*k1 inputs are non-zero.
            fan_in = q.width if l == 1 else q.width * c_in
            self.params[f"F{l}"] = init(fan_in, (q.width, c_in, q.filters), rng, dtype)
            if p.bias:
                self.params[f"b{l}"] = np.zeros(q.filters, dtype=dtype)
            self.decay.append(f"F{l}")
            c_in = q.filters
        self.params["W"] = init(c_in * length, (c_in * length, info.n_classes), rng, dtype)
        if p.bias:
            self.params["bW"] = np.zeros(info.n_classes, dtype=dtype)
        self.decay.append("W")

    def forward(self, X, train: bool, rng=None):
        """X (n, n_len) character indices -> scores (n, K), cache."""
        caches = []
        h = X
        for l, spec in enumerate(self.specs, 1):
            F, b = self.params[f"F{l}"], self.params.get(f"b{l}")
            geometry = (spec.stride, spec.padding, spec.dilation)
            if l == 1:
                h, conv_cache = cc.onehot_conv_forward(h, F, b, *geometry)
            else:
                h, conv_cache = cc.conv_forward(h, F, b, *geometry)
            kinks.note_sign("relu", h)
            np.maximum(h, 0, out=h)  # ReLU in place; its output is the backward mask
            relu_out = h
            pool_cache = None
            if spec.pool > 1:
                h, pool_cache = cc.maxpool_forward(h, spec.pool, spec.pool_step)
            caches.append((conv_cache, relu_out, pool_cache))
        flat = h.reshape(h.shape[0], -1)
        mask = None
        if train and self.keep < 1:
            flat, mask = dropout_forward(flat, self.keep, rng)
        scores = flat @ self.params["W"]
        if "bW" in self.params:
            scores += self.params["bW"]
        return scores, (caches, flat, mask, h.shape)

    def backward(self, dscores, cache):
        caches, flat, mask, h_shape = cache
        grads = {"W": flat.T @ dscores}
        if "bW" in self.params:
            grads["bW"] = dscores.sum(axis=0)
        dflat = dscores @ self.params["W"].T
        if mask is not None:
            dflat = dropout_backward(dflat, mask)
        dh = dflat.reshape(h_shape)
        for l in range(len(self.specs), 0, -1):
            conv_cache, relu_out, pool_cache = caches[l - 1]
            if pool_cache is not None:
                dh = cc.maxpool_backward(dh, pool_cache)
            dh *= relu_out > 0  # ReLU backward (dh is a fresh array)
            if l == 1:
                dF, db = cc.onehot_conv_backward(dh, conv_cache)
            else:
                dh, dF, db = cc.conv_backward(dh, conv_cache)
            grads[f"F{l}"] = dF
            if f"b{l}" in self.params:
                grads[f"b{l}"] = db
        return grads

    def to_handout(self, arrays: dict) -> dict:
        """Params or grads in the hand-out's layout: F_l (n_{l-1}, k_l, n_l), W (K, ...)."""
        return {k: cc.filters_to_handout(v) if k[0] == "F" else v.T if k == "W" else v
                for k, v in arrays.items()}

    def from_handout(self, arrays: dict) -> dict:
        """Inverse of to_handout (contiguous arrays in this model's layout)."""
        return {k: cc.filters_from_handout(v) if k[0] == "F"
                else np.ascontiguousarray(v.T) if k == "W" else v.copy()
                for k, v in arrays.items()}


def _checked_length(n_len, q: ConvLayerParams, spec: cc.ConvSpec, l: int) -> int:
    n_out = cc.conv_length(n_len, q.width, q.stride, q.padding, q.dilation)
    if n_out < 1:
        raise UserError(f"model.layers[{l - 1}]: width {q.width} (dilation {q.dilation}) "
                        f"does not fit an input of length {n_len} with padding {q.padding}; "
                        "use a smaller width or dilation, more padding, or fewer layers")
    if q.pool > n_out:
        raise UserError(f"model.layers[{l - 1}]: pool {q.pool} is longer than the conv "
                        f"output ({n_out} positions); use a smaller pool")
    return cc.layer_length(n_len, q.width, spec)


@MODELS.register("charcnn", CharCNNParams)
def build(p: CharCNNParams, info: DataInfo, dtype, rng: np.random.Generator) -> CharCNN:
    """Character ConvNet over names: conv layers + ReLU (+ max-pool), linear output."""
    return CharCNN(p, info, np.dtype(dtype), rng)
