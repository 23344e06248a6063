"""The `cnn` image ConvNet: whole-model gradients, batch-norm state, the UvA architecture."""

import numpy as np
import pydantic
import pytest

import dl2424.models.cnn  # noqa: F401  (registers the model)
from dl2424.data.bundle import DataInfo
from dl2424.errors import UserError
from dl2424.gradcheck import max_rel_error, numerical_grad
from dl2424.nn import winograd as wg
from dl2424.registry import MODELS

UVA = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _info(side=8, K=3):
    return DataInfo((3 * side * side,), [str(k) for k in range(K)],
                    {"image_shape": [3, side, side]})


def _build(keys, info=None, dtype=np.float64, seed=0):
    p = MODELS["cnn"].params.model_validate(keys)
    return MODELS["cnn"].factory(p, info or _info(), np.dtype(dtype), np.random.default_rng(seed))


def _data(model, n, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, int(np.prod(model.image_shape))))
    return X, rng.integers(0, 3, n)


def _conv_methods(model, X):
    """How each conv layer of model computed its forward pass on X: "planes" (the images),
    "im2col" or "winograd"."""
    caches = model.forward(X, train=True)[1][0]
    return [c[-1] for (kind, _), c in zip(model.blocks, caches, strict=True) if kind == "conv"]


def _winograd_everywhere(monkeypatch):
    """Winograd for every conv it can take (3x3 on even maps; the images' conv excepted),
    however few its channels, in the models built from now on."""
    monkeypatch.setattr(wg, "MIN_CHANNELS", 1)
    monkeypatch.setattr(wg, "MIN_SIDE", 2)


def _check_all_params(model, X, y):
    """Max relative error over every param of the cost J = loss + L2 penalty (train mode,
    batch statistics, the same dropout mask for every evaluation).

    The denominator is floored at 1e-4 rather than 1e-12: with J of order 1 and h = 1e-5 the
    differences carry ~1e-11 of rounding noise, which exceeds 1e-6 relative on entries below
    ~1e-5 (e.g. weights fed by a dropped unit). Such entries are held to |a - n| < 1e-10."""

    def cost():
        loss, pen, _ = model.loss(X, y, train=True, rng=np.random.default_rng(5))
        return loss + pen

    _, _, grads = model.loss(X, y, train=True, rng=np.random.default_rng(5))
    assert set(grads) == set(model.params)
    return {k: max_rel_error(grads[k], numerical_grad(cost, w), eps=1e-4)
            for k, w in model.params.items()}


# Tolerance 1e-6 everywhere: inputs are random, so no ReLU or max-pool input sits within
# h = 1e-5 of a kink and the differences stay smooth.
@pytest.mark.parametrize("keys", [
    {"layers": [4, "M", 5, "M"], "batchnorm": True, "hidden": [6], "l2": 0.01},
    {"layers": [3, 4, "M"], "batchnorm": True, "activation": "leaky_relu", "leaky_slope": 0.1,
     "pool": {"kernel": 2, "stride": 2, "padding": 0}, "l2": 0.1},
    {"layers": [4, "M", 5], "hidden": [5, 4], "keep": 0.7, "l2": 0.01},
])
@pytest.mark.slow
def test_whole_model_gradients(keys):
    model = _build(keys)
    X, y = _data(model, 2)
    errors = _check_all_params(model, X, y)
    assert max(errors.values()) < 1e-6, errors


def _reference_scores(model, X, train, state):
    """The network composed from the public NCHW layers (conv2d_forward, batchnorm_forward,
    ReLU, maxpool_forward, flatten, affine): no deferred shifts, scales or ReLUs, no folded
    BN. `state` is a copy of the BN moving averages (train mode updates it)."""
    from dl2424.nn import batchnorm as bn
    from dl2424.nn import conv2d as cv

    P, p = model.params, model.p
    h = X.reshape(X.shape[0], *model.image_shape)
    for kind, l in model.blocks:
        if kind == "pool":
            h, _ = cv.maxpool_forward(h, p.pool.kernel, p.pool.stride, p.pool.padding)
            continue
        h, _ = cv.conv2d_forward(h, P[f"F{l}"], P.get(f"b{l}"), 1, 1)
        if p.batchnorm:
            h, _ = bn.batchnorm_forward(h, P[f"gamma{l}"], P[f"beta{l}"],
                                        bn.layer_state(state, f"bn{l}"), train, p.bn_eps,
                                        p.bn_alpha)
        h = np.maximum(h, 0)
    return h.reshape(X.shape[0], -1) @ P["W1"] + P["bW1"]


@pytest.mark.parametrize("gamma1", [[1.0, 0.5, 2.0, 0.1], [1.0, -0.5, 2.0, 0.1], None])
@pytest.mark.parametrize("pool", [{"kernel": 3, "stride": 2, "padding": 1},
                                  {"kernel": 2, "stride": 2, "padding": 0}])
def test_forward_equals_the_composed_layers(gamma1, pool):
    """Training and evaluation scores (forward and scores()) equal the plain composition of
    the layers, with every BN scale positive (the pool applies it), with one negative (BN
    normalises first), and without BN (the pool adds the conv's bias)."""
    keys = {"layers": [4, "M", 5, "M"], "batchnorm": gamma1 is not None, "pool": pool}
    model = _build(keys)
    shift = "b1" if gamma1 is None else "beta1"
    model.params[shift][:] = [0.3, -0.2, 0.1, 0.0]
    if gamma1 is not None:
        model.params["gamma1"][:] = gamma1
    X, _ = _data(model, 5)
    state = {k: v.copy() for k, v in model.state.items()}
    np.testing.assert_allclose(model.forward(X, train=True)[0],
                               _reference_scores(model, X, True, state), rtol=1e-10)
    expected = _reference_scores(model, X, False, state)
    np.testing.assert_allclose(model.forward(X, train=False)[0], expected, rtol=1e-10)
    np.testing.assert_allclose(model.scores(X), expected, rtol=1e-10)


@pytest.mark.slow
def test_gradients_with_a_negative_batchnorm_scale():
    """A BN layer before a max-pool leaves its scale to the pool only when every channel's
    scale is positive (max commutes with z -> z s for s > 0); one negative gamma takes the
    path that normalises first. Both give the cost's gradient."""
    model = _build({"layers": [4, "M", 5, "M"], "batchnorm": True, "l2": 0.01})
    model.params["gamma1"][1] = -0.7
    model.params["gamma2"][:] = [0.5, 1.5, 0.8, 1.2, 2.0]
    X, y = _data(model, 2)
    errors = _check_all_params(model, X, y)
    assert max(errors.values()) < 1e-6, errors


def test_param_layout_and_decay():
    model = _build({"layers": [4, "M", 5, "M"], "batchnorm": True, "hidden": [6]})
    assert model.params["F1"].shape == (4, 3, 3, 3)
    assert model.params["F2"].shape == (5, 4, 3, 3)
    # 8 -> 4 -> 2 with the default 3x3 stride-2 padding-1 pool: 5 * 2 * 2 features
    assert model.params["W1"].shape == (20, 6) and model.params["W2"].shape == (6, 3)
    assert "b1" not in model.params  # batch norm's beta replaces the conv bias
    assert sorted(model.decay) == ["F1", "F2", "W1", "W2"]
    assert sorted(model.state) == sorted(f"bn{l}.{k}" for l in (1, 2)
                                         for k in ("mean", "var", "count"))
    assert not set(model.state) & set(model.params)
    plain = _build({"layers": [4]})
    assert plain.params["b1"].shape == (4,) and not plain.state


def test_he_init_uses_conv_fan_in():
    model = _build({"layers": [64, 64]}, seed=3)
    F2 = model.params["F2"]  # fan_in = 64 * 3 * 3
    assert abs(F2.std() / np.sqrt(2 / (64 * 9)) - 1) < 0.03
    assert abs(F2.mean()) < 0.05 * F2.std()


def test_images_are_read_in_channel_plane_order():
    """Pixel (c, i, j) of a flat row is X[c*H*W + i*W + j]: a filter that copies the blue
    plane, read out through an identity fc layer, finds the pixel where it was put."""
    model = _build({"layers": [1]}, info=_info(side=4, K=16))
    F = np.zeros((1, 3, 3, 3))
    F[0, 2, 1, 1] = 1.0  # the centre tap of the blue plane
    model.params["F1"] = F
    model.params["W1"] = np.eye(16)
    X = np.zeros((1, 48))
    X[0, 2 * 16 + 1 * 4 + 3] = 5.0  # blue, row 1, column 3
    scores, _ = model.forward(X, train=False)
    expect = np.zeros((4, 4))
    expect[1, 3] = 5.0
    np.testing.assert_array_equal(scores.reshape(4, 4), expect)


def test_batchnorm_state_train_versus_eval():
    model = _build({"layers": [4, "M", 5, "M"], "batchnorm": True})
    X, y = _data(model, 6)
    before = {k: v.copy() for k, v in model.state.items()}
    s_eval0 = model.scores(X)
    model.forward(X, train=True)
    assert int(model.state["bn1.count"]) == 1
    assert not np.allclose(model.state["bn1.mean"], before["bn1.mean"])
    # training mode couples the examples; evaluation mode does not and changes no state
    train_1, _ = model.forward(X[:1], train=True)
    train_all, _ = model.forward(X, train=True)
    assert not np.allclose(train_1, train_all[:1])
    snapshot = {k: v.copy() for k, v in model.state.items()}
    eval_all = model.scores(X)
    np.testing.assert_allclose(model.scores(X[:1]), eval_all[:1], rtol=1e-12)
    np.testing.assert_allclose(model.scores(X, batch_size=2), eval_all, rtol=1e-12)
    for k, v in snapshot.items():
        np.testing.assert_array_equal(model.state[k], v)
    assert not np.allclose(eval_all, s_eval0)  # the moving averages are used


@pytest.mark.parametrize("keys", [
    {"layers": [4, 5, "M", 6, "M"], "batchnorm": True, "hidden": [6]},
    {"layers": [4, "M", 5, "M"], "batchnorm": True,
     "pool": {"kernel": 2, "stride": 2, "padding": 0}},
    {"layers": [4, 5, "M"], "batchnorm": True, "activation": "leaky_relu"},
    {"layers": [4, "M", 5, "M"]},
])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("winograd", [False, True])
def test_scores_fold_batchnorm_into_the_filters(keys, dtype, rtol, winograd, monkeypatch):
    """scores() folds each BN layer into its conv (filters W scale, bias shift; through
    Winograd layers, their transform made once for all chunks) and pools without winner
    masks; forward(train=False) normalises the maps: equal up to rounding, after updates
    have moved the moving averages and the BN parameters away from (0, 1)."""
    if winograd:
        _winograd_everywhere(monkeypatch)
    model = _build(keys, dtype=dtype)
    assert ("winograd" in model.conv_method.values()) == winograd
    X, y = _data(model, 9)
    X = X.astype(dtype)
    for _ in range(3):
        _, _, grads = model.loss(X, y, train=True)
        for k, w in model.params.items():
            w -= dtype(0.05) * grads[k]
    folded = model.scores(X, batch_size=4)
    direct, _ = model.forward(X, train=False)
    assert folded.dtype == dtype
    np.testing.assert_allclose(folded, direct, rtol=rtol, atol=rtol * np.abs(direct).max())
    assert model._scoring is None  # a later forward normalises, and keeps its masks


def test_training_reduces_the_loss():
    model = _build({"layers": [4, "M", 8, "M"], "batchnorm": True, "hidden": [16]})
    X, y = _data(model, 12)
    first = None
    for _ in range(30):
        loss, _, grads = model.loss(X, y, train=True)
        first = loss if first is None else first
        for k, w in model.params.items():
            w -= 0.1 * grads[k]
    assert loss < 0.5 * first


def test_uva_vgg_runs_in_float32():
    """UvA A1 exercise 4: conv-BN-ReLU 64-M-128-M-256-256-M-512-512-M-512-512-M, 512 -> 10."""
    info = _info(side=32, K=10)
    model = _build({"layers": UVA, "batchnorm": True}, info=info, dtype=np.float32)
    assert model.flat_dim == 512 and model.params["W1"].shape == (512, 10)
    channels = [c for c in UVA if c != "M"]
    c_in = [3, *channels[:-1]]
    # 3x3 conv weights + gamma and beta per conv, plus the linear layer
    expect = sum(9 * a * b + 2 * b for a, b in zip(c_in, channels, strict=True)) + 512 * 10 + 10
    assert model.n_params() == expect
    X, y = _data(model, 2)
    X = X.astype(np.float32)
    y = np.array([3, 7])
    # Winograd where it pays: 128 or more channels and filters on maps of 8 x 8 and 4 x 4
    assert _conv_methods(model, X) == ["planes", "im2col", *["winograd"] * 4, "im2col", "im2col"]
    # the convs before a pool write parity order for it, but Winograd's (its tiles)
    assert [m.endswith("/parity") for m in model.methods().values()] == [
        True, True, False, False, False, False, False, True]
    loss, _, grads = model.loss(X, y, train=True)
    assert abs(loss - np.log(10)) < 2.0  # random init: near chance
    assert all(grads[k].dtype == np.float32 and grads[k].shape == w.shape
               and np.all(np.isfinite(grads[k])) for k, w in model.params.items())
    for k, w in model.params.items():
        w -= np.float32(1e-3) * grads[k]
    assert model.loss(X, y, train=True)[0] < loss
    assert model.scores(X).shape == (2, 10)


def test_configuration_errors():
    with pytest.raises(UserError, match="image_shape"):
        _build({"layers": [4]}, info=DataInfo((20,), ["a", "b"]))
    with pytest.raises(UserError, match="max-pool"):  # 8 -> 3 -> 1 -> too small
        _build({"layers": [4, "M", "M", "M"], "pool": {"kernel": 3, "stride": 2, "padding": 0}})
    with pytest.raises(UserError, match="max-pool"):
        _build({"layers": [4, "M", "M", "M", "M"],  # 8 -> 4 -> 2 -> 1 -> too small
                "pool": {"kernel": 2, "stride": 2, "padding": 0}})
    with pytest.raises(pydantic.ValidationError, match="padding"):
        _build({"layers": [4, "M"], "pool": {"kernel": 2, "stride": 2, "padding": 2}})
    with pytest.raises(pydantic.ValidationError):
        _build({"layers": [4, "P"]})
    with pytest.raises(pydantic.ValidationError):
        _build({"layers": [4], "conv_size": 5})


@pytest.mark.parametrize("keys", [
    {"layers": [4, "M", 5, "M"], "batchnorm": True},
    {"layers": [4, 5, "M"], "pool": {"kernel": 2, "stride": 2, "padding": 0}},
])
@pytest.mark.parametrize("winograd", [False, True])
def test_work_buffers_shared_by_batches_of_other_sizes_leave_no_trace(keys, winograd,
                                                                      monkeypatch):
    """The layers' work buffers serve any batch up to the largest seen, and grow (zeroed
    again) for a larger one: scores in chunks of 3, 3 and 1 examples, then updates on 9 and
    on 5 examples give what fresh models give (padding borders stay zero, nothing of an
    earlier batch is read). The same through Winograd layers."""
    if winograd:
        _winograd_everywhere(monkeypatch)
    assert ("winograd" in _build(keys).conv_method.values()) == winograd
    X, y = _data(_build(keys), 9)
    used = _build(keys)
    chunked = used.scores(X[:7], batch_size=3)
    _, _, g9 = used.loss(X, y, train=True)
    _, _, g5 = used.loss(X[:5], y[:5], train=True)
    np.testing.assert_array_equal(chunked, _build(keys).scores(X[:7], batch_size=3))
    for batch, grads in ((slice(0, 5), g5), (slice(0, 9), g9)):
        _, _, expected = _build(keys).loss(X[batch], y[batch], train=True)
        for k in expected:
            np.testing.assert_array_equal(grads[k], expected[k])


@pytest.mark.parametrize("keys", [
    {"layers": [4, "M", 5, 6, "M"], "batchnorm": True},
    {"layers": [4, 5, "M", 6], "pool": {"kernel": 2, "stride": 2, "padding": 0}},
    {"layers": [4, "M", 5, "M"], "batchnorm": True, "gamma_sign": -1},
])
@pytest.mark.parametrize("winograd", [False, True])
def test_no_work_buffer_content_outlives_its_use(keys, winograd, monkeypatch):
    """Layers share work buffers (padded maps, the backward pass's dx, ...) and keep their
    own between updates; none may read what an earlier layer or update left, padding
    borders included. Every buffer filled with NaN (masks with True) between updates, the
    gradients and the evaluation scores are those of a fresh model. A negative BN scale
    takes the path where BN writes its own output before the pool."""
    if winograd:
        _winograd_everywhere(monkeypatch)
    keys = dict(keys)
    sign = keys.pop("gamma_sign", 1)

    def model():
        m = _build(keys)
        for k in m.params:
            if k.startswith("gamma"):
                m.params[k] *= sign
        return m

    used, X, y = model(), *_data(_build(keys), 6)
    used.loss(X, y, train=True)
    used.scores(X)
    filled = 0
    for buffers in used.work.values():
        for buf in buffers.values():
            buf.fill(True if buf.dtype == bool else np.nan)
            filled += 1
    assert filled > 10
    _, _, got = used.loss(X, y, train=True)
    _, _, expected = model().loss(X, y, train=True)
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
    for buffers in used.work.values():
        for buf in buffers.values():
            buf.fill(True if buf.dtype == bool else np.nan)
    fresh = model()
    fresh.state = {k: v.copy() for k, v in used.state.items()}
    np.testing.assert_array_equal(used.scores(X), fresh.scores(X))


@pytest.mark.parametrize("keys", [
    {"layers": [4, "M", 5, 6, "M"], "batchnorm": True},
    {"layers": [4, 5, "M"], "pool": {"kernel": 2, "stride": 2, "padding": 0}},
])
def test_filter_gradient_over_the_whole_batch_equals_the_sum_over_parts(keys, monkeypatch):
    """Large filter banks take dW in one product over the batch (per half of the filters);
    forced on for every layer, it gives the per-part sums' gradients (which the gradient
    checks above verify)."""
    X, y = _data(_build(keys), 7)
    _, _, parts = _build(keys).loss(X, y, train=True)
    monkeypatch.setattr(dl2424.models.cnn, "WHOLE_BATCH_DW", 0)
    _, _, whole = _build(keys).loss(X, y, train=True)
    for k in parts:
        np.testing.assert_allclose(whole[k], parts[k], rtol=1e-12, atol=1e-14)


def test_filters_keep_channels_innermost_through_checkpoints_and_adam(tmp_path):
    """The filters are (F, C, 3, 3) arrays holding C innermost in memory (no layout copies
    per update); a checkpoint restores them, and Adam's slots, in that layout and with the
    same values, and Adam updates them in place (its moments in the same layout)."""
    from dl2424 import checkpoint, optim

    keys = {"layers": [4, "M", 5, "M"], "batchnorm": True}
    model, opt = _build(keys, dtype=np.float32), optim.Adam(optim.AdamParams())
    X, y = _data(model, 6)
    before = model.params["F2"].copy()
    _, _, grads = model.loss(X, y, train=True)
    opt.step(model.params, grads, 0.01)
    assert not np.array_equal(model.params["F2"], before)  # updated in place, not a copy
    checkpoint.save(tmp_path / "c.npz", model, opt, {"step": 1})
    fresh, fresh_opt = _build(keys, dtype=np.float32, seed=9), optim.Adam(optim.AdamParams())
    checkpoint.restore(checkpoint.load(tmp_path / "c.npz"), fresh, fresh_opt)
    for m in (model, fresh):
        F = m.params["F2"]
        assert F.shape == (5, 4, 3, 3) and F.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(fresh.params["F2"], model.params["F2"])
    _, _, g1 = model.loss(X, y, train=True)
    _, _, g2 = fresh.loss(X, y, train=True)
    opt.step(model.params, g1, 0.01)
    fresh_opt.step(fresh.params, g2, 0.01)
    for k in model.params:
        np.testing.assert_array_equal(fresh.params[k], model.params[k])
    assert fresh_opt.state["m.F2"].strides == fresh.params["F2"].strides


WINOGRAD_KEYS = [
    {"layers": [4, "M", 5, "M"], "batchnorm": True, "hidden": [6], "l2": 0.01},
    {"layers": [3, 4, "M", 5], "l2": 0.01},  # conv 3's ReLU in its own pass (no pool after)
    {"layers": [3, 4, "M"], "batchnorm": True, "activation": "leaky_relu",
     "pool": {"kernel": 2, "stride": 2, "padding": 0}},
]


@pytest.mark.parametrize("keys", WINOGRAD_KEYS)
def test_winograd_layers_give_the_im2col_layers_numbers(keys, monkeypatch):
    """The same network through Winograd layers: the same loss, gradients, moving averages
    and scores as through im2col, up to rounding."""
    X, y = _data(_build(keys), 7)
    direct = _build(keys)
    expected = direct.loss(X, y, train=True)
    _winograd_everywhere(monkeypatch)
    methods = _conv_methods(_build(keys), X)
    assert methods == ["planes", *["winograd"] * (len(methods) - 1)]
    model = _build(keys)
    loss, _, grads = model.loss(X, y, train=True)
    np.testing.assert_allclose(loss, expected[0], rtol=1e-12)
    for k, g in expected[2].items():
        np.testing.assert_allclose(grads[k], g, rtol=1e-10, atol=1e-13)
    for k, v in direct.state.items():
        np.testing.assert_allclose(model.state[k], v, rtol=1e-12)
    np.testing.assert_allclose(model.scores(X), direct.scores(X), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("keys", WINOGRAD_KEYS[:2])
def test_whole_model_gradients_through_winograd(keys, monkeypatch):
    _winograd_everywhere(monkeypatch)
    model = _build(keys)
    X, y = _data(model, 2)
    assert "winograd" in _conv_methods(model, X)
    errors = _check_all_params(model, X, y)
    assert max(errors.values()) < 1e-6, errors

