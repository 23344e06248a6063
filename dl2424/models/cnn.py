"""VGG-style image ConvNet (UvA DL assignment 1, exercise 4; small versions for CIFAR-10).

`layers` lists the feature extractor: an int c is a 3x3 convolution (stride 1, padding 1)
with c output channels, then optional batch norm, then ReLU or LeakyReLU; "M" is a max-pool
(`pool`: kernel, stride, padding). Then flatten, the fully connected layers `hidden` (each
with the activation) and a linear layer to the K scores; dropout (keep probability `keep`)
acts on the input of every fully connected layer during training.

The UvA network is layers [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
batchnorm true, pool 3x3 stride 2 padding 1, hidden [] (32 -> 16 -> 8 -> 4 -> 2 -> 1).

Params: conv l has filters F<l> (c_out, c_in, 3, 3) and bias b<l> (c_out,) (no bias with batch
norm: BN's beta takes its place), BN scale and shift gamma<l>, beta<l>; fc layer j has W<j>
(d_in, d_out) and bW<j>. BN moving averages are in `state` as bn<l>.mean/.var/.count.
Images arrive flat, (n, C*H*W) in channel-plane order, and are reshaped to DataInfo.meta
"image_shape" (C, H, W).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from ..data.bundle import DataInfo
from ..errors import UserError
from ..limits import Footprint
from ..nn import batchnorm as bn
from ..nn import conv2d as cv
from ..nn import layers
from ..registry import MODELS, Params
from .base import Model, ModelParams, dense_footprint, make_init, make_loss

KERNEL, PAD = 3, 1  # every conv is 3x3, stride 1, padding 1: it keeps H and W


class PoolParams(Params):
    kernel: PositiveInt = 3
    stride: PositiveInt = 2
    padding: NonNegativeInt = 1

    @model_validator(mode="after")
    def _padding_fits(self):
        if self.padding > self.kernel // 2:
            raise ValueError(f"padding {self.padding} must be at most kernel // 2 "
                             f"= {self.kernel // 2}")
        return self


class CNNParams(ModelParams):
    layers: list[PositiveInt | Literal["M"]] = Field(
        default_factory=lambda: [16, "M", 32, "M", 64, "M"], min_length=1)
    pool: PoolParams = Field(default_factory=PoolParams)
    batchnorm: bool = False
    bn_alpha: float = Field(0.9, ge=0, lt=1)  # moving-average decay of the BN statistics
    bn_eps: PositiveFloat = 1e-5
    activation: Literal["relu", "leaky_relu"] = "relu"
    leaky_slope: float = Field(0.02, ge=0, lt=1)
    hidden: list[PositiveInt] = Field(default_factory=list)
    keep: float = Field(1.0, gt=0, le=1)  # dropout keep probability on fc-layer inputs

    def footprint(self, info):
        shape = info.meta.get("image_shape")
        if not isinstance(shape, list) or len(shape) != 3:
            return None
        c, h, w = (int(s) for s in shape)
        k, s, pad = self.pool.kernel, self.pool.stride, self.pool.padding
        params, acts = 0, c * h * w
        for item in self.layers:
            if item == "M":
                h, w = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
                if min(h, w) < 1:
                    return None
                acts += 2 * c * h * w  # pooled map and its argmax
                continue
            params += item * c * KERNEL * KERNEL + 4 * item
            acts += c * KERNEL * KERNEL * h * w + 4 * item * h * w  # im2col, conv/BN/act
            c = item
        fc = dense_footprint([c * h * w, *self.hidden, info.n_classes])
        return Footprint(params + fc.params, acts + fc.activations)


def _image_shape(info: DataInfo) -> tuple[int, int, int]:
    shape = info.meta.get("image_shape")
    if shape is None or len(shape) != 3:
        raise UserError("model.type: cnn needs images (DataInfo.meta 'image_shape' [C, H, W]); "
                        "use an image dataset such as cifar10")
    if len(info.input_shape) != 1 or info.input_shape[0] != int(np.prod(shape)):
        raise UserError(f"model.type: cnn: the dataset gives examples of shape "
                        f"{info.input_shape}, which is not a flat image {shape}")
    return tuple(int(s) for s in shape)


class CNN(Model):
    def __init__(self, p: CNNParams, info: DataInfo, dtype, rng: np.random.Generator):
        super().__init__(make_loss(p), p.l2)
        self.p = p
        self.image_shape = _image_shape(info)
        self.pool = (p.pool.kernel, p.pool.stride, p.pool.padding)
        init = make_init(p)
        self.blocks: list[tuple[str, int]] = []  # ("conv", l) or ("pool", i)
        c, h, w = self.image_shape
        widest = 1  # largest im2col matrix per example, to size evaluation chunks
        for item in p.layers:
            if item == "M":
                self.blocks.append(("pool", sum(k == "pool" for k, _ in self.blocks) + 1))
                h, w = self._pooled(h, w)
                continue
            l = sum(k == "conv" for k, _ in self.blocks) + 1
            self.blocks.append(("conv", l))
            widest = max(widest, c * KERNEL * KERNEL * h * w)
            self.params[f"F{l}"] = init(c * KERNEL * KERNEL, (item, c, KERNEL, KERNEL), rng,
                                        dtype)
            self.decay.append(f"F{l}")
            if p.batchnorm:
                self.params[f"gamma{l}"] = np.ones(item, dtype=dtype)
                self.params[f"beta{l}"] = np.zeros(item, dtype=dtype)
                self.state.update(bn.init_state(f"bn{l}", item, dtype))
            else:
                self.params[f"b{l}"] = np.zeros(item, dtype=dtype)
            c = item
        self.flat_dim = c * h * w
        sizes = [self.flat_dim, *p.hidden, info.n_classes]
        self.n_fc = len(sizes) - 1
        for j in range(1, self.n_fc + 1):
            self.params[f"W{j}"] = init(sizes[j - 1], (sizes[j - 1], sizes[j]), rng, dtype)
            self.params[f"bW{j}"] = np.zeros(sizes[j], dtype=dtype)
            self.decay.append(f"W{j}")
        # Evaluation chunks whose im2col matrices stay below 2^24 entries (64 MB in float32).
        self.eval_batch = int(np.clip(2**24 // widest, 1, 2000))
        # Work buffers of each layer (padded input, im2col matrix, ...), reused by the next
        # update of the same batch size: a forward's cache is valid until the next forward.
        self.work: dict[str, dict[str, np.ndarray]] = {}

    def _pooled(self, h, w):
        k, s, pad = self.pool
        if min(h, w) + 2 * pad < k:
            n_pools = sum(kind == "pool" for kind, _ in self.blocks)
            raise UserError(f"model.layers: max-pool {n_pools} gets a {h}x{w} map, smaller "
                            f"than its {k}x{k} window; use fewer 'M' entries or a smaller "
                            "model.pool.kernel")
        return (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1

    # ------------------------------------------------------------------ conv block
    def _conv_forward(self, x, l, train):
        """conv -> [batch norm] -> activation for conv layer l; x and h are NHWC."""
        P, work = self.params, self.work.setdefault(f"conv{l}", {})
        W = P[f"F{l}"]
        n, Ho, Wo, F = cv.conv_out_shape(x.shape, W.shape, 1, PAD)
        xp = cv.work_buffer(work, "xp", (n, x.shape[1] + 2 * PAD, x.shape[2] + 2 * PAD, x.shape[3]),
                        x.dtype)
        cols = cv.work_buffer(work, "cols", (n, Ho, Wo, KERNEL, KERNEL, x.shape[3]), x.dtype,
                          zero=False)
        h, c_conv = cv.conv2d_nhwc_forward(x, W, P.get(f"b{l}"), 1, PAD, xp, cols)
        c_bn = None
        if self.p.batchnorm:  # per-channel statistics: the rows of the (n H W, F) matrix
            h, c_bn = bn.batchnorm_forward(h.reshape(-1, F), P[f"gamma{l}"], P[f"beta{l}"],
                                           bn.layer_state(self.state, f"bn{l}"), train,
                                           self.p.bn_eps, self.p.bn_alpha)
            h = h.reshape(n, Ho, Wo, F)
        h, c_act = layers.activation_forward(h, self.p.activation, self.p.leaky_slope)
        return h, (c_conv, c_bn, c_act)

    def _conv_backward(self, dout, cache, l, grads):
        c_conv, c_bn, c_act = cache
        d = layers.activation_backward(dout, c_act)
        if c_bn is not None:
            d2, grads[f"gamma{l}"], grads[f"beta{l}"] = bn.batchnorm_backward(
                d.reshape(-1, d.shape[-1]), c_bn)
            d = d2.reshape(d.shape)
        # The first layer's input is the data: skip its gradient.
        dx, grads[f"F{l}"], db = cv.conv2d_nhwc_backward(d, c_conv, input_grad=l > 1,
                                                         scratch=self.work[f"conv{l}"])
        if db is not None:
            grads[f"b{l}"] = db
        return dx

    # ------------------------------------------------------------------ whole network
    def forward(self, X, train: bool, rng=None):
        """X (n, C*H*W) flat images -> scores (n, K), cache. The feature maps are NHWC."""
        h = X.reshape(X.shape[0], *self.image_shape).transpose(0, 2, 3, 1)
        caches = []
        for kind, l in self.blocks:
            if kind == "pool":
                h, c = cv.maxpool_nhwc_forward(h, *self.pool)
            else:
                h, c = self._conv_forward(h, l, train)
            caches.append(c)
        # the fc layers read the features in C, H, W order (as a flat NCHW map)
        h, c_flat = cv.flatten_forward(np.ascontiguousarray(h.transpose(0, 3, 1, 2)))
        fc_caches = []
        for j in range(1, self.n_fc + 1):
            c_drop = c_act = None
            if train and self.p.keep < 1:
                h, c_drop = layers.dropout_forward(h, self.p.keep, rng)
            h, c_aff = layers.affine_forward(h, self.params[f"W{j}"], self.params[f"bW{j}"])
            if j < self.n_fc:
                h, c_act = layers.activation_forward(h, self.p.activation, self.p.leaky_slope)
            fc_caches.append((c_drop, c_aff, c_act))
        return h, (caches, c_flat, fc_caches)

    def backward(self, dscores, cache):
        caches, c_flat, fc_caches = cache
        grads = {}
        d = dscores
        for j in range(self.n_fc, 0, -1):
            c_drop, c_aff, c_act = fc_caches[j - 1]
            if c_act is not None:
                d = layers.activation_backward(d, c_act)
            d, grads[f"W{j}"], grads[f"bW{j}"] = layers.affine_backward(d, c_aff)
            if c_drop is not None:
                d = layers.dropout_backward(d, c_drop)
        d = np.ascontiguousarray(cv.flatten_backward(d, c_flat).transpose(0, 2, 3, 1))
        for (kind, l), c in zip(reversed(self.blocks), reversed(caches), strict=True):
            if kind == "pool":
                d = cv.maxpool_nhwc_backward(d, c)
            else:
                d = self._conv_backward(d, c, l, grads)
        return grads

    def scores(self, X, batch_size: int | None = None):
        return super().scores(X, batch_size or self.eval_batch)


@MODELS.register("cnn", CNNParams)
def cnn(p: CNNParams, info: DataInfo, dtype, rng):
    """VGG-style image ConvNet: 3x3 convs [+ BN] + ReLU, max-pools ("M"), fc head."""
    return CNN(p, info, dtype, rng)
