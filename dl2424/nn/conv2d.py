"""2-D convolution, max-pooling and flatten as forward/backward pairs (CS231n style).

Two layouts. The public pairs `conv2d_forward`, `maxpool_forward`, ... take NCHW arrays,
x (n, C, H, W), and weights (F, C, kh, kw), as the course writes them. The work is done in
channels-last (NHWC) form by the `*_nhwc` functions, which the image ConvNet uses throughout:
there every pixel's channels are contiguous, so

- im2col is one copy of a strided view (`sliding_window_view` of the padded input) into a
  (n Ho Wo, kh kw C) matrix whose rows are receptive fields, and the convolution is one
  matmul with the filter matrix whose result *is* the NHWC output: no transposes;
- dx at stride 1 is the convolution of the padded upstream gradient with the flipped,
  transposed filters (the same im2col and one matmul); other strides add the columns back
  with one strided slice per kernel offset (col2im);
- the 2x2 stride-2 max-pool is a max of the two halves of a reshape along W, then along H,
  with the winner masks from the same comparisons; its backward writes each half in place.

Output sizes follow the floor rule H' = (H + 2 pad - kh) // stride + 1. Ties in max-pool go
to the first element of the window in row-major order, so each window routes its gradient
to exactly one input. Functions that take `out=`/buffer arguments write there and allocate
nothing large; callers may reuse those buffers across updates.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import kinks


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
    """x (n, H, W, C) padded by `pad` on both sides of H and W.

    With `out` (n, H + 2 pad, W + 2 pad, C) only the interior is written: a buffer whose
    border was filled once (np.zeros) can be reused across calls.
    """
    if pad == 0:
        return x
    n, H, W, C = x.shape
    if out is None:
        out = np.full((n, H + 2 * pad, W + 2 * pad, C), value, dtype=x.dtype)
    out[:, pad : pad + H, pad : pad + W] = x
    return out


def im2col_nhwc(xp, kh, kw, stride, out=None):
    """Receptive fields of a padded NHWC batch as matrix rows.

    Inputs:
    - xp: (n, Hp, Wp, C) padded input
    Returns cols (n, Ho, Wo, kh, kw, C): reshaped to (n Ho Wo, kh kw C), row n Ho Wo + h Wo
    + w is output position (h, w) of example n, and entry i kw C + j C + c is channel c at
    kernel offset (i, j), matching `filter_rows`.
    """
    n, Hp, Wp, C = xp.shape
    Ho, Wo = (Hp - kh) // stride + 1, (Wp - kw) // stride + 1
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))  # (n, Hp-kh+1, Wp-kw+1, C, kh, kw)
    windows = windows[:, : stride * (Ho - 1) + 1 : stride, : stride * (Wo - 1) + 1 : stride]
    if out is None:
        out = np.empty((n, Ho, Wo, kh, kw, C), dtype=xp.dtype)
    np.copyto(out, windows.transpose(0, 1, 2, 4, 5, 3))
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
    out = cols @ filter_rows(W).T (a copy that keeps C innermost: cheap even for 512x512)."""
    F, C, kh, kw = W.shape
    return np.ascontiguousarray(W.transpose(0, 2, 3, 1)).reshape(F, kh * kw * C)


def filter_gradient(dW_rows, W_shape):
    """Adjoint of filter_rows: (F, kh kw C) back to (F, C, kh, kw)."""
    F, C, kh, kw = W_shape
    return np.ascontiguousarray(dW_rows.reshape(F, kh, kw, C).transpose(0, 3, 1, 2))


def flipped_filter_matrix(W):
    """The (kh kw F, C) matrix of the stride-1 transposed convolution: dx is the convolution
    of the upstream gradient, padded by k - 1 - pad, with the flipped filters, F -> C."""
    C = W.shape[1]
    return np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)).reshape(-1, C)


def conv2d_nhwc_forward(x, W, b, stride=1, pad=0, xp=None, cols=None, out=None):
    """Cross-correlation out[n, :, :, f] = sum_c x_pad[n, :, :, c] * W[f, c] + b[f].

    Inputs:
    - x: (n, H, W, C) input
    - W: (F, C, kh, kw) filters; b: (F,) biases, or None
    - xp, cols, out: optional buffers for the padded input (zero border), the im2col
      matrix and the (n, Ho, Wo, F) output
    Returns (out, cache); out is C-contiguous (n, Ho, Wo, F).
    """
    n, Ho, Wo, F = conv_out_shape(x.shape, W.shape, stride, pad)
    kh, kw = W.shape[2:]
    xp = pad_nhwc(x, pad, xp)
    cols = im2col_nhwc(xp, kh, kw, stride, cols)
    if out is None:
        out = np.empty((n, Ho, Wo, F), dtype=x.dtype)
    np.matmul(cols.reshape(n * Ho * Wo, -1), filter_rows(W).T, out=out.reshape(-1, F))
    if b is not None:
        out += b
    return out, (x.shape, cols, W, b is not None, stride, pad)


def conv2d_nhwc_backward(dout, cache, input_grad=True, dx=None, scratch=None):
    """Gradients of conv2d_nhwc_forward.

    Inputs:
    - dout: (n, Ho, Wo, F) upstream gradient, C-contiguous
    - input_grad: False skips dx (the first layer, whose input is data) and returns None
    - dx: optional (n, H, W, C) buffer for dx; scratch: optional dict of work buffers
      ("dpad", "dcols") reused across calls
    Returns (dx, dW, db); db is None when the forward pass had no bias.
    """
    shape, cols, W, has_bias, stride, pad = cache
    n, Ho, Wo, F = dout.shape
    d2 = dout.reshape(-1, F)
    dW = filter_gradient(d2.T @ cols.reshape(d2.shape[0], -1), W.shape)
    db = d2.sum(axis=0) if has_bias else None
    if not input_grad:
        return None, dW, db
    if dx is None:
        dx = np.empty(shape, dtype=dout.dtype)
    kh, kw = W.shape[2:]
    if stride == 1 and pad <= min(kh, kw) - 1:
        tpad = (kh - 1 - pad, kw - 1 - pad)
        dp = work_buffer(scratch, "dpad", (n, Ho + 2 * tpad[0], Wo + 2 * tpad[1], F), dout.dtype)
        dp[:, tpad[0] : tpad[0] + Ho, tpad[1] : tpad[1] + Wo] = dout
        dc = im2col_nhwc(dp, kh, kw, 1, work_buffer(scratch, "dcols", (*shape[:3], kh, kw, F),
                                                 dout.dtype, zero=False))
        np.matmul(dc.reshape(dx.shape[0] * shape[1] * shape[2], -1), flipped_filter_matrix(W),
                  out=dx.reshape(-1, shape[3]))
    else:
        dcols = (d2 @ filter_rows(W)).reshape(n, Ho, Wo, kh, kw, shape[3])
        col2im_nhwc(dcols, stride, pad, dx)
    return dx, dW, db


def work_buffer(scratch, name, shape, dtype, zero=True):
    """A work array from `scratch` (dict) reused when its shape and dtype fit, else a new one.
    New buffers are zeroed when `zero` (padding borders rely on that)."""
    buf = None if scratch is None else scratch.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        if scratch is not None:
            scratch[name] = buf
    return buf


# ---------------------------------------------------------------------- NHWC max-pooling
def _pool2_halves(x, axis):
    """The even and odd entries of x along `axis` (1 = H, 2 = W) of an NHWC array, as two
    views; an odd trailing entry is dropped (floor rule)."""
    n, H, W, C = x.shape
    if axis == 2:
        halves = x[:, :, : W - W % 2].reshape(n, H, W // 2, 2 * C)
        return halves[..., :C], halves[..., C:]
    halves = x[:, : H - H % 2].reshape(n, H // 2, 2, W * C)
    shape = (n, H // 2, W, C)
    return halves[:, :, 0].reshape(shape), halves[:, :, 1].reshape(shape)


def _max2_along(x, axis, out, won):
    """out = max of the pairs along `axis`; won = the first of the pair is the max."""
    a, b = _pool2_halves(x, axis)
    np.maximum(a, b, out=out)
    np.greater_equal(a, b, out=won)
    return out


def _unmax2_along(dout, won, axis, dx):
    """Adjoint of _max2_along: the gradient goes to the winner of each pair."""
    a, b = _pool2_halves(dx, axis)
    np.multiply(dout, won, out=a)
    np.subtract(dout, a, out=b)  # dout - dout * won: exactly dout where the second won
    if dx.shape[axis] % 2:
        idx = [slice(None)] * 4
        idx[axis] = -1
        dx[tuple(idx)] = 0
    return dx


def maxpool2_nhwc_forward(x, out=None, rows=None):
    """Max over 2x2 windows at stride 2 (padding 0) of x (n, H, W, C).

    A max of the two halves along W, then along H, with the winner masks from the same
    comparisons (ties: the first, i.e. row-major first in the window). `out` (n, H/2, W/2, C)
    and `rows` (n, H, W/2, C) are optional buffers. Returns (out, cache).
    """
    n, H, W, C = x.shape
    Ho, Wo = _out_size(H, 2, 2, 0), _out_size(W, 2, 2, 0)
    rows = np.empty((n, H - H % 2, Wo, C), x.dtype) if rows is None else rows
    won_col = np.empty(rows.shape, dtype=bool)
    _max2_along(x[:, : H - H % 2], 2, rows, won_col)
    out = np.empty((n, Ho, Wo, C), x.dtype) if out is None else out
    won_row = np.empty(out.shape, dtype=bool)
    _max2_along(rows, 1, out, won_row)
    kinks.note_choice("maxpool", won_row, won_col)
    return out, (x.shape, won_row, won_col, rows)


def maxpool2_nhwc_backward(dout, cache, dx=None):
    """Routes each window's gradient to its winner. Returns dx (n, H, W, C); its `rows`
    buffer from the forward pass is reused for the intermediate gradient."""
    shape, won_row, won_col, rows = cache
    drows = _unmax2_along(dout, won_row, 1, rows)
    dx = np.empty(shape, dout.dtype) if dx is None else dx
    _unmax2_along(drows, won_col, 2, dx[:, : rows.shape[1]])
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
    wins (it is -inf). 2x2 windows at stride 2 without padding take `maxpool2_nhwc_forward`.

    Otherwise the square max is separable: a max along rows of a max along columns, 2 kernel
    passes instead of kernel^2, ties to the first row holding the maximum, then its first
    column. Returns (out, cache) with out (n, Ho, Wo, C).
    """
    if pad > kernel // 2:
        raise ValueError(f"max-pool padding {pad} must be at most half the kernel {kernel}")
    if kernel == stride == 2 and pad == 0:
        out, cache = maxpool2_nhwc_forward(x)
        return out, ("2x2", cache)
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
    if kind == "2x2":
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
