"""1-D convolutions of the character ConvNet (DD2424 Assignment 3, 2020: surnames).

Two implementations of the same maths:

1. The hand-out's matrix formulation (MF, MX) and its "straightforward" network, a
   per-example teaching aid and the test oracle. One name is X (d, n_len), one one-hot
   column per character and zero columns for padding; filters are F (d, k, n_f) with
   F[:, :, i] the i-th filter; vec(.) stacks columns (MATLAB `(:)`, numpy order="F"). The
   response S (n_f, n_out) is S[i, j] = sum(X[:, window j] * F[:, :, i]), so that
   vec(S) = MF vec(X) = MX vec(F).
2. The fast path, batched, no per-example loops. A batch of names is an integer matrix
   (n, n_len) of character indices in [0, d), padded with d (an all-zero column).
   Activations are (n, length, channels), channels last, and filters are (k, c_in, c_out),
   so F.reshape(k * c_in, c_out)[:, i] == vec(F_handout[:, :, i]) and flattening an
   activation row-major gives the hand-out's vec(X^(l)).

Every layer takes stride, zero padding and dilation: window j reads the input columns
j * stride + t * dilation - padding, t = 0..k-1 (columns outside the input are zero).
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
    padding: int = 0
    dilation: int = 1
    pool: int = 1
    pool_stride: int | None = None  # None: equal to pool (non-overlapping windows)

    @property
    def pool_step(self) -> int:
        return self.pool_stride or self.pool


def conv_length(n_len, k, stride=1, padding=0, dilation=1):
    """Number of output positions of a conv over n_len input columns."""
    return (n_len + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def pool_length(n_len, width, stride):
    return (n_len - width) // stride + 1


def layer_length(n_len, k, spec: ConvSpec):
    """Output length of conv + ReLU + pool."""
    n_out = conv_length(n_len, k, spec.stride, spec.padding, spec.dilation)
    return pool_length(n_out, spec.pool, spec.pool_step) if spec.pool > 1 else n_out


# ---------------------------------------------------------------------------------------
# 1. The hand-out's matrix formulation


def vec(A):
    """Column-major stacking, MATLAB's A(:)."""
    return A.reshape(-1, order="F")


def filters_to_handout(F):
    """Fast-path filters (k, d, n_f) -> the hand-out's (d, k, n_f) (a view)."""
    return F.transpose(1, 0, 2)


def filters_from_handout(F):
    """The hand-out's filters (d, k, n_f) -> fast-path (k, d, n_f), contiguous."""
    return np.ascontiguousarray(F.transpose(1, 0, 2))


def make_mf_matrix(F, n_len, stride=1, padding=0, dilation=1):
    """The hand-out's MakeMFMatrix: the conv as a matrix acting on vec(X).

    Block row j (n_f rows) holds V_F, the (n_f, d*k) matrix whose row i is vec(F_i)^T,
    split into k blocks of d columns placed at the input columns of window j.
    With the defaults it is block-Toeplitz, V_F shifted by d columns per block row.

    Inputs:
    - F: (d, k, n_f) filters
    - n_len: number of input columns
    Returns:
    - MF: (n_out * n_f, n_len * d); n_out = n_len - k + 1 with the defaults
    """
    d, k, n_f = F.shape
    n_out = conv_length(n_len, k, stride, padding, dilation)
    V_F = F.reshape(d * k, n_f, order="F").T
    MF = np.zeros((n_out * n_f, n_len * d), dtype=F.dtype)
    for j in range(n_out):
        for t in range(k):
            c = j * stride + t * dilation - padding
            if 0 <= c < n_len:
                MF[j * n_f:(j + 1) * n_f, c * d:(c + 1) * d] = V_F[:, t * d:(t + 1) * d]
    return MF


def _windows_vec(x_vec, d, k, stride, padding, dilation):
    """(n_out, d*k): row j is vec of the d x k window j of X (zero-padded)."""
    X = x_vec.reshape(d, -1, order="F")
    n_out = conv_length(X.shape[1], k, stride, padding, dilation)
    Xp = np.pad(X, ((0, 0), (padding, padding)))
    cols = np.arange(n_out)[:, None] * stride + np.arange(k) * dilation
    return Xp[:, cols].transpose(1, 2, 0).reshape(n_out, k * d)


def make_mx_matrix(x_vec, d, k, n_f, stride=1, padding=0, dilation=1):
    """The hand-out's MakeMXMatrix: the conv as a matrix acting on vec(F).

    Block row j is I_{n_f} (kron) vec(X[:, window j])^T.

    Inputs:
    - x_vec: (d * n_len,) vec(X)
    Returns:
    - MX: (n_out * n_f, k * n_f * d)
    """
    windows = _windows_vec(x_vec, d, k, stride, padding, dilation)
    n_out, dk = windows.shape
    MX = np.zeros((n_out, n_f, n_f, dk), dtype=x_vec.dtype)
    diag = np.arange(n_f)
    MX[:, diag, diag] = windows[:, None, :]  # the kron: window j on the block diagonal
    return MX.reshape(n_out * n_f, n_f * dk)


def _pool_reference(H, width, stride):
    """Max over windows of the position axis 0 of H (n_out, n_f, n); returns (out, argmax)."""
    n_out = pool_length(H.shape[0], width, stride)
    wins = np.stack([H[p * stride:p * stride + width] for p in range(n_out)])
    arg = wins.argmax(axis=1)
    return np.take_along_axis(wins, arg[:, None], axis=1)[:, 0], arg


def _unpool_reference(G, arg, n_in, stride):
    """Adjoint of _pool_reference: G[p] goes back to the row that held window p's max."""
    dH = np.zeros((n_in, *G.shape[1:]), dtype=G.dtype)
    f, b = np.indices(G.shape[1:])
    for p in range(G.shape[0]):
        dH[p * stride + arg[p], f, b] += G[p]
    return dH


def reference_forward(X, Fs, W, specs, bs=None, bW=None):
    """The hand-out's forward pass, one MF matrix per layer applied to all columns.

    Inputs:
    - X: (d * n_len, n) one name per column, vec of its one-hot (d, n_len) matrix
    - Fs: list of L filters in hand-out layout (n_{l-1}, k_l, n_l), n_0 = d
    - W: (K, n_L * n_len_L)
    - specs: list of L ConvSpec
    - bs, bW: None (the hand-out has no biases) or list of (n_l,) and (K,)
    Returns:
    - P: (K, n) class probabilities
    - cache: what reference_backward needs
    """
    xs, hs, args = [X], [], []
    for l, (F, spec) in enumerate(zip(Fs, specs, strict=True)):
        n_len = xs[-1].shape[0] // F.shape[0]
        MF = make_mf_matrix(F, n_len, spec.stride, spec.padding, spec.dilation)
        S = MF @ xs[-1]
        if bs is not None:
            S += np.tile(bs[l], S.shape[0] // bs[l].size)[:, None]
        H = np.maximum(S, 0)
        hs.append(H)
        if spec.pool > 1:
            # vec order is (position, filter) per column: view it as (n_out, n_f, n)
            H3 = H.reshape(-1, F.shape[2], H.shape[1])
            pooled, arg = _pool_reference(H3, spec.pool, spec.pool_step)
            H = pooled.reshape(-1, H.shape[1])
            args.append(arg)
        else:
            args.append(None)
        xs.append(H)
    s = W @ xs[-1]
    if bW is not None:
        s += bW[:, None]
    e = np.exp(s - s.max(axis=0))
    P = e / e.sum(axis=0)
    return P, (xs, hs, args, Fs, W, specs, bs is not None)


def reference_backward(Y, P, cache):
    """The hand-out's "straightforward" gradients of the mean cross-entropy.

    G = -(Y - P); grad W = (1/n) G X^(L)^T; then per layer, per example j,
    grad vec(F_l) += (1/n) g_j^T MX(x_j^(l-1)), and G <- MF_l^T G (masked by the ReLU).

    Inputs:
    - Y: (K, n) one-hot (or soft) targets; P, cache from reference_forward
    Returns:
    - grads: dict F1..FL, W (and b1..bL, bW with biases) in hand-out layout
    """
    xs, hs, args, Fs, W, specs, has_bias = cache
    n = Y.shape[1]
    G = (P - Y) / n
    grads = {"W": G @ xs[-1].T}
    if has_bias:
        grads["bW"] = G.sum(axis=1)
    G = W.T @ G
    for l in reversed(range(len(Fs))):
        F, spec, H = Fs[l], specs[l], hs[l]
        d, k, n_f = F.shape
        if args[l] is not None:
            G3 = G.reshape(-1, n_f, n)
            G = _unpool_reference(G3, args[l], H.shape[0] // n_f, spec.pool_step)
            G = G.reshape(-1, n)
        G = G * (H > 0)
        if has_bias:
            grads[f"b{l + 1}"] = G.reshape(-1, n_f, n).sum(axis=(0, 2))
        x_prev = xs[l]
        g_vecF = np.zeros(d * k * n_f, dtype=G.dtype)
        for j in range(n):
            MX = make_mx_matrix(x_prev[:, j], d, k, n_f, spec.stride, spec.padding,
                                spec.dilation)
            g_vecF += G[:, j] @ MX
        grads[f"F{l + 1}"] = g_vecF.reshape(d, k, n_f, order="F")
        if l > 0:
            MF = make_mf_matrix(F, x_prev.shape[0] // d, spec.stride, spec.padding,
                                spec.dilation)
            G = MF.T @ G
    return grads


# ---------------------------------------------------------------------------------------
# 2. The fast path: batch rows, channels last


@lru_cache(maxsize=64)
def _window_columns(n_len, k, stride, padding, dilation):
    """(n_out, k) column of the zero-padded input read by offset t of window j."""
    n_out = conv_length(n_len, k, stride, padding, dilation)
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


def onehot_im2col(idx, k, d, stride=1, padding=0, dilation=1, dtype=np.float64):
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
    cols = _window_columns(n_len, k, stride, padding, dilation)
    indptr, ones, offsets = _csr_frame(n * cols.shape[0], k, d, np.dtype(dtype))
    if padding:
        idx = np.pad(idx, ((0, 0), (padding, padding)), constant_values=d)
    code = idx[:, cols] + offsets
    return sp.csr_matrix((ones, code.reshape(-1), indptr), shape=(indptr.size - 1, k * (d + 1)))


def onehot_conv_forward(idx, F, b=None, stride=1, padding=0, dilation=1):
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
    A = onehot_im2col(idx, k, d, stride, padding, dilation, F.dtype)
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


def im2col(x, k, stride=1, padding=0, dilation=1):
    """Windows of x (n, L, c) as rows: (n * n_out, k * c), row (b, j) = x[b, window j]."""
    if padding:
        x = np.pad(x, ((0, 0), (padding, padding), (0, 0)))
    n, L, c = x.shape
    n_out = conv_length(L, k, stride, 0, dilation)
    s0, s1, s2 = x.strides
    wins = as_strided(x, (n, n_out, k, c), (s0, stride * s1, dilation * s1, s2),
                      writeable=False)
    return wins.reshape(n * n_out, k * c)


def conv_forward(x, F, b=None, stride=1, padding=0, dilation=1):
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
    cols = im2col(x, k, stride, padding, dilation)
    out = cols @ F.reshape(k * c, m)
    if b is not None:
        out += b
    return out.reshape(x.shape[0], -1, m), (cols, x.shape, F, (stride, padding, dilation),
                                            b is not None)


def conv_backward(dout, cache):
    """Returns (dx (n, L, c), dF (k, c, m), db (m,) or None without bias)."""
    cols, (n, L, c), F, (stride, padding, dilation), has_bias = cache
    k, _, m = F.shape
    n_out = dout.shape[1]
    dout2 = dout.reshape(-1, m)
    dF = (cols.T @ dout2).reshape(k, c, m)
    # Offset t of window j read input column j * stride + t * dilation: add its share back.
    dx = np.zeros((n, L + 2 * padding, c), dtype=dout.dtype)
    span = stride * (n_out - 1) + 1
    for t in range(k):
        dx[:, t * dilation:t * dilation + span:stride] += (dout2 @ F[t].T).reshape(n, n_out, c)
    if padding:
        dx = dx[:, padding:padding + L]
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
