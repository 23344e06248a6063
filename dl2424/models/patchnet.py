"""The patchify ConvNet of DD2424 Assignment 3 (2026 edition) on CIFAR-10.

    H = ReLU(X * F + bF)        nf filters f x f x 3, stride f (patchify), n_p = (32/f)^2
    h = vec(H)                  nf n_p values, patch-major (the hand-out's conv_flat)
    x1 = ReLU(W1 h + b1)        nh units
    s = W2 x1 + b2              K scores, softmax in the loss

Params (batch rows, so the W are the transposes of the hand-out's): F (f, f, 3, nf), the
hand-out's Fs (F_all = F.reshape(3 f^2, nf)); bF (nf,) with `bias: true`; W1 (nf n_p, nh),
b1; W2 (nh, K), b2. He init; the L2 penalty covers F, W1 and W2 (every weight, as the
hand-out's cost). Images arrive flat (n, 3072) in channel-plane order and are reshaped to
DataInfo.meta "image_shape" (C, H, W).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, PositiveInt

from ..data.bundle import DataInfo
from ..errors import UserError
from ..limits import Footprint
from ..nn import layers
from ..nn import patchify as pf
from ..registry import MODELS
from .base import Model, ModelParams, make_init, make_loss


class PatchNetParams(ModelParams):
    f: PositiveInt = Field(4, description="patch (filter) width and stride; must divide the "
                           "image side (the hand-out: 2, 4, 8 or 16)")
    nf: PositiveInt = Field(10, description="number of f x f x 3 filters")
    nh: PositiveInt = Field(50, description="hidden units of the fully connected layer")
    bias: bool = Field(False, description="a bias per filter (the hand-out adds it later)")

    def footprint(self, info):
        shape = info.meta.get("image_shape")
        if not isinstance(shape, list) or len(shape) != 3:
            return None
        C, H, W = (int(s) for s in shape)
        n_p, K = (H // self.f) * (W // self.f), info.n_classes
        params = (self.f * self.f * C * self.nf + self.nf * self.bias
                  + (self.nf * n_p + 1) * self.nh + (self.nh + 1) * K)
        return Footprint(params, C * H * W + 3 * self.nf * n_p + 4 * self.nh + K)


def _image_shape(info: DataInfo, f: int) -> tuple[int, int, int]:
    shape = info.meta.get("image_shape")
    if shape is None or len(shape) != 3:
        raise UserError("model.type: patchnet needs images (DataInfo.meta 'image_shape' "
                        "[C, H, W]); use an image dataset such as cifar10")
    C, H, W = (int(s) for s in shape)
    if H % f or W % f:
        raise UserError(f"model.f: {f} does not divide the {H}x{W} images into whole "
                        "patches; use a divisor of the side (2, 4, 8 or 16 for CIFAR-10)")
    return C, H, W


class PatchNet(Model):
    def __init__(self, p: PatchNetParams, info: DataInfo, dtype, rng: np.random.Generator):
        super().__init__(make_loss(p), p.l2)
        self.image_shape = _image_shape(info, p.f)
        C, H, W = self.image_shape
        self.n_p = (H // p.f) * (W // p.f)
        init = make_init(p)
        d_patch, d_flat = C * p.f * p.f, p.nf * self.n_p
        self.params["F"] = init(d_patch, (p.f, p.f, C, p.nf), rng, dtype)
        if p.bias:
            self.params["bF"] = np.zeros(p.nf, dtype=dtype)
        self.params["W1"] = init(d_flat, (d_flat, p.nh), rng, dtype)
        self.params["b1"] = np.zeros(p.nh, dtype=dtype)
        self.params["W2"] = init(p.nh, (p.nh, info.n_classes), rng, dtype)
        self.params["b2"] = np.zeros(info.n_classes, dtype=dtype)
        self.decay = ["F", "W1", "W2"]

    def forward(self, X, train: bool, rng=None):
        """X (n, C*H*W) flat images -> scores (n, K), cache."""
        P = self.params
        x = X.reshape(X.shape[0], *self.image_shape)
        h, c_conv = pf.patchify_forward(x, P["F"], P.get("bF"))
        h, c_relu = layers.relu_forward(h)
        x1, c_fc1 = layers.affine_forward(h.reshape(h.shape[0], -1), P["W1"], P["b1"])
        x1, c_relu1 = layers.relu_forward(x1)
        s, c_fc2 = layers.affine_forward(x1, P["W2"], P["b2"])
        return s, (c_conv, c_relu, c_fc1, c_relu1, c_fc2)

    def backward(self, dscores, cache):
        c_conv, c_relu, c_fc1, c_relu1, c_fc2 = cache
        grads = {}
        d, grads["W2"], grads["b2"] = layers.affine_backward(dscores, c_fc2)
        d = layers.relu_backward(d, c_relu1)
        d, grads["W1"], grads["b1"] = layers.affine_backward(d, c_fc1)
        d = layers.relu_backward(d.reshape(c_relu.shape), c_relu)
        _, grads["F"], db = pf.patchify_backward(d, c_conv, input_grad=False)
        if db is not None:
            grads["bF"] = db
        return grads


@MODELS.register("patchnet", PatchNetParams)
def patchnet(p: PatchNetParams, info: DataInfo, dtype, rng):
    """Patchify ConvNet (A3 2026): f x f stride-f conv + ReLU, fc nh + ReLU, fc K."""
    return PatchNet(p, info, dtype, rng)
