"""1-D convolutions of the character ConvNet (DD2424 Assignment 3, 2020: surnames).

The fast path, batched, no per-example loops (the hand-out's matrix formulation, MF and
MX, is its reference and test oracle in charconv_ref.py). A batch of names is an integer
matrix (n, n_len) of character indices in [0, d), padded with d (an all-zero column).
Activations are (n, length, channels), channels last, and filters are (k, c_in, c_out), so
F.reshape(k * c_in, c_out)[:, i] == vec(F_handout[:, :, i]) and flattening an activation
row-major gives the hand-out's vec(X^(l)).

Every layer takes stride, zero padding and dilation: window j reads the input columns
j * stride + t * dilation - pad, t = 0..k-1 (columns outside the input are zero). The
words are those of conv2d.py: k (kernel width), stride, pad.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from numpy.lib.stride_tricks import as_strided

from . import kinks


@dataclass(frozen=True)
class ConvSpec:
    """How one conv layer slides, plus the optional max-pool after its ReLU (pool=1: none)."""

    stride: int = 1
    pad: int = 0
    dilation: int = 1
    pool: int = 1
    pool_stride: int | None = None  # None: equal to pool (non-overlapping windows)

    @property
    def pool_step(self) -> int:
        return self.pool_stride or self.pool


def conv_length(n_len, k, stride=1, pad=0, dilation=1):
    """Number of output positions of a conv over n_len input columns."""
    return (n_len + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def pool_length(n_len, width, stride):
    return (n_len - width) // stride + 1


def layer_length(n_len, k, spec: ConvSpec):
    """Output length of conv + ReLU + pool."""
    n_out = conv_length(n_len, k, spec.stride, spec.pad, spec.dilation)
    return pool_length(n_out, spec.pool, spec.pool_step) if spec.pool > 1 else n_out


# ---------------------------------------------------------------------------------------
# The fast path: batch rows, channels last


@lru_cache(maxsize=64)
def _window_columns(n_len, k, stride, pad, dilation):
    """(n_out, k) column of the zero-padded input read by offset t of window j."""
    n_out = conv_length(n_len, k, stride, pad, dilation)
    cols = np.arange(n_out)[:, None] * stride + np.arange(k) * dilation
    cols.flags.writeable = False
    return cols


@lru_cache(maxsize=64)
def _csr_frame(n_rows, k, d, dtype):
    """Row pointers and values of a CSR matrix with exactly k ones per row, and the
    column offset t * (d + 1) of each window offset t."""
    indptr = np.arange(0, n_rows * k + 1, k, dtype=np.int32)
    ones = np.ones(n_rows * k, dtype=dtype)
    offsets = np.arange(k, dtype=np.int32) * (d + 1)
    for a in (indptr, ones, offsets):
        a.flags.writeable = False
    return indptr, ones, offsets


def onehot_im2col(idx, k, d, stride=1, pad=0, dilation=1, dtype=np.float64):
    """The im2col matrix of one-hot names, as a sparse CSR matrix (the hand-out's tip:
    the input's MX is sparse, k non-zeros per row).

    Row (b, j) has a one in column t * (d + 1) + c for each offset t of window j, c the
    character there; c == d (padding) selects a zero row of the filter table.

    Inputs:
    - idx: (n, n_len) integer character indices in [0, d]
    Returns:
    - A: CSR (n * n_out, k * (d + 1))
    """
    n, n_len = idx.shape
    cols = _window_columns(n_len, k, stride, pad, dilation)
    indptr, ones, offsets = _csr_frame(n * cols.shape[0], k, d, np.dtype(dtype))
    if pad:
        idx = np.pad(idx, ((0, 0), (pad, pad)), constant_values=d)
    code = idx[:, cols] + offsets
    return sp.csr_matrix((ones, code.reshape(-1), indptr), shape=(indptr.size - 1, k * (d + 1)))


def onehot_conv_forward(idx, F, b=None, stride=1, pad=0, dilation=1):
    """First conv layer on integer-coded one-hot names: for each window, the sum over its
    k offsets of the filter rows of the characters there, as one sparse product.

    Inputs:
    - idx: (n, n_len) integer character indices in [0, d]; d means "no character"
    - F: (k, d, m) filters
    - b: (m,) or None
    Returns:
    - out: (n, n_out, m)
    - cache: for onehot_conv_backward
    """
    k, d, m = F.shape
    A = onehot_im2col(idx, k, d, stride, pad, dilation, F.dtype)
    table = np.zeros((k, d + 1, m), dtype=F.dtype)  # row d of each block: the padding
    table[:, :d] = F
    out = A @ table.reshape(-1, m)
    if b is not None:
        out += b
    return out.reshape(idx.shape[0], -1, m), (A, F.shape, b is not None)


def onehot_conv_backward(dout, cache):
    """Returns (dF (k, d, m), db (m,) or None without bias). dF is a scatter-add of the
    dout rows by (offset, character), done as the transposed sparse product."""
    A, (k, d, m), has_bias = cache
    dout2 = dout.reshape(-1, m)
    dtable = (A.T @ dout2).reshape(k, d + 1, m)
    return dtable[:, :d], dout2.sum(axis=0) if has_bias else None


def im2col(x, k, stride=1, pad=0, dilation=1):
    """Windows of x (n, L, c) as rows: (n * n_out, k * c), row (b, j) = x[b, window j]."""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (0, 0)))
    n, L, c = x.shape
    n_out = conv_length(L, k, stride, 0, dilation)
    s0, s1, s2 = x.strides
    wins = as_strided(x, (n, n_out, k, c), (s0, stride * s1, dilation * s1, s2),
                      writeable=False)
    return wins.reshape(n * n_out, k * c)


def conv_forward(x, F, b=None, stride=1, pad=0, dilation=1):
    """A conv layer on dense activations: im2col, then one matmul for the whole batch.

    Inputs:
    - x: (n, L, c) activations
    - F: (k, c, m) filters
    - b: (m,) or None
    Returns:
    - out: (n, n_out, m)
    - cache: for conv_backward
    """
    k, c, m = F.shape
    cols = im2col(x, k, stride, pad, dilation)
    out = cols @ F.reshape(k * c, m)
    if b is not None:
        out += b
    return out.reshape(x.shape[0], -1, m), (cols, x.shape, F, (stride, pad, dilation),
                                            b is not None)


def conv_backward(dout, cache):
    """Returns (dx (n, L, c), dF (k, c, m), db (m,) or None without bias)."""
    cols, (n, L, c), F, (stride, pad, dilation), has_bias = cache
    k, _, m = F.shape
    n_out = dout.shape[1]
    dout2 = dout.reshape(-1, m)
    dF = (cols.T @ dout2).reshape(k, c, m)
    # Offset t of window j read input column j * stride + t * dilation: add its share back.
    dx = np.zeros((n, L + 2 * pad, c), dtype=dout.dtype)
    span = stride * (n_out - 1) + 1
    for t in range(k):
        dx[:, t * dilation:t * dilation + span:stride] += (dout2 @ F[t].T).reshape(n, n_out, c)
    if pad:
        dx = dx[:, pad:pad + L]
    return dx, dF, dout2.sum(axis=0) if has_bias else None


def maxpool_forward(x, width, stride):
    """1-D max-pool over positions: x (n, L, c) -> (n, L_out, c); ties go to the first."""
    n, L, c = x.shape
    s0, s1, s2 = x.strides
    wins = as_strided(x, (n, pool_length(L, width, stride), width, c),
                      (s0, stride * s1, s1, s2), writeable=False)
    arg = wins.argmax(axis=2)
    kinks.note_choice("maxpool", arg)
    out = np.take_along_axis(wins, arg[:, :, None], axis=2)[:, :, 0]
    return out, (arg, x.shape, width, stride)


def maxpool_backward(dout, cache):
    """Routes each output gradient to the position that held the window's maximum."""
    arg, x_shape, width, stride = cache
    dx = np.zeros(x_shape, dtype=dout.dtype)
    span = stride * (arg.shape[1] - 1) + 1
    for t in range(width):
        dx[:, t:t + span:stride] += dout * (arg == t)
    return dx
