"""2-D convolution, max-pooling and flatten as forward/backward pairs (CS231n style).

Layout NCHW: x is (n, C, H, W); conv weights are (F, C, kh, kw). Output sizes follow the
usual floor rule H' = (H + 2 pad - kh) // stride + 1.

The convolution is im2col plus one BLAS matmul over the whole batch: the receptive fields
of all examples form the columns of a (C kh kw, n H' W') matrix, and the filters
(F, C kh kw) times it is the output. The columns are gathered, and scattered back in the
backward pass, with one strided slice per kernel offset (kh * kw slices), never a loop over
examples or output positions. One large matmul keeps BLAS far busier than a batch of small
per-example ones (whose dW would also need an (n, F, C kh kw) intermediate).
"""

from __future__ import annotations

import numpy as np

from . import kinks


def _out_size(size, k, stride, pad):
    out = (size + 2 * pad - k) // stride + 1
    if out < 1:
        raise ValueError(f"window {k} (stride {stride}, pad {pad}) is larger than input {size}")
    return out


def _offset(i, n_out, stride):
    """The input rows (or columns) that kernel offset i touches, as a strided slice."""
    return slice(i, i + stride * (n_out - 1) + 1, stride)


def _pad(x, pad, value=0.0):
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)


def im2col(x, kh, kw, stride, pad, Ho, Wo):
    """Receptive fields of a batch as matrix columns.

    Inputs:
    - x: (n, C, H, W) input (unpadded)
    Returns cols (C*kh*kw, n*Ho*Wo): row c*kh*kw + i*kw + j holds channel c at kernel offset
    (i, j), matching W.reshape(F, -1); column n*Ho*Wo + h*Wo + w is output position (h, w)
    of example n.
    """
    n, C = x.shape[:2]
    xp = _pad(x, pad).transpose(1, 0, 2, 3)  # (C, n, Hp, Wp) view; the copy below reorders
    cols = np.empty((C, kh, kw, n, Ho, Wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xp[:, :, _offset(i, Ho, stride), _offset(j, Wo, stride)]
    return cols.reshape(C * kh * kw, n * Ho * Wo)


def col2im(dcols, shape, kh, kw, stride, pad, Ho, Wo):
    """Adjoint of im2col: adds each column entry back onto the input pixel it came from.

    Inputs:
    - dcols: (C*kh*kw, n*Ho*Wo)
    - shape: (n, C, H, W) of the unpadded input
    Returns dx (n, C, H, W).
    """
    n, C, H, W = shape
    dxp = np.zeros((n, C, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    dxp_t = dxp.transpose(1, 0, 2, 3)
    dcols = dcols.reshape(C, kh, kw, n, Ho, Wo)
    for i in range(kh):
        for j in range(kw):
            dxp_t[:, :, _offset(i, Ho, stride), _offset(j, Wo, stride)] += dcols[:, i, j]
    return dxp[:, :, pad : pad + H, pad : pad + W]


def conv2d_forward(x, W, b, stride=1, pad=0):
    """Cross-correlation out[n, f] = sum_c x_pad[n, c] * W[f, c] + b[f] at stride `stride`.

    Inputs:
    - x: (n, C, H, W) input
    - W: (F, C, kh, kw) filters
    - b: (F,) biases, or None for none (e.g. when batch norm follows)
    Returns (out, cache) with out (n, F, Ho, Wo), C-contiguous.
    """
    n, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    Ho, Wo = _out_size(H, kh, stride, pad), _out_size(Wd, kw, stride, pad)
    cols = im2col(x, kh, kw, stride, pad, Ho, Wo)
    out = W.reshape(F, -1) @ cols  # (F, n*Ho*Wo)
    if b is not None:
        out += b[:, None]
    out = np.ascontiguousarray(out.reshape(F, n, Ho, Wo).transpose(1, 0, 2, 3))
    return out, (x.shape, cols, W, b is not None, stride, pad)


def conv2d_backward(dout, cache, input_grad=True):
    """Gradients of conv2d_forward.

    Inputs:
    - dout: (n, F, Ho, Wo) upstream gradient
    - input_grad: False skips dx (the first layer, whose input is data) and returns None
    Returns (dx, dW, db); db is None when the forward pass had no bias.
    """
    shape, cols, W, has_bias, stride, pad = cache
    n, F, Ho, Wo = dout.shape
    kh, kw = W.shape[2:]
    dout = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)).reshape(F, n * Ho * Wo)
    dW = (dout @ cols.T).reshape(W.shape)
    db = dout.sum(axis=1) if has_bias else None
    dx = None
    if input_grad:
        dcols = W.reshape(F, -1).T @ dout
        dx = col2im(dcols, shape, kh, kw, stride, pad, Ho, Wo)
    return dx, dW, db


def _max_along(x, axis, kernel, stride, n_out):
    """1-D max-pool of x along `axis` (2 = rows, 3 = columns).

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


def maxpool_forward(x, kernel, stride, pad=0):
    """Max over kernel x kernel windows at stride `stride`; padding never wins (it is -inf).

    The square max is separable: a max along rows of a max along columns. That takes
    2 * kernel passes instead of kernel^2. Ties go to the first element in row-major order
    (the first row holding the maximum, then its first column), so each window routes its
    gradient to exactly one input.

    Inputs:
    - x: (n, C, H, W)
    Returns (out, cache) with out (n, C, Ho, Wo).
    """
    if pad > kernel // 2:
        raise ValueError(f"max-pool padding {pad} must be at most half the kernel {kernel}")
    n, C, H, W = x.shape
    Ho, Wo = _out_size(H, kernel, stride, pad), _out_size(W, kernel, stride, pad)
    xp = _pad(x, pad, value=-np.inf)
    rows, won_col = _max_along(xp, 3, kernel, stride, Wo)  # (n, C, Hp, Wo)
    out, won_row = _max_along(rows, 2, kernel, stride, Ho)  # (n, C, Ho, Wo)
    kinks.note_choice("maxpool", won_row, won_col)
    return out, (x.shape, won_row, won_col, stride, pad)


def maxpool_backward(dout, cache):
    """Routes each window's gradient to the input that won it. Returns dx (n, C, H, W)."""
    (n, C, H, W), won_row, won_col, stride, pad = cache
    drows = _unmax_along(dout, won_row, 2, stride, H + 2 * pad)
    dxp = _unmax_along(drows, won_col, 3, stride, W + 2 * pad)
    return dxp[:, :, pad : pad + H, pad : pad + W]


def flatten_forward(x):
    """(n, C, H, W) -> (n, C*H*W) in C, H, W order. Returns (out, cache)."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, shape):
    return dout.reshape(shape)
