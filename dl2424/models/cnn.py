"""VGG-style image ConvNet (UvA DL assignment 1, exercise 4; small versions for CIFAR-10).

`layers` lists the feature extractor: an int c is a 3x3 convolution (stride 1, padding 1)
with c output channels, then optional batch norm, then ReLU or LeakyReLU; "M" is a max-pool
(`pool`: kernel, stride, padding). Then flatten, the fully connected layers `hidden` (each
with the activation) and a linear layer to the K scores; dropout (keep probability `keep`)
acts on the input of every fully connected layer during training.

The UvA network is layers [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
batchnorm true, pool 3x3 stride 2 padding 1, hidden [] (32 -> 16 -> 8 -> 4 -> 2 -> 1).

Each conv is one of three computations of the same function: the first layer through
im2col from the images' channel planes; layers with at least 128 channels and filters on
maps of 4x4 or more (UvA's conv 3-6) by Winograd's F(2x2, 3x3) (`winograd.pays`); the
others through im2col of the NHWC map. An im2col conv (the first layer's included) followed
by a stride-2 max-pool writes its output with each image row's even pixels first
(`conv2d.parity_order`), so that the pool's pairs along W are two contiguous halves.

Params: conv l has filters F<l> (c_out, c_in, 3, 3) (held with c_in innermost in memory, so
that the products need no layout copies) and bias b<l> (c_out,) (no bias with batch
norm: BN's beta takes its place), BN scale and shift gamma<l>, beta<l>; fc layer j has W<j>
(d_in, d_out) and bW<j>. BN moving averages are in `state` as bn<l>.mean/.var/.count.
Images arrive flat, (n, C*H*W) in channel-plane order, and are reshaped to DataInfo.meta
"image_shape" (C, H, W).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from ..data.bundle import DataInfo
from ..errors import UserError
from ..limits import Footprint
from ..nn import batchnorm as bn
from ..nn import conv2d as cv
from ..nn import kinks, layers, parallel, winograd
from ..nn.blocks import Block, dense_backward, dense_forward
from ..registry import MODELS, Params
from .base import Model, ModelParams, dense_footprint, make_init, make_loss

KERNEL, PAD = 3, 1  # every conv is 3x3, stride 1, padding 1: it keeps H and W
WHOLE_BATCH_DW = 2**18  # filter banks of at least this many weights: dW in one product
SHARED = "shared"  # self.work's dict of the buffers that all layers use in turn


class PoolParams(Params):
    kernel: PositiveInt = Field(3, description="max-pool window (kernel x kernel)")
    stride: PositiveInt = Field(2, description="step between windows")
    padding: NonNegativeInt = Field(1, description="zero padding on each side (-inf for max)")

    @model_validator(mode="after")
    def _padding_fits(self):
        if self.padding > self.kernel // 2:
            raise ValueError(f"padding {self.padding} must be at most kernel // 2 "
                             f"= {self.kernel // 2}")
        return self


class CNNParams(ModelParams):
    layers: list[PositiveInt | Literal["M"]] = Field(
        default_factory=lambda: [16, "M", 32, "M", 64, "M"], min_length=1,
        description="feature extractor: c = 3x3 conv with c channels, M = max-pool")
    pool: PoolParams = Field(default_factory=PoolParams, description="every M's pooling")
    batchnorm: bool = Field(False, description="batch norm after every conv")
    bn_alpha: float = Field(0.9, ge=0, lt=1, description="moving-average decay")
    bn_eps: PositiveFloat = Field(1e-5, description="added to the variance in batch norm")
    activation: Literal["relu", "leaky_relu"] = Field("relu", description="after convs and fc")
    leaky_slope: float = Field(0.02, ge=0, lt=1, description="slope of leaky_relu below 0")
    hidden: list[PositiveInt] = Field(default_factory=list, description="fc layer sizes")
    keep: float = Field(1.0, gt=0, le=1, description="dropout keep probability, fc inputs")

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


def _rows_view(W):
    """cv.filter_rows(W) as a view of W's memory, or None when W does not keep C innermost."""
    rows = W.transpose(0, 2, 3, 1)
    return rows.reshape(W.shape[0], -1) if rows.flags.c_contiguous else None


def _by_filters(fn, F):
    """fn(f) for the two halves f of range(F) (slices), on the threads (filter layouts)."""
    parallel.map_parts(fn, parallel.parts(F))


class CNN(Model):
    def __init__(self, p: CNNParams, info: DataInfo, dtype, rng: np.random.Generator):
        super().__init__(make_loss(p), p.l2)
        self.p = p
        self.image_shape = _image_shape(info)
        self.pool = (p.pool.kernel, p.pool.stride, p.pool.padding)
        init = make_init(p)
        self.blocks: list[tuple[str, int]] = []  # ("conv", l) or ("pool", i)
        self.conv_method: dict[int, str] = {}  # conv l: "planes", "im2col" or "winograd"
        self.parity: dict[int, bool] = {}  # conv l's output in cv.parity_order, for its pool
        c, h, w = self.image_shape
        widest = 1  # largest im2col matrix per example, to size evaluation chunks
        for at, item in enumerate(p.layers):
            if item == "M":
                self.blocks.append(("pool", sum(k == "pool" for k, _ in self.blocks) + 1))
                h, w = self._pooled(h, w)
                continue
            l = sum(k == "conv" for k, _ in self.blocks) + 1
            self.blocks.append(("conv", l))
            widest = max(widest, c * KERNEL * KERNEL * h * w)
            # C innermost in memory (cv.channels_last_filters): no layout copies per update
            self.params[f"F{l}"] = cv.channels_last_filters(
                init(c * KERNEL * KERNEL, (item, c, KERNEL, KERNEL), rng, dtype))
            # the first block reads the images' channel planes; see the module docstring
            self.conv_method[l] = ("planes" if len(self.blocks) == 1 else "winograd"
                                   if winograd.pays((1, h, w, c), self.params[f"F{l}"].shape)
                                   else "im2col")
            self.parity[l] = (self.conv_method[l] != "winograd" and w % 2 == 0
                              and p.layers[at + 1:at + 2] == ["M"]
                              and cv.fast_pool((1, h, w, item), *self.pool))
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
        # Evaluation chunks whose im2col matrices stay below 2^22 entries (16 MB in float32):
        # the layers' work buffers (self.work) are sized by the larger of a training batch and
        # a chunk, so larger chunks would only hold more memory, not run faster.
        self.eval_batch = int(np.clip(2**22 // widest, 1, 2000))
        fc = Block(p.activation, p.leaky_slope, keep=p.keep)  # dropout on each fc input
        self.fc_blocks = [fc if j < self.n_fc else replace(fc, activation=None)
                          for j in range(1, self.n_fc + 1)]
        # Work buffers, reused by the next update: each layer's own (its output, im2col
        # matrix, ...: what its backward pass reads; a forward's cache is valid until the
        # next forward), the parts' blocks, and the SHARED ones (padded maps, the dx of the
        # backward pass, ...) that serve each layer in turn.
        self.work: dict[str, dict[str, np.ndarray]] = {}
        # Inside scores(): {conv l: (filters, bias or shift, Winograd's U or None)}, with BN
        # folded in; else None
        self._scoring: dict[int, tuple] | None = None

    def methods(self) -> dict[str, str]:
        return {f"conv{l}": m + ("/parity" if self.parity[l] else "")
                for l, m in self.conv_method.items()}

    def _pooled(self, h, w):
        k, s, pad = self.pool
        if min(h, w) + 2 * pad < k:
            n_pools = sum(kind == "pool" for kind, _ in self.blocks)
            raise UserError(f"model.layers: max-pool {n_pools} gets a {h}x{w} map, smaller "
                            f"than its {k}x{k} window; use fewer 'M' entries or a smaller "
                            "model.pool.kernel")
        return (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1

    # ------------------------------------------------------------------ conv block
    # Feature maps are NHWC. Each block runs on the fixed parts of the batch
    # (dl2424.nn.parallel, one thread each when there are two), every part writing its own
    # slice of the layer's work buffers, which the next update of the same size reuses.
    def _buffer(self, layer, name, shape, dtype):
        return cv.block(self.work.setdefault(layer, {}), shape, dtype, name)

    def _winograd_filters(self, key, W):
        """Winograd's transformed filters U of W, in layer `key`'s buffer, made by halves
        of the filters on the threads."""
        U = self._buffer(key, "U", (W.shape[0], 16, W.shape[1]), W.dtype)
        _by_filters(lambda f: winograd.filter_transform(W[f], U[f]), W.shape[0])
        return U

    def _blocks(self, i):
        """Part i's im2col block buffer, shared by all layers (cv.block)."""
        return self.work.setdefault(f"part{i}", {})

    def _conv_forward(self, x, l, train, defer=False):
        """conv -> [batch norm] -> activation for conv layer l, computed as conv_method[l]
        says: x is the input images as NCHW channel planes (conv2d_planes_forward) for
        "planes", else an NHWC map. defer: a max-pool follows and the activation is ReLU:
        the bias or BN's shift and the ReLU (and BN's scale when every scale is positive)
        are left to the pool, which commutes with them
        (over a window, max(a s + b, 0) = max(max(a) s + b, 0) for s > 0) and applies them
        to its 4x smaller output.
        Returns (h, cache, deferred): the (scale or None, shift) the pool applies, or None."""
        P, p, key, method = self.params, self.p, f"conv{l}", self.conv_method[l]
        W, b, U = P[f"F{l}"], P.get(f"b{l}"), None
        batchnorm, deferred = p.batchnorm, None
        if not train and self._scoring is not None:  # BN is in W and b; U made once
            (W, b, U), batchnorm = self._scoring[l], False
        if defer and not batchnorm:  # the pool adds the bias (a per-channel shift too)
            deferred, b = (None, b), None
        planes = method == "planes"
        n, H, Wd, C = (x.shape[0], *x.shape[2:], x.shape[1]) if planes else x.shape
        n, Ho, Wo, F = cv.conv_out_shape((n, H, Wd, C), W.shape, 1, PAD)
        z = self._buffer(key, "z", (n, Ho, Wo, F), x.dtype)
        z2, cuts = z.reshape(-1, F), parallel.parts(n)
        rows = [slice(c.start * Ho * Wo, c.stop * Ho * Wo) for c in cuts]
        if planes:  # each part has its own columns: n is not their outer axis
            xp = self._buffer(SHARED, "padded", (n, C, H + 2 * PAD, Wd + 2 * PAD), x.dtype)
            cols = [self._buffer(key, f"cols{i}", (C, KERNEL, KERNEL, c.stop - c.start, Ho, Wo),
                                 x.dtype) for i, c in enumerate(cuts)]
            W_mat = None
        else:
            xp = self._buffer(SHARED, "padded", (n, H + 2 * PAD, Wd + 2 * PAD, C), x.dtype)
        if method == "im2col":
            cols = self._buffer(key, "cols", (n, Ho, Wo, KERNEL, KERNEL, C), x.dtype)
            W_mat = cv.filter_rows(W)  # a view, or a copy for filters assigned from outside
        elif method == "winograd":  # cols: the transformed input tiles V, kept for dW
            cols = self._buffer(key, "V", winograd.tile_shape(x.shape, C), x.dtype)
            W_mat = self._winograd_filters(key, W) if U is None else U
        relu = p.activation == "relu"
        fused_relu = relu and not batchnorm and not defer  # else BN, the pool or the layer

        def conv(i):
            """Part i's convolution; the ReLU, or the BN statistics, on each block of its
            output rows while the block is in cache. Returns the statistics."""
            c, stats = cuts[i], []
            if fused_relu:
                def then(block):
                    np.maximum(block, 0, out=block)
            elif batchnorm and train:
                def then(block):
                    stats.append(bn.block_stats(block))
            else:
                then = None
            if method == "planes":
                cv.conv2d_planes_forward(x[c], W, b, 1, PAD, xp[c], cols[i], z[c], then,
                                         self.parity[l])
            elif method == "im2col":
                cv.conv2d_nhwc_forward(x[c], W, b, 1, PAD, xp[c], cols[c], z[c], W_mat, then,
                                       self.parity[l])
            else:
                winograd.winograd_forward(x[c], W, b, W_mat, xp[c], cols[:, :, c],
                                          out=z[c], work=self._blocks(i))
                part = z[c].reshape(-1, F)
                for r in cv.row_blocks(part.shape) if then is not None else []:
                    then(part[r])
            return stats

        stats = parallel.map_parts(conv, range(len(cuts)))
        h, c_bn, c_act = z, None, None
        if batchnorm:
            def y():  # made only when the output is not z itself (see rows_forward)
                return self._buffer(key, "y", z2.shape, x.dtype)

            h, deferred, c_bn = bn.rows_forward(z2, P[f"gamma{l}"], P[f"beta{l}"],
                                                bn.layer_state(self.state, f"bn{l}"), train,
                                                p.bn_eps, p.bn_alpha, relu, y,
                                                rows, parallel.map_parts,
                                                stats if train else None, defer)
            h = h.reshape(z.shape)
        elif fused_relu:
            kinks.note_sign("relu", z)  # z > 0 exactly where the ReLU's input is
        if not relu:
            h, c_act = layers.activation_forward(h, p.activation, p.leaky_slope)
        return h, (x.shape, cuts, rows, cols, W_mat, c_bn, c_act,
                   z if fused_relu else None, method), deferred

    def _conv_backward(self, dout, cache, l, grads, dx_name, relu_done=False, pooled=None):
        """Gradients of _conv_forward; dout (an array the model owns) is overwritten, dx
        written to the shared buffer dx_name (see backward).
        relu_done: the pool after this layer already zeroed dout where the ReLU cut.
        pooled: what the pool after this layer's BN gives for its sums (_pool_backward)."""
        x_shape, cuts, rows, cols, W_mat, c_bn, c_act, relu_out, method = cache
        W = self.params[f"F{l}"]
        n, Ho, Wo, F = dout.shape
        if c_act is not None:
            dout = layers.activation_backward(dout, c_act)
        d2 = dout.reshape(-1, F)
        input_grad = l > 1  # the first layer's input is the data: no gradient
        assert not (method == "planes" and input_grad)
        dx = self._buffer(SHARED, dx_name, x_shape, dout.dtype) if input_grad else None
        dpad = W_flip = dM = None
        if method == "winograd":  # the tiles' gradient, for dx per part and dW over all
            dM = self._buffer("winograd", "dM", winograd.tile_shape(x_shape, F), dout.dtype)
        elif input_grad:  # dx is the convolution of dout, padded, with W_flip
            dpad = self._buffer(SHARED, "padded", (n, Ho + 2, Wo + 2, F), dout.dtype)
            flip = self._buffer(SHARED, "W_flip", (KERNEL * KERNEL, F, x_shape[3]), W.dtype)
            _by_filters(lambda f: cv.flipped_filter_matrix(W[f], W_mat[f], flip[:, f]), F)
            W_flip = flip.reshape(-1, x_shape[3])

        # Large filter banks (UvA's deep layers, and every Winograd layer) take dW over the
        # whole batch, each half of the filters on its thread: partial dWs per part would
        # each be the size of W, to write and add. Small ones take each part's dW while its
        # rows are fresh.
        whole = method == "winograd" or (method == "im2col" and W.size >= WHOLE_BATCH_DW)

        def back(i, g):
            """Part i's dx slice and db from its dz rows g, and its partial dW (as filter
            rows, or their transpose for planes) unless dW is taken over the whole batch."""
            c, g4 = cuts[i], g.reshape(-1, Ho, Wo, F)
            dW = (None if whole else cv.planes_filter_grad(g, cols[i]) if method == "planes"
                  else cv.filter_rows_grad(g, cols[c]))
            if method == "winograd":
                winograd.output_gradient(g4, dM[:, :, c], self._blocks(i))
                if input_grad:
                    winograd.input_gradient(dM[:, :, c], W_mat, dx[c].shape, dx[c],
                                            self._blocks(i))
            elif input_grad:
                cv.conv2d_nhwc_input_grad(g4, W, dx[c].shape, 1, PAD, dx[c], dpad[c],
                                          self._blocks(i), W_flip, self.parity[l])
            return dW, bn.channel_sums(g) if c_bn is None else None

        def relu_back(i):
            g = d2[rows[i]]
            if relu_out is not None and not relu_done:
                np.multiply(g, relu_out.reshape(-1, F)[rows[i]] > 0, out=g)
            return back(i, g)

        if c_bn is not None:
            grads[f"gamma{l}"], grads[f"beta{l}"], parts = bn.rows_backward(
                d2, c_bn, rows, parallel.map_parts, back, relu_done, pooled)
        else:
            parts = parallel.map_parts(relu_back, range(len(cuts)))
            grads[f"b{l}"] = parallel.total([db for _, db in parts])
        dW = grads[f"F{l}"] = np.empty_like(W)  # laid out as W is
        if method == "planes":
            dW[...] = parallel.total([p for p, _ in parts]).T.reshape(W.shape)
        elif method == "winograd":  # each half of the filters on its thread
            halves = parallel.parts(F)
            parallel.map_parts(lambda i: winograd.filter_gradient_from_tiles(
                dM[..., halves[i]], cols, dW[halves[i]], self._blocks(i)), range(len(halves)))
        elif not whole:
            _by_filters(lambda f: cv.filter_gradient([p[f] for p, _ in parts], W[f].shape,
                                                     dW[f]), F)
        else:
            self._whole_batch_filter_grad(d2, cols, dW)
        return dx

    def _whole_batch_filter_grad(self, d2, cols, dW):
        """dW from every row of dz (d2) and of the im2col matrix, each half of the filters on
        its thread; the product lands in dW's own memory when dW holds C innermost."""
        F = dW.shape[0]
        dW_rows, cols2 = _rows_view(dW), cols.reshape(d2.shape[0], -1)

        def filter_grad(f):
            if dW_rows is not None:
                cv.filter_rows_grad(d2[:, f], cols2, out=dW_rows[f])
            else:
                cv.filter_gradient(cv.filter_rows_grad(d2[:, f], cols2), dW[f].shape, dW[f])

        _by_filters(filter_grad, F)

    # ------------------------------------------------------------------ pooling block
    def _pool_forward(self, x, i, relu=False, deferred=None, parity=False):
        """Max-pool i; then the per-channel (scale or None, shift) and the ReLU when the
        conv before deferred them (relu: its activation, a ReLU, is applied here). parity:
        x is in cv.parity_order (the output is not). Inside scores() no backward pass
        follows, and the pool skips the winner masks where it can."""
        k, s, pad = self.pool
        n, H, W, C = x.shape
        Ho, Wo = self._pooled(H, W)
        cuts, key = parallel.parts(n), f"pool{i}"
        out = self._buffer(key, "out", (n, Ho, Wo, C), x.dtype)
        fast, backward = cv.fast_pool(x.shape, k, s, pad), self._scoring is None
        rows = self._buffer(SHARED, "rows", (n, 2 * Ho, Wo, C), x.dtype) if fast else None
        # the winner masks for the backward pass, in buffers kept like the maps (none in
        # scores(); maxpool_nhwc_forward makes its own)
        masks = [self._buffer(key, f"won{j}", shape, bool)
                 for j, shape in enumerate(cv.pool2_mask_shapes(x.shape, k == 3))
                 ] if fast and backward else []
        # Pooling z itself for a BN (deferred scale): the pooled z is kept for the BN's
        # backward sums, taken over the windows (bn.rows_backward's `pooled`)
        keep = backward and deferred is not None and deferred[0] is not None
        zmax = self._buffer(key, "zmax", out.shape, x.dtype) if keep else None

        def pool(c):
            if fast:
                won = [m[c] for m in masks] if backward else False
                cache = cv.maxpool2_nhwc_forward(x[c], k == 3, out[c], rows[c], won, parity)[1]
            else:
                out[c], cache = cv.maxpool_nhwc_forward(x[c], k, s, pad)
            if zmax is not None:
                np.copyto(zmax[c], out[c])
            if deferred is not None:
                bn.scale_shift(out[c].reshape(-1, C), *deferred)
            if relu:
                kinks.note_sign("relu", out[c])  # the ReLU's input, on the pooled map
                np.maximum(out[c], 0, out=out[c])
            return cache

        caches = parallel.map_parts(pool, cuts)
        return out, (x.shape, cuts, caches, out, zmax)

    def _pool_backward(self, dout, cache, relu, dx_name):
        """dx of _pool_forward, in the shared buffer dx_name (see backward). relu: the input
        came from a ReLU, whose gradient is taken here on the smaller map: a window's
        gradient passes only if its max is positive.
        Returns (dx, pooled): pooled is, per part, the windows' gradient and the pooled z
        (rows of (n Ho Wo, C)) when the pool took a BN's z itself, else None."""
        x_shape, cuts, caches, out, zmax = cache
        dx = self._buffer(SHARED, dx_name, x_shape, dout.dtype)

        def back(j):
            c = cuts[j]
            if relu:
                np.multiply(dout[c], out[c] > 0, out=dout[c])
            if cv.fast_pool(x_shape, *self.pool):
                cv.maxpool2_nhwc_backward(dout[c], caches[j], dx[c])
            else:
                dx[c] = cv.maxpool_nhwc_backward(dout[c], caches[j])

        parallel.map_parts(back, range(len(cuts)))
        if zmax is None:
            return dx, None
        C = x_shape[3]
        return dx, [(dout[c].reshape(-1, C), zmax[c].reshape(-1, C)) for c in cuts]

    # ------------------------------------------------------------------ whole network
    def forward(self, X, train: bool, rng=None):
        """X (n, C*H*W) flat images -> scores (n, K), cache. The feature maps are NHWC."""
        x = X.reshape(X.shape[0], *self.image_shape)  # NCHW channel planes
        h = x.transpose(0, 2, 3, 1)
        caches, relu = [], self.p.activation == "relu"
        defer, deferred = False, None  # what the conv before a pool left to it
        parity = False  # the conv before a pool wrote its output in parity order
        for b, (kind, l) in enumerate(self.blocks):
            if kind == "pool":
                h, c = self._pool_forward(h, l, defer, deferred, parity)
                defer, deferred = False, None
            else:  # the first conv reads the images' channel planes
                parity = self.parity[l]
                defer = relu and b + 1 < len(self.blocks) and self.blocks[b + 1][0] == "pool"
                h, c, deferred = self._conv_forward(x if b == 0 else h, l, train, defer)
            caches.append(c)
        # the fc layers read the features in C, H, W order (as a flat NCHW map)
        h, c_flat = cv.flatten_forward(np.ascontiguousarray(h.transpose(0, 3, 1, 2)))
        fc_caches = []
        for j, block in enumerate(self.fc_blocks, 1):
            h, c = dense_forward(h, self.params[f"W{j}"], self.params[f"bW{j}"], block,
                                 train=train, rng=rng)
            fc_caches.append(c)
        return h, (caches, c_flat, fc_caches)

    def backward(self, dscores, cache):
        caches, c_flat, fc_caches = cache
        grads = {}
        d = dscores
        for j in range(self.n_fc, 0, -1):
            d, grads[f"W{j}"], grads[f"bW{j}"], _, _ = dense_backward(d, fc_caches[j - 1])
        d = np.ascontiguousarray(cv.flatten_backward(d, c_flat).transpose(0, 2, 3, 1))
        relu_done = False  # the ReLU of the conv before a pool acts in the pool's backward
        pooled = None  # what the pool gives the BN before it (see _pool_backward)
        for b in reversed(range(len(self.blocks))):
            kind, l = self.blocks[b]
            # Block b's dx is read by block b - 1 only: two buffers in turn serve every
            # block. (A BN reads the pool's dout, in the other one, through `pooled`, for
            # its sums, before its conv writes dx there.)
            dx_name = f"dx{b % 2}"
            if kind == "pool":
                relu_done = (b > 0 and self.blocks[b - 1][0] == "conv"
                             and self.p.activation == "relu")
                d, pooled = self._pool_backward(d, caches[b], relu_done, dx_name)
            else:
                d = self._conv_backward(d, caches[b], l, grads, dx_name, relu_done, pooled)
                relu_done, pooled = False, None
        return grads

    def scores(self, X, batch_size: int | None = None):
        """Evaluation-mode scores, with no backward pass to follow: each BN layer is folded
        into its conv once for all chunks, filters W scale and bias shift (bn.affine), so no
        pass normalises the maps, and the pools take no winner masks. forward with
        train=False (whose gradients the gradient check takes) normalises the maps: the
        same scores up to rounding."""
        self._scoring = self._scoring_filters()
        try:
            return super().scores(X, batch_size or self.eval_batch)
        finally:
            self._scoring = None

    def _scoring_filters(self) -> dict[int, tuple]:
        """{conv l: (filters, bias, U)} for evaluation: each BN folded in from the moving
        averages (filters scaled per output channel, bias the shift), and for a Winograd
        layer its transformed filters U, made once for all chunks (else None)."""
        P, filters = self.params, {}
        for l, method in self.conv_method.items():
            W, b = P[f"F{l}"], P.get(f"b{l}")
            if self.p.batchnorm:
                state = bn.layer_state(self.state, f"bn{l}")
                _, scale, b = bn.affine(P[f"gamma{l}"], P[f"beta{l}"], state["mean"],
                                        state["var"], self.p.bn_eps)
                # the product keeps F<l>'s memory layout (C innermost): filter_rows is a view
                W = W * scale[:, None, None, None]
            U = self._winograd_filters(f"conv{l}", W) if method == "winograd" else None
            filters[l] = (W, b, U)
        return filters


@MODELS.register("cnn", CNNParams)
def cnn(p: CNNParams, info: DataInfo, dtype, rng):
    """VGG-style image ConvNet: 3x3 convs [+ BN] + ReLU, max-pools ("M"), fc head."""
    return CNN(p, info, dtype, rng)
