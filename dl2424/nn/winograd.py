"""3x3 convolution at stride 1, padding 1, by Winograd's minimal filtering F(2x2, 3x3).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016), eq. 8: each 2x2
tile of the output is Y = A^T [(G g G^T) * (B^T d B)] A, with d the 4x4 input tile around it
(tiles overlap by 2), g a 3x3 filter and * the elementwise product. Summed over input
channels, the elementwise products become 16 matrix products, one per position (k, l) of the
4x4 transformed tile:

    M[k, l] (P, F) = V[k, l] (P, C) @ U[k, l] (F, C)^T,   P = n (H/2) (W/2) tiles,

with V = B^T d B and U = G g G^T. That is 16 P C F multiplications against 36 P C F for the
convolution as one product with the im2col matrix (9 C columns, 4 P rows): 2.25x fewer.
B and A have entries 0 and +-1, so the tile transforms are sums and differences of whole
strided views: memory-bound passes, which pay for themselves when C and F are large (the
deep layers of the UvA network); `pays` says where. The filter transform is one product
with a (16, 9) matrix.

The backward pass is the adjoint of the same steps (eq. 8 is linear in d and in g):
dM = A dY A^T, dV[k, l] = dM[k, l] U[k, l], dU[k, l] = dM[k, l]^T V[k, l], then dx is
B dV B^T added back onto the overlapping tiles and dW = G^T dU G. Every step is exact
algebra, so the results equal the direct convolution's up to rounding.

Layouts: x (n, H, W, C) and out (n, H, W, F) are NHWC with H and W even; filters W are
(F, C, 3, 3) held with C innermost (conv2d.channels_last_filters); U and dU are
(F, 16, C), entry 4k + l of each filter's 4x4 transform; V and dM are
(4, 4, n, H/2, W/2, C or F).
"""

from __future__ import annotations

import numpy as np

from .conv2d import block, pad_nhwc

# B^T and A^T of eq. 8 (entries 0 and +-1: the tile transforms are sums and differences),
# and the filter transform G g G^T as one (16, 9) matrix on the flattened 3x3 filter:
# U[4k + l] = sum_ij G[k, i] G[l, j] g[3i + j], the Kronecker product of G with itself.
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
GG = np.kron(G, G)

# Where Winograd beats im2col (`benchmarks/bench_winograd.py`, layer by layer, forward and
# backward): at least MIN_CHANNELS input channels and filters (0.75-0.9x of im2col's time
# on maps of 4x4 to 32x32), and maps of at least MIN_SIDE x MIN_SIDE. With fewer channels
# the transforms (memory-bound passes over 4x the input and output) cost more than the
# 2.25x fewer multiplications save; on 2x2 maps (one tile per image) the products have too
# few rows, and the filter transform (16 F C entries per update) too few tiles to serve.
MIN_CHANNELS = 128
MIN_SIDE = 4

# Entries of dU per block of filters in filter_gradient_from_tiles (2 MB in float32).
DU_BLOCK = 2**19


def pays(x_shape, W_shape):
    """Whether winograd_forward is the faster way to run this convolution: a 3x3 kernel on
    an even-sized map of at least MIN_SIDE x MIN_SIDE, with at least MIN_CHANNELS input
    channels and filters."""
    n, H, W, C = x_shape
    F, _, kh, kw = W_shape
    return ((kh, kw) == (3, 3) and H % 2 == 0 and W % 2 == 0 and min(H, W) >= MIN_SIDE
            and min(C, F) >= MIN_CHANNELS)


def combine(mat, parts, outs):
    """outs[k] = sum_i mat[k, i] parts[i] for a matrix of 0 and +-1, in place in outs."""
    for row, out in zip(mat, outs, strict=True):
        terms = sorted(((c, p) for c, p in zip(row, parts, strict=True) if c),
                       key=lambda t: -t[0])  # a positive term first, when there is one
        (c0, p0), *rest = terms
        if rest and c0 > 0:  # out = p0 +- p1 in one pass
            (c1, p1), *rest = rest
            (np.add if c1 > 0 else np.subtract)(p0, p1, out=out)
        elif c0 > 0:
            np.copyto(out, p0)
        else:
            np.negative(p0, out=out)
        for c, p in rest:
            (np.add if c > 0 else np.subtract)(out, p, out=out)
    return outs


def _even_odd(x, axis, n_tiles, width):
    """The `width` overlapping views of x along `axis` that start at the tiles' offsets
    2t + i, i < width, t < n_tiles."""
    views = []
    for i in range(width):
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(i, i + 2 * n_tiles - 1, 2)
        views.append(x[tuple(idx)])
    return views


def _filter_matrix(W):
    """W (F, C, 3, 3) as (F, 9, C), the flattened filters with C innermost: a view when W
    holds C innermost in memory (conv2d.channels_last_filters), else a copy."""
    F, C = W.shape[:2]
    return W.transpose(0, 2, 3, 1).reshape(F, 9, C)


def filter_transform(W, out=None):
    """U = G g G^T for every filter g: (F, 16, C), entry 4k + l of the 4x4 transform."""
    return np.matmul(GG.astype(W.dtype), _filter_matrix(W), out=out)


def filter_gradient(dU, out=None):
    """dW = G^T dU G, the adjoint of filter_transform: dU (F, 16, C) -> (F, C, 3, 3) held
    with C innermost in memory. `out`: optional (F, C, 3, 3) buffer."""
    F, _, C = dU.shape
    if out is not None and out.transpose(0, 2, 3, 1).flags.c_contiguous:
        np.matmul(GG.T.astype(dU.dtype), dU, out=_filter_matrix(out))
        return out
    dW = np.matmul(GG.T.astype(dU.dtype), dU).reshape(F, 3, 3, C).transpose(0, 3, 1, 2)
    if out is None:
        return dW
    np.copyto(out, dW)
    return out


def input_transform(xp, V, rows):
    """V = B^T d B for every 4x4 tile d of the padded input xp (n, H + 2, W + 2, C).
    V: (4, 4, n, H/2, W/2, C); rows: (4, n, H/2, W + 2, C) work buffer (B^T d, every
    column)."""
    th, tw = V.shape[3:5]
    combine(BT, _even_odd(xp, 1, th, 4), list(rows))  # rows[k]: (n, th, W + 2, C)
    combine(BT, _even_odd(rows, 3, tw, 4), [V[:, l] for l in range(4)])  # every k at once
    return V


def input_transform_adjoint(dV, drows, dxp, work=None):
    """The adjoint of input_transform: B dV B^T of each tile, added onto the padded input
    (tiles overlap by 2 rows and 2 columns). drows, dxp: like rows and xp, overwritten;
    work: see conv2d.block."""
    _combine_overlapping(BT.T, [dV[:, l] for l in range(4)], drows, 3, work)  # every k
    return _combine_overlapping(BT.T, list(drows), dxp, 1, work)


def _combine_overlapping(mat, parts, out, axis, work):
    """out = the adjoint of _even_odd(out, axis, n, 4) applied to combine(mat, parts): tile
    t's entries i = 0..3 (combine's outputs) land on entry 2t + i along axis, and tile t's
    entries 2, 3 are tile t + 1's entries 0, 1, so those are added."""
    n = parts[0].shape[axis]
    even, odd = _even_odd(out, axis, n + 1, 2)  # n + 1 entries each
    first, rest, last = ([slice(None)] * out.ndim for _ in range(3))
    first[axis], rest[axis], last[axis] = slice(0, n), slice(1, n + 1), n
    combine(mat[:2], parts, [even[tuple(first)], odd[tuple(first)]])
    later = block(work, (2, *parts[0].shape), out.dtype, "overlap")
    combine(mat[2:], parts, list(later))
    for view, tiles in ((even, later[0]), (odd, later[1])):
        view[tuple(last)] = 0
        view[tuple(rest)] += tiles
    return out


def output_transform(M, out, work=None):
    """out (n, H, W, F) = A^T M A for every tile; M (4, 4, n, H/2, W/2, F)."""
    half = block(work, (2, *M.shape[1:]), M.dtype, "half")  # (p, l, ...)
    combine(AT, list(M), list(half))
    combine(AT, [half[:, l] for l in range(4)], _output_tiles(out))  # every p at once
    return out


def _output_tiles(out):
    """The entries q = 0, 1 of every 2x2 tile of out (n, H, W, F), as two views
    (p, n, H/2, W/2, F)."""
    n, H, W, F = out.shape
    tiles = out.reshape(n, H // 2, 2, W // 2, 2, F)
    return [tiles[:, :, :, :, q].transpose(2, 0, 1, 3, 4) for q in range(2)]


def output_gradient(dout, dM, work=None):
    """The adjoint of output_transform: dM = A dY A^T for every 2x2 tile dY of dout
    (n, H, W, F); dM (4, 4, n, H/2, W/2, F)."""
    half = block(work, (4, 2, *dM.shape[2:]), dM.dtype, "half")  # (l, p, ...)
    combine(AT.T, _output_tiles(dout), list(half))  # every p at once
    combine(AT.T, [half[:, p] for p in range(2)], list(dM))  # every l at once
    return dM


def products(V, U, M):
    """M[k, l] = V[k, l] @ U[:, 4k + l]^T: V (4, 4, ..., C), U (F, 16, C), M (4, 4, ..., F)."""
    C, F = V.shape[-1], U.shape[0]
    np.matmul(V.reshape(16, -1, C), U.transpose(1, 2, 0), out=M.reshape(16, -1, F))
    return M


def filter_products(dM, V, out=None):
    """dU[:, 4k + l] = dM[k, l]^T V[k, l], the gradient of U over the tiles of dM and V;
    dM may hold some of the filters (dM[..., f]), which give those rows of dU."""
    C, F = V.shape[-1], dM.shape[-1]
    out = np.empty((F, 16, C), V.dtype) if out is None else out
    np.matmul(dM.reshape(16, -1, F).transpose(0, 2, 1), V.reshape(16, -1, C),
              out=out.transpose(1, 0, 2))
    return out


def filter_gradient_from_tiles(dM, V, out=None, work=None):
    """dW (F, C, 3, 3) (C innermost in memory; `out`: optional buffer) from dM
    (4, 4, ..., F) and V (4, 4, ..., C): filter_products, then filter_gradient, a block of
    filters at a time, so that dU (16 C entries per filter) stays small. work: see
    conv2d.block."""
    F, C = dM.shape[-1], V.shape[-1]
    out = np.empty((F, 3, 3, C), V.dtype).transpose(0, 3, 1, 2) if out is None else out
    step = max(1, DU_BLOCK // (16 * C))
    for s in range(0, F, step):
        f = slice(s, min(s + step, F))
        dU = block(work, (f.stop - s, 16, C), V.dtype, "dU")
        filter_gradient(filter_products(dM[..., f], V, dU), out[f])
    return out


def tile_shape(x_shape, channels):
    """The shape of V (channels C) or M (channels F) for an NHWC input of x_shape."""
    n, H, W, _ = x_shape
    return (4, 4, n, H // 2, W // 2, channels)


def rows_shape(x_shape):
    """The shape of input_transform's rows buffer for an NHWC input of x_shape."""
    n, H, W, C = x_shape
    return (4, n, H // 2, W + 2, C)


def winograd_forward(x, W, b=None, U=None, xp=None, V=None, out=None, work=None):
    """The 3x3, stride 1, padding 1 convolution of x (n, H, W, C) (H, W even) with W
    (F, C, 3, 3) plus b (F,) or None. U: filter_transform(W) if already made; xp, V, out:
    optional buffers (xp: its border is written; V shaped as tile_shape says); work: see
    conv2d.block. Returns (out, cache); V is kept in the cache, until the next call with the
    same buffers."""
    n, H, Wd, C = x.shape
    F = W.shape[0]
    U = filter_transform(W) if U is None else U
    xp = pad_nhwc(x, 1, xp)
    V = np.empty(tile_shape(x.shape, C), x.dtype) if V is None else V
    rows = block(work, rows_shape(x.shape), x.dtype, "rows")
    M = block(work, tile_shape(x.shape, F), x.dtype, "products")
    out = np.empty((n, H, Wd, F), x.dtype) if out is None else out
    output_transform(products(input_transform(xp, V, rows), U, M), out, work)
    if b is not None:
        out += b
    return out, (x.shape, U, V, b is not None)


def input_gradient(dM, U, x_shape, dx=None, work=None):
    """dx (n, H, W, C) from dM = output_gradient(dout) and U: dV[k, l] = dM[k, l] U[:, 4k + l],
    then the adjoint of the input transform. dx: optional output buffer; work: see
    conv2d.block."""
    n, H, Wd, C = x_shape
    F = U.shape[0]
    # the forward pass's blocks of the same roles (never in use at the same time)
    dV = block(work, tile_shape(x_shape, C), dM.dtype, "products")
    np.matmul(dM.reshape(16, -1, F), U.transpose(1, 0, 2), out=dV.reshape(16, -1, C))
    drows = block(work, rows_shape(x_shape), dM.dtype, "rows")
    dxp = block(work, (n, H + 2, Wd + 2, C), dM.dtype, "dxp")
    input_transform_adjoint(dV, drows, dxp, work)
    dx = np.empty(x_shape, dM.dtype) if dx is None else dx
    np.copyto(dx, dxp[:, 1 : H + 1, 1 : Wd + 1])
    return dx


def winograd_backward(dout, cache, input_grad=True):
    """Gradients of winograd_forward: (dx, or None without input_grad, dW, db or None)."""
    x_shape, U, V, has_bias = cache
    dM = output_gradient(dout, np.empty(tile_shape(x_shape, U.shape[0]), dout.dtype))
    dW = filter_gradient_from_tiles(dM, V)
    db = dout.reshape(-1, U.shape[0]).sum(axis=0) if has_bias else None
    dx = input_gradient(dM, U, x_shape) if input_grad else None
    return dx, dW, db
