"""Winograd's F(2x2, 3x3) convolution against the direct loops and im2col, and its gradients."""

import numpy as np
import pytest

from dl2424.nn import conv2d as cv
from dl2424.nn import winograd as wg

from .test_conv2d import assert_layer_gradients, conv_reference

# (n, H, W, C, F): square and not, one tile per image (2 x 2), channels more or fewer than
# filters
CASES = [(2, 4, 6, 3, 5), (3, 2, 2, 4, 2), (1, 8, 4, 7, 3), (2, 6, 6, 2, 6)]


def _inputs(case, seed, dtype=np.float64):
    n, H, W, C, F = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, H, W, C)).astype(dtype)
    filters = cv.channels_last_filters(rng.standard_normal((F, C, 3, 3)).astype(dtype))
    return x, filters, rng.standard_normal(F).astype(dtype)


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_loops(case):
    x, W, b = _inputs(case, 1)
    for bias in (b, None):
        out, _ = wg.winograd_forward(x, W, bias)
        expected = conv_reference(x.transpose(0, 3, 1, 2), W, bias, 1, 1).transpose(0, 2, 3, 1)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_gradients(case):
    assert_layer_gradients(wg.winograd_forward, wg.winograd_backward, _inputs(case, 2))


@pytest.mark.parametrize("case", CASES)
def test_backward_equals_the_im2col_convolution(case):
    """The adjoint steps give the im2col convolution's gradients up to rounding; dW keeps
    the filters' layout (C innermost in memory)."""
    x, W, b = _inputs(case, 4)
    out, cache = wg.winograd_forward(x, W, b)
    expected_out, expected_cache = cv.conv2d_nhwc_forward(x, W, b, 1, 1)
    np.testing.assert_allclose(out, expected_out, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    for got, expected in zip(wg.winograd_backward(dout, cache),
                             cv.conv2d_nhwc_backward(dout, expected_cache), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    dW = wg.winograd_backward(dout, cache, input_grad=False)[1]
    assert dW.transpose(0, 2, 3, 1).flags.c_contiguous
    assert wg.winograd_backward(dout, cache, input_grad=False)[0] is None


def test_float32_stays_float32_and_near_the_direct_convolution():
    x, W, b = _inputs((4, 8, 8, 16, 8), 6, np.float32)
    out, cache = wg.winograd_forward(x, W, b)
    expected, expected_cache = cv.conv2d_nhwc_forward(x, W, b, 1, 1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    dout = np.ones_like(out)
    for got, want in zip(wg.winograd_backward(dout, cache),
                         cv.conv2d_nhwc_backward(dout, expected_cache), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_buffers_and_work_arrays_reused_give_the_same_results():
    """Buffers given once and kept (as the image ConvNet keeps them across updates), with
    the named work arrays shared by calls of other sizes, change nothing."""
    work = {}
    for case in (CASES[0], CASES[3], CASES[0]):
        x, W, b = _inputs(case, 7)
        U = np.empty((W.shape[0], 16, W.shape[1]))
        xp = np.zeros((x.shape[0], x.shape[1] + 2, x.shape[2] + 2, x.shape[3]))
        V = np.empty(wg.tile_shape(x.shape, x.shape[3]))
        out, cache = wg.winograd_forward(x, W, b, wg.filter_transform(W, U), xp, V,
                                         work=work)
        dout = np.random.default_rng(8).standard_normal(out.shape)
        dM = wg.output_gradient(dout, np.empty(wg.tile_shape(x.shape, W.shape[0])), work)
        dx = wg.input_gradient(dM, U, x.shape, np.empty_like(x), work)
        dW = wg.filter_gradient(wg.filter_products(dM, V), np.empty_like(W))
        expected = wg.winograd_backward(dout, wg.winograd_forward(x, W, b)[1])
        np.testing.assert_array_equal(out, wg.winograd_forward(x, W, b)[0])
        np.testing.assert_array_equal(dx, expected[0])
        np.testing.assert_array_equal(dW, expected[1])


def test_filter_gradient_into_a_buffer_of_either_layout():
    rng = np.random.default_rng(9)
    dU = rng.standard_normal((3, 16, 2))
    expected = wg.filter_gradient(dU)
    for out in (np.empty((3, 2, 3, 3)), cv.channels_last_filters(np.empty((3, 2, 3, 3)))):
        np.testing.assert_array_equal(wg.filter_gradient(dU, out), expected)


def test_pays_only_for_wide_layers_on_even_maps_of_4_or_more():
    assert wg.pays((32, 8, 8, 128), (256, 128, 3, 3))  # UvA's third conv
    assert wg.pays((32, 4, 4, 512), (512, 512, 3, 3))
    assert wg.pays((32, 32, 32, 128), (128, 128, 3, 3))
    assert not wg.pays((32, 2, 2, 512), (512, 512, 3, 3))  # one tile per image
    assert not wg.pays((32, 16, 16, 64), (128, 64, 3, 3))  # too few channels
    assert not wg.pays((32, 8, 8, 256), (64, 256, 3, 3))  # too few filters
    assert not wg.pays((32, 7, 8, 256), (256, 256, 3, 3))  # odd height
    assert not wg.pays((32, 8, 8, 256), (256, 256, 5, 5))


def test_filter_gradient_block_by_block_equals_the_whole(monkeypatch):
    """dW a few filters at a time (dU kept small) is the dW of all filters at once."""
    x, W, b = _inputs((2, 4, 4, 3, 5), 10)
    _, (_, _, V, _) = wg.winograd_forward(x, W, b)
    dout = np.random.default_rng(11).standard_normal((2, 4, 4, 5))
    dM = wg.output_gradient(dout, np.empty(wg.tile_shape(x.shape, 5)))
    whole = wg.filter_gradient(wg.filter_products(dM, V))
    monkeypatch.setattr(wg, "DU_BLOCK", 2 * 16 * 3)  # two filters per block: 2, 2, then 1
    np.testing.assert_allclose(wg.filter_gradient_from_tiles(dM, V, work={}), whole,
                               rtol=1e-13, atol=1e-13)


def test_combine_takes_any_signs():
    """combine is the matrix product for every pattern of 0 and +-1 in a row (one term, a
    negative first term, no positive term), into views of one array."""
    mat = np.array([[1, -1, 0], [-1, 0, -1], [0, 0, 1], [-1, 1, 1], [0, -1, 0]])
    parts = np.random.default_rng(12).standard_normal((3, 4, 5))
    outs = np.empty((5, 4, 5))
    wg.combine(mat, list(parts), list(outs))
    np.testing.assert_allclose(outs, np.tensordot(mat, parts, axes=1), rtol=1e-14, atol=1e-15)
