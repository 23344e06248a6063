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
from ..nn import charconv_ref as ref
from ..nn.blocks import Block, dense_backward, dense_forward
from ..nn.layers import relu_backward, relu_forward
from ..registry import MODELS, Params
from .base import Model, ModelParams, make_init, make_loss


class ConvLayerParams(Params):
    filters: PositiveInt = Field(description="output channels n_l")
    width: PositiveInt = Field(description="kernel width k_l (positions)")
    stride: PositiveInt = Field(1, description="step between kernel positions")
    padding: NonNegativeInt = Field(0, description="zero positions added at each end")
    dilation: PositiveInt = Field(1, description="spacing of the kernel's taps")
    pool: PositiveInt = Field(1, description="max-pool window after the ReLU; 1 = none")
    pool_stride: PositiveInt | None = Field(
        None, description="step of the max-pool; default: the window (no overlap)")


class CharCNNParams(ModelParams):
    layers: list[ConvLayerParams] = Field(
        default_factory=lambda: [ConvLayerParams(filters=20, width=5),
                                 ConvLayerParams(filters=20, width=3)],
        min_length=1, description="the convolutional layers, input first")
    bias: bool = Field(False, description="bias terms (the hand-out's network has none)")
    keep: float = Field(1.0, gt=0, le=1, description="dropout keep probability, input of W")

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
        self.head = Block(keep=p.keep)  # dropout, then the linear output layer

    def forward(self, X, train: bool, rng=None):
        """X (n, n_len) character indices -> scores (n, K), cache."""
        caches = []
        h = X
        for l, spec in enumerate(self.specs, 1):
            F, b = self.params[f"F{l}"], self.params.get(f"b{l}")
            geometry = (spec.stride, spec.pad, spec.dilation)
            if l == 1:
                h, conv_cache = cc.onehot_conv_forward(h, F, b, *geometry)
            else:
                h, conv_cache = cc.conv_forward(h, F, b, *geometry)
            h, relu_cache = relu_forward(h)
            pool_cache = None
            if spec.pool > 1:
                h, pool_cache = cc.maxpool_forward(h, spec.pool, spec.pool_step)
            caches.append((conv_cache, relu_cache, pool_cache))
        scores, c_head = dense_forward(h.reshape(h.shape[0], -1), self.params["W"],
                                       self.params.get("bW"), self.head, train=train, rng=rng)
        return scores, (caches, c_head, h.shape)

    def backward(self, dscores, cache):
        caches, c_head, h_shape = cache
        grads = {}
        dflat, grads["W"], db, _, _ = dense_backward(dscores, c_head)
        if "bW" in self.params:
            grads["bW"] = db
        dh = dflat.reshape(h_shape)
        for l in range(len(self.specs), 0, -1):
            conv_cache, relu_cache, pool_cache = caches[l - 1]
            if pool_cache is not None:
                dh = cc.maxpool_backward(dh, pool_cache)
            dh = relu_backward(dh, relu_cache)
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
        return {k: ref.filters_to_handout(v) if k[0] == "F" else v.T if k == "W" else v
                for k, v in arrays.items()}

    def from_handout(self, arrays: dict) -> dict:
        """Inverse of to_handout (contiguous arrays in this model's layout)."""
        return {k: ref.filters_from_handout(v) if k[0] == "F"
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
def charcnn(p: CharCNNParams, info: DataInfo, dtype, rng: np.random.Generator) -> CharCNN:
    """Character ConvNet over names: conv layers + ReLU (+ max-pool), linear output."""
    return CharCNN(p, info, np.dtype(dtype), rng)
