"""2-D convolution, max-pooling and flatten as forward/backward pairs (CS231n style).

Two layouts. The public pairs `conv2d_forward`, `maxpool_forward`, ... take NCHW arrays,
x (n, C, H, W), and weights (F, C, kh, kw), as the course writes them. The work is done in
channels-last (NHWC) form by the `*_nhwc` functions, which the image ConvNet uses throughout:
there every pixel's channels are contiguous, so

- im2col is one copy of a strided view (the windows of the padded input) into a
  (n Ho Wo, kh kw C) matrix whose rows are receptive fields, and the convolution is one
  matmul with the filter matrix whose result *is* the NHWC output: no transposes;
- dx at stride 1 is the convolution of the padded upstream gradient with the flipped,
  transposed filters (the same im2col and a matmul), a few examples at a time so that each
  block is still in the cache when the matmul reads it; other strides add the columns back
  with one strided slice per kernel offset (col2im);
- the 2x2 stride-2 max-pool is a max of the two halves of a reshape along W, then along H,
  with the winner masks from the same comparisons; its backward writes each half in place.
  A conv may write its output for such a pool in parity order (`parity_order`), each image
  row's even pixels first, which makes the two halves along W contiguous.

The image ConvNet runs its 3x3 convolutions with many channels (the UvA network's deep
layers) by Winograd's algorithm instead (`dl2424.nn.winograd`), where that measures faster.

Output sizes follow the floor rule H' = (H + 2 pad - kh) // stride + 1. Ties in max-pool go
to the first element of the window in row-major order, so each window routes its gradient
to exactly one input. Functions that take `out=`/buffer arguments write there and allocate
nothing large; callers may reuse those buffers across updates.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import kinks

# Output entries per block of product_in_blocks (4 MB of float32): few enough blocks that
# two threads seldom wait for each other's GIL hand-offs between NumPy calls (with 1 MB
# blocks, a wait probe showed ~15 ms vs ~3 ms of waiting per update on the small BN
# ConvNet; update times stayed within noise).
THEN_BLOCK = 2**20


def _out_size(size, k, stride, pad):
    out = (size + 2 * pad - k) // stride + 1
    if out < 1:
        raise ValueError(f"window {k} (stride {stride}, pad {pad}) is larger than input {size}")
    return out


def _offset(i, n_out, stride):
    """The input rows (or columns) that kernel offset i touches, as a strided slice."""
    return slice(i, i + stride * (n_out - 1) + 1, stride)


def conv_out_shape(x_shape, W_shape, stride, pad):
    """(n, Ho, Wo, F) of the NHWC convolution of x (n, H, W, C) with W (F, C, kh, kw)."""
    n, H, Wd, _ = x_shape
    F, _, kh, kw = W_shape
    return n, _out_size(H, kh, stride, pad), _out_size(Wd, kw, stride, pad), F


# ---------------------------------------------------------------------- NHWC convolution
def pad_nhwc(x, pad, out=None, value=0.0):
    """x (n, H, W, C) padded by `pad` on both sides of H and W, into `out` (n, H + 2 pad,
    W + 2 pad, C) if given (any buffer: its border is written too, see fill_border)."""
    if pad == 0:
        return x
    n, H, W, C = x.shape
    if out is None:
        out = np.empty((n, H + 2 * pad, W + 2 * pad, C), dtype=x.dtype)
    out[:, pad : pad + H, pad : pad + W] = x
    return fill_border(out, (pad, pad), (1, 2), value)


def fill_border(xp, pads, axes, value=0.0):
    """xp with its first and last pads[k] entries along axes[k] set to value: the border
    of a padded map whose interior is written separately. A few thin strips, so that a
    shared work buffer can hold padded maps of any layer."""
    for p, axis in zip(pads, axes, strict=True):
        if p:
            idx = [slice(None)] * xp.ndim
            for edge in (slice(0, p), slice(xp.shape[axis] - p, None)):
                idx[axis] = edge
                xp[tuple(idx)] = value
    return xp


def _view(x, shape, strides):
    """A view of x's memory with these shape and strides (read only: windows overlap).

    What sliding_window_view makes, made directly: its ~20 us of Python per call hold the
    GIL, which at two threads the other thread then waits for, a dozen calls per update."""
    if x.flags.c_contiguous:
        view = np.ndarray(shape, x.dtype, buffer=x, strides=strides)
        view.flags.writeable = False
        return view
    return as_strided(x, shape, strides, writeable=False)


def im2col_nhwc(xp, kh, kw, stride, out=None, parity=False):
    """Receptive fields of a padded NHWC batch as matrix rows.

    Inputs:
    - xp: (n, Hp, Wp, C) padded input
    - parity: the rows of each image row in parity order (see `parity_order`; Wo even)
    Returns cols (n, Ho, Wo, kh, kw, C): reshaped to (n Ho Wo, kh kw C), row n Ho Wo + h Wo
    + w is output position (h, w) of example n, and entry i kw C + j C + c is channel c at
    kernel offset (i, j), matching `filter_rows`.
    """
    n, Hp, Wp, C = xp.shape
    Ho, Wo = (Hp - kh) // stride + 1, (Wp - kw) // stride + 1
    sn, sh, sw, sc = xp.strides
    if out is None:
        out = np.empty((n, Ho, Wo, kh, kw, C), dtype=xp.dtype)
    if parity:
        windows = _view(xp, (n, Ho, 2, Wo // 2, kh, kw, C),
                        (sn, stride * sh, stride * sw, 2 * stride * sw, sh, sw, sc))
        np.copyto(out.reshape(windows.shape), windows)
    else:
        np.copyto(out, _view(xp, (n, Ho, Wo, kh, kw, C),
                             (sn, stride * sh, stride * sw, sh, sw, sc)))
    return out


def parity_order(x, inverse=False):
    """A copy of x (n, H, W, C) in parity order: each image row as its even pixels, then its
    odd ones (entry w < W/2 is pixel 2w, entry W/2 + w is pixel 2w + 1); inverse: back to
    pixel order. A conv whose output goes to a 2-wide max-pool writes it in this order (its
    im2col rows so ordered: a view), so that the pool's pairs along W are two contiguous
    halves, not runs of C entries."""
    n, H, W, C = x.shape
    split = (n, H, 2, W // 2, C) if inverse else (n, H, W // 2, 2, C)
    return np.ascontiguousarray(x.reshape(split).transpose(0, 1, 3, 2, 4)).reshape(x.shape)


def im2col_planes(xp, kh, kw, stride, out=None, parity=False):
    """Receptive fields of a padded NCHW batch as matrix columns.

    Inputs:
    - xp: (n, C, Hp, Wp) padded input
    - parity: the columns of each image row in parity order (see `parity_order`; Wo even)
    Returns cols (C, kh, kw, n, Ho, Wo): reshaped to (C kh kw, n Ho Wo), column n Ho Wo + h Wo
    + w is output position (h, w) of example n, and row c kh kw + i kw + j is channel c at
    kernel offset (i, j), the order of W.reshape(F, -1). Each row is a strided copy of a
    padded channel plane, with runs of Wo contiguous entries: for a few input channels (the
    image's 3) that copies faster than im2col_nhwc, whose runs are only kw C long.
    """
    n, C, Hp, Wp = xp.shape
    Ho, Wo = (Hp - kh) // stride + 1, (Wp - kw) // stride + 1
    sn, sc, sh, sw = xp.strides
    if out is None:
        out = np.empty((C, kh, kw, n, Ho, Wo), dtype=xp.dtype)
    if parity:
        windows = _view(xp, (C, kh, kw, n, Ho, 2, Wo // 2),
                        (sc, sh, sw, sn, stride * sh, stride * sw, 2 * stride * sw))
        np.copyto(out.reshape(windows.shape), windows)
    else:
        np.copyto(out, _view(xp, (C, kh, kw, n, Ho, Wo),
                             (sc, sh, sw, sn, stride * sh, stride * sw)))
    return out


def col2im_nhwc(dcols, stride, pad, out):
    """Adjoint of im2col_nhwc: adds each column entry back onto the pixel it came from.

    Inputs:
    - dcols: (n, Ho, Wo, kh, kw, C)
    - out: (n, H, W, C) receives dx (the unpadded input's gradient)
    """
    n, Ho, Wo, kh, kw, C = dcols.shape
    _, H, W, _ = out.shape
    dxp = np.zeros((n, H + 2 * pad, W + 2 * pad, C), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, _offset(i, Ho, stride), _offset(j, Wo, stride)] += dcols[:, :, :, i, j]
    out[...] = dxp[:, pad : pad + H, pad : pad + W]
    return out


def filter_rows(W):
    """(F, C, kh, kw) filters as the (F, kh kw C) matrix whose rows meet im2col_nhwc rows:
    out = cols @ filter_rows(W).T. Free (a view) when W keeps C innermost in memory
    (`channels_last_filters`), else a copy."""
    F, C, kh, kw = W.shape
    return W.transpose(0, 2, 3, 1).reshape(F, kh * kw * C)


def channels_last_filters(W):
    """W (F, C, kh, kw) as an array of the same shape and values whose memory holds each
    filter as (kh, kw, C): filter_rows is then a view, and a gradient made by np.empty_like
    takes the filter rows' gradient without a transposing copy."""
    return np.ascontiguousarray(W.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def filter_gradient(dW_rows, W_shape, out=None):
    """Adjoint of filter_rows: (F, kh kw C) back to (F, C, kh, kw). dW_rows may be a list of
    partial gradients (one per part of the batch): they are added in order while being
    transposed, in one pass. `out`: optional (F, C, kh, kw) buffer."""
    F, C, kh, kw = W_shape
    parts = dW_rows if isinstance(dW_rows, list) else [dW_rows]
    as_W = [p.reshape(F, kh, kw, C).transpose(0, 3, 1, 2) for p in parts]
    dW = np.empty(W_shape, dtype=parts[0].dtype) if out is None else out
    if len(as_W) == 1:
        np.copyto(dW, as_W[0])
        return dW
    np.add(as_W[0], as_W[1], out=dW)
    for p in as_W[2:]:
        dW += p
    return dW


def flipped_filter_matrix(W, W_rows=None, out=None):
    """The (kh kw F, C) matrix of the stride-1 transposed convolution: dx is the convolution
    of the upstream gradient, padded by k - 1 - pad, with the flipped filters, F -> C.

    Made from the filter rows (W_rows: filter_rows(W) if already made), where flipping both
    kernel axes reverses the kh kw offsets and the copy keeps C innermost. `out`: optional
    (kh kw, F, C) buffer, or a view of one (e.g. some of its filters, out[:, f])."""
    F, C, kh, kw = W.shape
    rows = (filter_rows(W) if W_rows is None else W_rows).reshape(F, kh * kw, C)
    flip = np.empty((kh * kw, F, C), dtype=W.dtype) if out is None else out
    np.copyto(flip, rows[:, ::-1].transpose(1, 0, 2))
    return flip.reshape(-1, C) if out is None else out


def conv2d_nhwc_forward(x, W, b, stride=1, pad=0, xp=None, cols=None, out=None,
                        W_rows=None, then=None, parity=False):
    """Cross-correlation out[n, :, :, f] = sum_c x_pad[n, :, :, c] * W[f, c] + b[f].

    The backward pass reuses the im2col matrix for dW.

    Inputs:
    - x: (n, H, W, C) input
    - W: (F, C, kh, kw) filters; b: (F,) biases, or None
    - xp, cols, out: optional buffers for the padded input (border written), the im2col
      matrix (n, Ho, Wo, kh, kw, C) and the (n, Ho, Wo, F) output; W_rows: filter_rows(W)
      if already made
    - then: see `product_in_blocks`
    - parity: out in parity order (see `parity_order`; Wo even)
    Returns (out, cache); out is C-contiguous (n, Ho, Wo, F).
    """
    n, Ho, Wo, F = conv_out_shape(x.shape, W.shape, stride, pad)
    kh, kw = W.shape[2:]
    xp = pad_nhwc(x, pad, xp)
    cols = im2col_nhwc(xp, kh, kw, stride, cols, parity)
    if out is None:
        out = np.empty((n, Ho, Wo, F), dtype=x.dtype)
    W_rows = filter_rows(W) if W_rows is None else W_rows
    product_in_blocks(cols.reshape(n * Ho * Wo, -1), W_rows.T, b, out.reshape(-1, F), then)
    return out, (x.shape, cols, W, b is not None, stride, pad, parity)


def row_blocks(shape):
    """Slices of the rows of an array of `shape` (rows, columns) in blocks of about
    THEN_BLOCK entries."""
    step = max(1, THEN_BLOCK // shape[1])
    return [slice(s, min(s + step, shape[0])) for s in range(0, shape[0], step)]


def product_in_blocks(a, b, bias, out, then=None):
    """out = a @ b (+ bias). With `then`, in blocks of rows of about 4 MB of out
    (row_blocks), and then(block) runs on each block right after its product, while it is
    in cache (the activation, or batch-norm statistics): one pass over out saved."""
    for rows in ([slice(None)] if then is None else row_blocks(out.shape)):
        np.matmul(a[rows], b, out=out[rows])
        if bias is not None:
            out[rows] += bias
        if then is not None:
            then(out[rows])


def conv2d_planes_forward(x, W, b, stride=1, pad=0, xp=None, cols=None, out=None,
                          then=None, parity=False):
    """conv2d_nhwc_forward for an NCHW input x (n, C, H, W), through im2col_planes; the
    output is NHWC (n, Ho, Wo, F), as from conv2d_nhwc_forward. For the input images.

    xp, cols, out: optional buffers for the padded input (n, C, Hp, Wp) (border written), the
    (C, kh, kw, n, Ho, Wo) columns and the output; then: see `product_in_blocks`; parity: as
    for conv2d_nhwc_forward. Returns (out, cache); the cache's columns give dW through
    planes_filter_grad.
    """
    n, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    Ho, Wo = _out_size(H, kh, stride, pad), _out_size(Wd, kw, stride, pad)
    if xp is None:
        xp = np.empty((n, C, H + 2 * pad, Wd + 2 * pad), dtype=x.dtype)
    xp[:, :, pad : pad + H, pad : pad + Wd] = x
    fill_border(xp, (pad, pad), (2, 3))
    cols = im2col_planes(xp, kh, kw, stride, cols, parity)
    if out is None:
        out = np.empty((n, Ho, Wo, F), dtype=x.dtype)
    product_in_blocks(cols.reshape(C * kh * kw, -1).T, W.reshape(F, -1).T, b,
                      out.reshape(-1, F), then)
    return out, (x.shape, cols, W, b is not None, stride, pad, parity)


def planes_filter_grad(dout_rows, cols):
    """(C kh kw, F): the transpose of dW.reshape(F, -1) from dout as an (n Ho Wo, F) matrix
    and conv2d_planes_forward's columns.

    np.dot, not np.matmul: matmul keeps the GIL through products whose result has fewer
    than ~500 entries, however long their inner dimension (27 x 16 here for 16 filters on
    RGB images: a millisecond per part during which the other thread cannot run Python)."""
    return np.dot(cols.reshape(-1, dout_rows.shape[0]), dout_rows)


def block(work, shape, dtype, name="block"):
    """A `shape` view of work[name], a flat array grown as needed and kept in the dict:
    every call with the same name reuses it (whatever its shape), so what it holds lasts
    until the next such call; a new array when work is None."""
    size = math.prod(shape)
    if work is None:
        return np.empty(shape, dtype)
    flat = work.get(name)
    if flat is None or flat.size < size or flat.dtype != dtype:
        flat = work[name] = np.empty(size, dtype)
    return flat[:size].reshape(shape)


def conv2d_nhwc_backward(dout, cache, input_grad=True, dx=None, dpad=None, work=None):
    """Gradients of conv2d_nhwc_forward.

    Inputs:
    - dout: (n, Ho, Wo, F) upstream gradient (in parity order when the output was)
    - input_grad: False skips dx (the first layer, whose input is data) and returns None
    - dx, dpad, work: see conv2d_nhwc_input_grad
    Returns (dx, dW, db); db is None when the forward pass had no bias.
    """
    shape, cols, W, has_bias, stride, pad, parity = cache
    dW = filter_gradient(filter_rows_grad(dout.reshape(-1, W.shape[0]), cols), W.shape)
    db = dout.reshape(-1, W.shape[0]).sum(axis=0) if has_bias else None
    if not input_grad:
        return None, dW, db
    return conv2d_nhwc_input_grad(dout, W, shape, stride, pad, dx, dpad, work,
                                  parity=parity), dW, db


def filter_rows_grad(dout_rows, cols, out=None):
    """The gradient of filter_rows(W), (F, kh kw C), from dout as an (n Ho Wo, F) matrix
    (or some of its columns: those filters' rows). `out`: optional (F, kh kw C) buffer."""
    return np.matmul(dout_rows.T, cols.reshape(dout_rows.shape[0], -1), out=out)


def conv2d_nhwc_input_grad(dout, W, x_shape, stride, pad, dx=None, dpad=None, work=None,
                           W_flip=None, parity=False):
    """dx (n, H, W, C) of conv2d_nhwc_forward from dout (n, Ho, Wo, F), in parity order
    (see `parity_order`) when `parity`.

    At stride 1 (pad < kernel) a convolution of the padded dout with the flipped filters
    (W_flip: flipped_filter_matrix(W) if already made), a few examples at a time; else
    col2im of dout times the filters. dx: optional output buffer; dpad: optional buffer for
    the padded dout (any: its border is written); work: see `block`.
    """
    n, Ho, Wo, F = dout.shape
    kh, kw = W.shape[2:]
    if dx is None:
        dx = np.empty(x_shape, dtype=dout.dtype)
    if stride != 1 or pad > min(kh, kw) - 1:
        dout = parity_order(dout, inverse=True) if parity else dout
        dcols = dout.reshape(-1, F) @ filter_rows(W)
        return col2im_nhwc(dcols.reshape(n, Ho, Wo, kh, kw, -1), stride, pad, dx)
    tp, tq = kh - 1 - pad, kw - 1 - pad
    shape = (n, Ho + 2 * tp, Wo + 2 * tq, F)
    dp = np.empty(shape, dout.dtype) if dpad is None else dpad
    if parity:  # the even pixels, then the odd ones
        for p, half in enumerate(_pool2_halves(dout, 2, parity=True)):
            dp[:, tp : tp + Ho, tq + p : tq + Wo : 2] = half
    else:
        dp[:, tp : tp + Ho, tq : tq + Wo] = dout
    fill_border(dp, (tp, tq), (1, 2))
    W_flip = flipped_filter_matrix(W) if W_flip is None else W_flip
    # a few examples at a time (about 2 MB), so that the block is still in the cache when
    # the product reads it
    per_example = x_shape[1] * x_shape[2] * kh * kw * F * dout.itemsize
    step = min(max(2**21 // per_example, 1), n)
    buf = block(work, (step, *x_shape[1:3], kh, kw, F), dout.dtype)
    for s in range(0, n, step):
        e = slice(s, min(s + step, n))
        cols = im2col_nhwc(dp[e], kh, kw, 1, buf[: e.stop - s])
        np.matmul(cols.reshape(-1, kh * kw * F), W_flip, out=dx[e].reshape(-1, x_shape[3]))
    return dx


# ---------------------------------------------------------------------- NHWC max-pooling
def _pool2_halves(x, axis, parity=False):
    """The even and odd entries of x along `axis` (1 = H, 2 = W) of an NHWC array, as two
    views; an odd trailing entry is dropped (floor rule). parity: x is in parity order
    (W even), whose halves along W are contiguous."""
    n, H, W, C = x.shape
    if axis == 2 and parity:
        halves = x.reshape(n, H, 2, W // 2, C)
        return halves[:, :, 0], halves[:, :, 1]
    if axis == 2:
        halves = x[:, :, : W - W % 2].reshape(n, H, W // 2, 2 * C)
        return halves[..., :C], halves[..., C:]
    halves = x[:, : H - H % 2].reshape(n, H // 2, 2, W * C)
    shape = (n, H // 2, W, C)
    return halves[:, :, 0].reshape(shape), halves[:, :, 1].reshape(shape)


def _tail(x, axis):
    """x without its first entry along `axis`."""
    return x[:, 1:] if axis == 1 else x[:, :, 1:]


def _head(x, axis):
    """x without its last entry along `axis`."""
    return x[:, :-1] if axis == 1 else x[:, :, :-1]


def _max2_along(x, axis, out, won=None, won_prev=None, overlap=False, parity=False):
    """out = max of the pairs (2i, 2i+1) along `axis`; won = entry 2i wins its pair.

    With overlap (3-wide windows, padding 1) window i also holds entry 2i - 1, which comes
    first: won_prev = it is the max (ties included), and won is cleared there. won None
    (no backward pass will follow): the maxima only. parity: see _pool2_halves.
    """
    a, b = _pool2_halves(x, axis, parity)
    np.maximum(a, b, out=out)
    if won is not None:
        np.greater_equal(a, b, out=won)
    if overlap:
        o, prev = _tail(out, axis), _head(b, axis)
        if won is not None:
            p = _tail(won_prev, axis)
            np.greater_equal(prev, o, out=p)
        np.maximum(o, prev, out=o)
        if won is not None:
            (won_prev[:, 0] if axis == 1 else won_prev[:, :, 0])[...] = False
            np.greater(won, won_prev, out=won)  # won and not won_prev
    return out


def _unmax2_along(dout, won, axis, dx, won_prev=None, parity=False):
    """Adjoint of _max2_along: the gradient goes to the winner of each window."""
    a, b = _pool2_halves(dx, axis, parity)
    np.multiply(dout, won, out=a)
    np.subtract(dout, a, out=b)  # dout - dout * won: exactly dout where entry 2i+1 won
    if won_prev is not None:
        to_prev = dout * won_prev
        b -= to_prev  # each window has one winner: this is exact too
        _head(b, axis)[...] += _tail(to_prev, axis)
    if dx.shape[axis] % 2:
        idx = [slice(None)] * 4
        idx[axis] = -1
        dx[tuple(idx)] = 0
    return dx


def fast_pool(x_shape, kernel, stride, pad):
    """Whether maxpool2_nhwc_* handle this pool: 2x2 at stride 2, or 3x3 at stride 2 with
    padding 1 on even H and W (the UvA network's)."""
    even = x_shape[1] % 2 == 0 and x_shape[2] % 2 == 0
    return stride == 2 and ((kernel, pad) == (2, 0) or ((kernel, pad) == (3, 1) and even))


def pool2_mask_shapes(x_shape, overlap=False):
    """The shapes of maxpool2_nhwc_forward's winner masks for an input of x_shape: along W
    (n, 2 Ho, Wo, C), along H (n, Ho, Wo, C), then the same two again with overlap."""
    n, H, W, C = x_shape
    shapes = [(n, H - H % 2, W // 2, C), (n, H // 2, W // 2, C)]
    return shapes * 2 if overlap else shapes


def maxpool2_nhwc_forward(x, overlap=False, out=None, rows=None, masks=True, parity=False):
    """Max-pool at stride 2 of x (n, H, W, C): 2x2 windows, or with overlap 3x3 windows
    with padding 1 (H and W even).

    A max of the two halves of a reshape along W, then along H, with the winner masks from
    the same comparisons; a 3x3 window adds the entry before the pair (ties go to the first
    in row-major order, as in maxpool_nhwc_forward). `out` (n, Ho, Wo, C) and `rows`
    (n, 2 Ho, Wo, C) are optional buffers; so is `masks`, a list of bool arrays shaped as
    pool2_mask_shapes says (masks=True makes new ones). parity: x is in parity order (see
    `parity_order`; W even), whose pairs along W are contiguous halves; out is not. Returns
    (out, cache); masks=False (evaluation) takes the maxima only and returns cache None.
    """
    n, H, W, C = x.shape
    Ho, Wo = H // 2, W // 2
    if min(Ho, Wo) < 1:
        raise ValueError(f"window 2 (stride 2) is larger than input {min(H, W)}")
    rows = np.empty((n, 2 * Ho, Wo, C), x.dtype) if rows is None else rows
    out = np.empty((n, Ho, Wo, C), x.dtype) if out is None else out
    if masks is False:
        _max2_along(x[:, : 2 * Ho], 2, rows, overlap=overlap, parity=parity)
        return _max2_along(rows, 1, out, overlap=overlap), None
    if masks is True:
        masks = [np.empty(s, bool) for s in pool2_mask_shapes(x.shape, overlap)]
    won, prev = masks[:2], masks[2:] if overlap else [None] * 2  # [col, row] each
    _max2_along(x[:, : 2 * Ho], 2, rows, won[0], prev[0], overlap, parity)
    _max2_along(rows, 1, out, won[1], prev[1], overlap)
    kinks.note_choice("maxpool", *won, *(prev if overlap else ()))
    return out, (x.shape, won, prev, rows, parity)


def maxpool2_nhwc_backward(dout, cache, dx=None):
    """Routes each window's gradient to its winner. Returns dx (n, H, W, C), in parity
    order when x was; the `rows` buffer of the forward pass holds the intermediate
    gradient."""
    shape, won, prev, rows, parity = cache
    drows = _unmax2_along(dout, won[1], 1, rows, prev[1])
    dx = np.empty(shape, dout.dtype) if dx is None else dx
    _unmax2_along(drows, won[0], 2, dx[:, : rows.shape[1]], prev[0], parity)
    if shape[1] % 2:
        dx[:, -1] = 0
    return dx


def _max_along(x, axis, kernel, stride, n_out):
    """1-D max-pool of x along `axis`.

    Returns (out, won): won[k] is True where offset k is the first offset that attains the
    maximum, so exactly one offset wins each window, ties included.
    """

    def window(k):
        idx = [slice(None)] * x.ndim
        idx[axis] = _offset(k, n_out, stride)
        return x[tuple(idx)]

    out = window(0).copy()
    for k in range(1, kernel):
        np.maximum(out, window(k), out=out)
    won = np.empty((kernel, *out.shape), dtype=bool)
    taken = np.zeros(out.shape, dtype=bool)
    for k in range(kernel):
        # Boolean ops only: np.where on a random mask is ~10x slower.
        np.equal(window(k), out, out=won[k])
        won[k] &= ~taken
        taken |= won[k]
    return out, won


def _unmax_along(dout, won, axis, stride, size):
    """Adjoint of _max_along: the gradient of each window goes to its winning offset."""
    shape = list(dout.shape)
    shape[axis] = size
    dx = np.zeros(shape, dtype=dout.dtype)
    overlap = won.shape[0] > stride  # else each input is in at most one window
    for k in range(won.shape[0]):
        idx = [slice(None)] * dout.ndim
        idx[axis] = _offset(k, dout.shape[axis], stride)
        if overlap:
            dx[tuple(idx)] += dout * won[k]
        else:
            np.multiply(dout, won[k], out=dx[tuple(idx)])
    return dx


def maxpool_nhwc_forward(x, kernel, stride, pad=0):
    """Max over kernel x kernel windows at stride `stride` of x (n, H, W, C); padding never
    wins (it is -inf). The pools of `fast_pool` take `maxpool2_nhwc_forward`.

    Otherwise the square max is separable: a max along rows of a max along columns, 2 kernel
    passes instead of kernel^2, ties to the first row holding the maximum, then its first
    column. Returns (out, cache) with out (n, Ho, Wo, C).
    """
    if pad > kernel // 2:
        raise ValueError(f"max-pool padding {pad} must be at most half the kernel {kernel}")
    if fast_pool(x.shape, kernel, stride, pad):
        out, cache = maxpool2_nhwc_forward(x, overlap=kernel == 3)
        return out, ("stride 2", cache)
    n, H, W, C = x.shape
    Ho, Wo = _out_size(H, kernel, stride, pad), _out_size(W, kernel, stride, pad)
    xp = pad_nhwc(x, pad, value=-np.inf)
    rows, won_col = _max_along(xp, 2, kernel, stride, Wo)  # (n, Hp, Wo, C)
    out, won_row = _max_along(rows, 1, kernel, stride, Ho)  # (n, Ho, Wo, C)
    kinks.note_choice("maxpool", won_row, won_col)
    return out, ("separable", (x.shape, won_row, won_col, stride, pad))


def maxpool_nhwc_backward(dout, cache):
    """Routes each window's gradient to the input that won it. Returns dx (n, H, W, C)."""
    kind, inner = cache
    if kind == "stride 2":
        return maxpool2_nhwc_backward(dout, inner)
    (n, H, W, C), won_row, won_col, stride, pad = inner
    drows = _unmax_along(dout, won_row, 1, stride, H + 2 * pad)
    dxp = _unmax_along(drows, won_col, 2, stride, W + 2 * pad)
    return dxp[:, pad : pad + H, pad : pad + W]


# ---------------------------------------------------------------------- NCHW interface
def _nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def conv2d_forward(x, W, b, stride=1, pad=0):
    """conv2d_nhwc_forward for NCHW x (n, C, H, W). Returns (out (n, F, Ho, Wo), cache)."""
    out, cache = conv2d_nhwc_forward(_nhwc(x), W, b, stride, pad)
    return _nchw(out), cache


def conv2d_backward(dout, cache, input_grad=True):
    """Gradients of conv2d_forward: (dx, dW, db), dx NCHW or None (input_grad False)."""
    dx, dW, db = conv2d_nhwc_backward(_nhwc(dout), cache, input_grad)
    return (None if dx is None else _nchw(dx)), dW, db


def maxpool_forward(x, kernel, stride, pad=0):
    """maxpool_nhwc_forward for NCHW x (n, C, H, W). Returns (out (n, C, Ho, Wo), cache)."""
    out, cache = maxpool_nhwc_forward(_nhwc(x), kernel, stride, pad)
    return _nchw(out), cache


def maxpool_backward(dout, cache):
    """Gradient of maxpool_forward, dx (n, C, H, W)."""
    return _nchw(maxpool_nhwc_backward(_nhwc(dout), cache))


def flatten_forward(x):
    """(n, C, H, W) -> (n, C*H*W) in C, H, W order. Returns (out, cache)."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, shape):
    return dout.reshape(shape)
