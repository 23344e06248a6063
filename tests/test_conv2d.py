"""2-D convolution and max-pooling against direct loop references, and their gradients."""

import numpy as np
import pytest

from dl2424.gradcheck import max_rel_error, numerical_grad
from dl2424.nn import conv2d as cv

# (n, C, H, W, F, kh, kw, stride, pad): square and not, strides that do not divide evenly
CONV_CASES = [
    (2, 3, 5, 5, 4, 3, 3, 1, 1),
    (2, 2, 6, 5, 3, 3, 3, 1, 0),
    (1, 3, 7, 6, 2, 3, 2, 2, 1),
    (3, 2, 6, 6, 2, 2, 2, 2, 0),
    (2, 1, 5, 7, 3, 1, 1, 1, 0),
    (1, 2, 8, 8, 2, 5, 5, 3, 2),
]


def conv_reference(x, W, b, stride, pad):
    """The definition, one output pixel at a time."""
    n, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (Wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, F, Ho, Wo))
    for e in range(n):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[e, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    out[e, f, i, j] = np.sum(patch * W[f]) + (b[f] if b is not None else 0)
    return out


def pool_reference(x, k, stride, pad):
    n, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = np.zeros((n, C, Ho, Wo))
    for e in range(n):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    out[e, c, i, j] = xp[e, c, i * stride : i * stride + k,
                                         j * stride : j * stride + k].max()
    return out


def _conv_inputs(case, seed):
    n, C, H, Wd, F, kh, kw, stride, pad = case
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, C, H, Wd)), rng.standard_normal((F, C, kh, kw)),
            rng.standard_normal(F), stride, pad)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_loops(case):
    x, W, b, stride, pad = _conv_inputs(case, 1)
    out, _ = cv.conv2d_forward(x, W, b, stride, pad)
    np.testing.assert_allclose(out, conv_reference(x, W, b, stride, pad), rtol=1e-12, atol=1e-12)
    out_nobias, _ = cv.conv2d_forward(x, W, None, stride, pad)
    np.testing.assert_allclose(out_nobias, conv_reference(x, W, None, stride, pad),
                               rtol=1e-12, atol=1e-12)


def assert_layer_gradients(forward, backward, inputs):
    """backward(dout, cache) gives, for each of the arrays `inputs`, the gradient of
    sum(forward(*inputs)[0] * dout) (centred differences, relative error below 1e-6)."""
    out, cache = forward(*inputs)
    dout = np.random.default_rng(3).standard_normal(out.shape)

    def f():
        return float(np.sum(forward(*inputs)[0] * dout))

    for analytic, arr in zip(backward(dout, cache), inputs, strict=True):
        assert analytic.shape == arr.shape
        assert max_rel_error(analytic, numerical_grad(f, arr)) < 1e-6


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gradients(case):
    x, W, b, stride, pad = _conv_inputs(case, 2)
    assert_layer_gradients(lambda *a: cv.conv2d_forward(*a, stride, pad), cv.conv2d_backward,
                           (x, W, b))


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_from_channel_planes_matches_loops_and_its_filter_gradient(case):
    """conv2d_planes_forward (NCHW input, im2col from channel planes, NHWC output) is the
    convolution, and planes_filter_grad its filter gradient (numerically checked)."""
    x, W, b, stride, pad = _conv_inputs(case, 6)
    for bias in (b, None):
        out, _ = cv.conv2d_planes_forward(x, W, bias, stride, pad)
        np.testing.assert_allclose(out.transpose(0, 3, 1, 2),
                                   conv_reference(x, W, bias, stride, pad),
                                   rtol=1e-12, atol=1e-12)
    out, (_, cols, *_) = cv.conv2d_planes_forward(x, W, None, stride, pad)
    dout = np.random.default_rng(7).standard_normal(out.shape)

    def f():
        return float(np.sum(cv.conv2d_planes_forward(x, W, None, stride, pad)[0] * dout))

    dW = cv.planes_filter_grad(dout.reshape(-1, W.shape[0]), cols).T.reshape(W.shape)
    assert max_rel_error(dW, numerical_grad(f, W)) < 1e-6


def test_conv_without_bias_or_input_gradient():
    x, W, _, stride, pad = _conv_inputs(CONV_CASES[0], 4)
    out, cache = cv.conv2d_forward(x, W, None, stride, pad)
    dout = np.ones_like(out)
    dx, dW, db = cv.conv2d_backward(dout, cache, input_grad=False)
    assert dx is None and db is None
    np.testing.assert_allclose(dW, cv.conv2d_backward(dout, cache)[1], rtol=1e-14)


def test_conv_float32_stays_float32():
    x, W, b, stride, pad = (a.astype(np.float32) if isinstance(a, np.ndarray) else a
                            for a in _conv_inputs(CONV_CASES[2], 5))
    out, cache = cv.conv2d_forward(x, W, b, stride, pad)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert all(g.dtype == np.float32 for g in cv.conv2d_backward(out, cache))


POOL_CASES = [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (3, 3, 0), (4, 2, 2)]
# odd sides take the general separable pool; even ones the stride-2 fast path (cv.fast_pool)
POOL_SIDES = [(7, 9), (6, 8)]


@pytest.mark.parametrize("side", POOL_SIDES)
@pytest.mark.parametrize("k,stride,pad", POOL_CASES)
def test_maxpool_matches_loops(k, stride, pad, side):
    x = np.random.default_rng(6).standard_normal((2, 3, *side))
    out, _ = cv.maxpool_forward(x, k, stride, pad)
    np.testing.assert_array_equal(out, pool_reference(x, k, stride, pad))


@pytest.mark.parametrize("overlap", [False, True])
def test_stride2_pool_without_masks_matches_loops(overlap):
    """masks=False (evaluation) takes the same maxima and keeps no cache."""
    x = np.random.default_rng(8).standard_normal((2, 3, 6, 8))
    k, pad = (3, 1) if overlap else (2, 0)
    out, cache = cv.maxpool2_nhwc_forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                                          overlap, masks=False)
    assert cache is None
    np.testing.assert_array_equal(out.transpose(0, 3, 1, 2), pool_reference(x, k, 2, pad))


def test_parity_order_lists_each_rows_even_pixels_then_its_odd_ones():
    x = np.arange(2 * 3 * 6 * 2).reshape(2, 3, 6, 2)
    p = cv.parity_order(x)
    np.testing.assert_array_equal(p[:, :, :3], x[:, :, 0::2])
    np.testing.assert_array_equal(p[:, :, 3:], x[:, :, 1::2])
    np.testing.assert_array_equal(cv.parity_order(p, inverse=True), x)


@pytest.mark.parametrize("overlap", [False, True])
def test_stride2_pool_of_a_map_in_parity_order(overlap):
    """A map in parity order pools to the same maxima (its output in pixel order) and
    routes each window's gradient to the same input, ties included, back in parity order."""
    rng = np.random.default_rng(9)
    x = rng.integers(0, 3, (2, 6, 8, 3)).astype(float)  # few values: many ties
    out, cache = cv.maxpool2_nhwc_forward(x, overlap)
    got, got_cache = cv.maxpool2_nhwc_forward(cv.parity_order(x), overlap, parity=True)
    np.testing.assert_array_equal(got, out)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(cv.maxpool2_nhwc_backward(dout, got_cache),
                                  cv.parity_order(cv.maxpool2_nhwc_backward(dout, cache)))
    evaluated, _ = cv.maxpool2_nhwc_forward(cv.parity_order(x), overlap, masks=False,
                                            parity=True)
    np.testing.assert_array_equal(evaluated, out)


@pytest.mark.parametrize("planes", [False, True])
@pytest.mark.parametrize("case", [(2, 3, 6, 8, 4, 3, 3, 1, 1), (2, 3, 8, 8, 4, 3, 3, 2, 1)])
def test_conv_writing_parity_order_gives_the_same_numbers(case, planes):
    """A conv asked for parity order (for the 2-wide pool after it) computes the same output,
    in that order; its backward takes dout in that order and gives the same dx, dW, db (at
    stride 2 through col2im)."""
    x, W, b, stride, pad = _conv_inputs(case, 11)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def forward(parity):
        if planes:
            return cv.conv2d_planes_forward(x, W, b, stride, pad, parity=parity)
        return cv.conv2d_nhwc_forward(x_nhwc, W, b, stride, pad, parity=parity)

    (out, cache), (got, got_cache) = forward(False), forward(True)
    np.testing.assert_allclose(got, cv.parity_order(out), rtol=1e-13, atol=1e-13)
    dout = np.random.default_rng(12).standard_normal(out.shape)
    F = W.shape[0]
    if planes:
        expected = [cv.planes_filter_grad(dout.reshape(-1, F), cache[1])]
        grads = [cv.planes_filter_grad(cv.parity_order(dout).reshape(-1, F), got_cache[1])]
    else:
        expected = cv.conv2d_nhwc_backward(dout, cache)
        grads = cv.conv2d_nhwc_backward(cv.parity_order(dout), got_cache)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("side", [(6, 7), (6, 8)])
@pytest.mark.parametrize("k,stride,pad", POOL_CASES)
def test_maxpool_gradients(k, stride, pad, side):
    # distinct random values: no ties, and h = 1e-5 never changes which input wins
    rng = np.random.default_rng(7)
    shape = (2, 2, *side)
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.random(shape) * 1e-2
    out, cache = cv.maxpool_forward(x, k, stride, pad)
    dout = rng.standard_normal(out.shape)
    num = numerical_grad(lambda: float(np.sum(cv.maxpool_forward(x, k, stride, pad)[0] * dout)),
                         x)
    assert max_rel_error(cv.maxpool_backward(dout, cache), num) < 1e-6


@pytest.mark.parametrize("k,stride,pad", [(2, 2, 0), (3, 2, 1)])
def test_maxpool_ties_route_to_one_input(k, stride, pad):
    """All-equal windows (as after a ReLU): each window's gradient goes to one element, its
    first in row-major order."""
    x = np.zeros((1, 1, 4, 4))
    out, cache = cv.maxpool_forward(x, k, stride, pad)
    dout = np.arange(1.0, out.size + 1).reshape(out.shape)
    dx = cv.maxpool_backward(dout, cache)
    assert dx.sum() == dout.sum()
    expect = np.zeros_like(x)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            # first real (non-padding) element of window (i, j)
            expect[0, 0, max(i * stride - pad, 0), max(j * stride - pad, 0)] += dout[0, 0, i, j]
    np.testing.assert_array_equal(dx, expect)


def test_maxpool_rejects_padding_wider_than_half_the_window():
    with pytest.raises(ValueError, match="padding"):
        cv.maxpool_forward(np.zeros((1, 1, 4, 4)), 2, 2, 2)


def test_window_larger_than_input_is_an_error():
    with pytest.raises(ValueError, match="larger than input"):
        cv.conv2d_forward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)), None, 1, 0)


def test_flatten_round_trip():
    x = np.arange(2 * 3 * 2 * 2.0).reshape(2, 3, 2, 2)
    out, shape = cv.flatten_forward(x)
    assert out.shape == (2, 12)
    np.testing.assert_array_equal(out[1], x[1].ravel())  # channel-major, as CIFAR rows
    np.testing.assert_array_equal(cv.flatten_backward(out, shape), x)
