"""The character ConvNet: hand-out matrices vs the definition, fast path vs matrices,
centred-difference gradients of every layer and of the whole charcnn model."""

import re

import numpy as np
import pytest
from pydantic import ValidationError

from dl2424.data.bundle import DataInfo
from dl2424.errors import UserError
from dl2424.gradcheck import max_rel_error, numerical_grad
from dl2424.models.charcnn import CharCNNParams, charcnn
from dl2424.nn import charconv as cc
from dl2424.nn import charconv_ref as ref
from dl2424.registry import MODELS

# (stride, padding, dilation)
GEOMETRIES = [(1, 0, 1), (2, 0, 1), (1, 2, 1), (1, 0, 2), (3, 1, 2)]


def direct_conv(X, F, stride=1, padding=0, dilation=1):
    """The definition: S[i, j] = sum_t Xp[:, j*stride + t*dilation] . F[:, t, i]."""
    d, k, n_f = F.shape
    Xp = np.pad(X, ((0, 0), (padding, padding)))
    n_out = (Xp.shape[1] - dilation * (k - 1) - 1) // stride + 1
    S = np.zeros((n_f, n_out))
    for i in range(n_f):
        for j in range(n_out):
            for t in range(k):
                S[i, j] += Xp[:, j * stride + t * dilation] @ F[:, t, i]
    return S


def direct_maxpool(x, width, stride):
    """x (n, L, c) -> max over each window of positions, looped."""
    n, L, c = x.shape
    n_out = (L - width) // stride + 1
    out = np.empty((n, n_out, c))
    for p in range(n_out):
        out[:, p] = x[:, p * stride:p * stride + width].max(axis=1)
    return out


def one_hot(idx, d):
    """(n, n_len) indices with padding d -> (n, d, n_len) one-hot, zero padding columns."""
    return (idx[:, None, :] == np.arange(d)[None, :, None]).astype(np.float64)


def random_names(rng, n, n_len, d):
    idx = rng.integers(0, d, (n, n_len))
    lengths = rng.integers(2, n_len + 1, n)
    idx[np.arange(n_len) >= lengths[:, None]] = d  # right padding, as the loader does
    return idx


# ---------------------------------------------------------------- hand-out matrices


@pytest.mark.parametrize("stride,padding,dilation", GEOMETRIES)
def test_mf_and_mx_reproduce_the_definition(stride, padding, dilation):
    rng = np.random.default_rng(0)
    d, n_len, k, n_f = 4, 11, 3, 5
    X = rng.standard_normal((d, n_len))
    F = rng.standard_normal((d, k, n_f))
    S = direct_conv(X, F, stride, padding, dilation)
    MF = ref.make_mf_matrix(F, n_len, stride, padding, dilation)
    MX = ref.make_mx_matrix(ref.vec(X), d, k, n_f, stride, padding, dilation)
    assert MF.shape == (S.size, n_len * d)
    assert MX.shape == (S.size, k * n_f * d)
    np.testing.assert_allclose(MF @ ref.vec(X), ref.vec(S), atol=1e-12)
    np.testing.assert_allclose(MX @ ref.vec(F), ref.vec(S), atol=1e-12)


def test_mf_and_mx_have_the_handout_block_layout():
    rng = np.random.default_rng(1)
    d, n_len, k, n_f = 3, 7, 2, 4
    F = rng.standard_normal((d, k, n_f))
    x = rng.standard_normal(d * n_len)
    MF = ref.make_mf_matrix(F, n_len)
    MX = ref.make_mx_matrix(x, d, k, n_f)
    assert MF.shape == ((n_len - k + 1) * n_f, n_len * d)
    assert MX.shape == ((n_len - k + 1) * n_f, k * n_f * d)
    V_F = np.stack([F[:, :, i].flatten(order="F") for i in range(n_f)])
    for j in range(n_len - k + 1):
        block = np.zeros((n_f, n_len * d))
        block[:, j * d:j * d + d * k] = V_F  # V_F shifted by d columns per block row
        np.testing.assert_array_equal(MF[j * n_f:(j + 1) * n_f], block)
        window = x[j * d:j * d + d * k]
        np.testing.assert_array_equal(MX[j * n_f:(j + 1) * n_f], np.kron(np.eye(n_f), window))


def test_filter_layout_conversion_round_trips():
    F = np.arange(2 * 3 * 4.0).reshape(3, 2, 4)  # hand-out (d=3, k=2, n_f=4)
    fast = ref.filters_from_handout(F)
    assert fast.shape == (2, 3, 4) and fast.flags.c_contiguous
    # column i of the fast filters flattened to (k*d, n_f) is vec(F_i) of the hand-out
    np.testing.assert_array_equal(fast.reshape(6, 4)[:, 1], F[:, :, 1].flatten(order="F"))
    np.testing.assert_array_equal(ref.filters_to_handout(fast), F)


# ---------------------------------------------------------------- fast layers


@pytest.mark.parametrize("stride,padding,dilation", GEOMETRIES)
def test_onehot_conv_matches_the_definition(stride, padding, dilation):
    rng = np.random.default_rng(2)
    n, n_len, d, k, m = 4, 10, 5, 3, 6
    idx = random_names(rng, n, n_len, d)
    F_h = rng.standard_normal((d, k, m))
    b = rng.standard_normal(m)
    out, _ = cc.onehot_conv_forward(idx, ref.filters_from_handout(F_h), b, stride, padding,
                                    dilation)
    X = one_hot(idx, d)
    for i in range(n):
        S = direct_conv(X[i], F_h, stride, padding, dilation)
        np.testing.assert_allclose(out[i], S.T + b, atol=1e-12)


@pytest.mark.parametrize("stride,padding,dilation", GEOMETRIES)
def test_conv_matches_the_definition(stride, padding, dilation):
    rng = np.random.default_rng(3)
    n, L, c, k, m = 3, 12, 4, 3, 5
    x = rng.standard_normal((n, L, c))
    F_h = rng.standard_normal((c, k, m))
    out, _ = cc.conv_forward(x, ref.filters_from_handout(F_h), None, stride, padding, dilation)
    for i in range(n):
        np.testing.assert_allclose(out[i], direct_conv(x[i].T, F_h, stride, padding,
                                                       dilation).T, atol=1e-12)


@pytest.mark.parametrize("width,stride", [(2, 2), (3, 1), (3, 2)])
def test_maxpool_matches_the_definition(width, stride):
    x = np.random.default_rng(4).standard_normal((3, 11, 4))
    out, _ = cc.maxpool_forward(x, width, stride)
    np.testing.assert_array_equal(out, direct_maxpool(x, width, stride))


@pytest.mark.parametrize("stride,padding,dilation", GEOMETRIES)
@pytest.mark.parametrize("bias", [False, True])
def test_onehot_conv_gradients(stride, padding, dilation, bias):
    rng = np.random.default_rng(5)
    n, n_len, d, k, m = 3, 9, 4, 3, 5
    idx = random_names(rng, n, n_len, d)
    F = rng.standard_normal((k, d, m))
    b = rng.standard_normal(m) if bias else None
    out, cache = cc.onehot_conv_forward(idx, F, b, stride, padding, dilation)
    R = rng.standard_normal(out.shape)
    dF, db = cc.onehot_conv_backward(R, cache)

    def f():
        return np.sum(cc.onehot_conv_forward(idx, F, b, stride, padding, dilation)[0] * R)

    assert max_rel_error(dF, numerical_grad(f, F)) < 1e-6
    if bias:
        assert max_rel_error(db, numerical_grad(f, b)) < 1e-6
    else:
        assert db is None


@pytest.mark.parametrize("stride,padding,dilation", GEOMETRIES)
@pytest.mark.parametrize("bias", [False, True])
def test_conv_gradients(stride, padding, dilation, bias):
    rng = np.random.default_rng(6)
    n, L, c, k, m = 3, 10, 4, 3, 5
    x = rng.standard_normal((n, L, c))
    F = rng.standard_normal((k, c, m))
    b = rng.standard_normal(m) if bias else None
    out, cache = cc.conv_forward(x, F, b, stride, padding, dilation)
    R = rng.standard_normal(out.shape)
    dx, dF, db = cc.conv_backward(R, cache)

    def f():
        return np.sum(cc.conv_forward(x, F, b, stride, padding, dilation)[0] * R)

    assert dx.shape == x.shape
    assert max_rel_error(dx, numerical_grad(f, x)) < 1e-6
    assert max_rel_error(dF, numerical_grad(f, F)) < 1e-6
    if bias:
        assert max_rel_error(db, numerical_grad(f, b)) < 1e-6


@pytest.mark.parametrize("width,stride", [(2, 2), (3, 1), (3, 2)])
def test_maxpool_gradient(width, stride):
    # random normal entries: no ties, and no two within h of each other in practice
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 11, 4))
    out, cache = cc.maxpool_forward(x, width, stride)
    R = rng.standard_normal(out.shape)

    def f():
        return np.sum(cc.maxpool_forward(x, width, stride)[0] * R)

    assert max_rel_error(cc.maxpool_backward(R, cache), numerical_grad(f, x)) < 1e-6


# ---------------------------------------------------------------- the charcnn model

D, N_LEN, K = 6, 13, 4
CONFIGS = {
    "handout": dict(layers=[dict(filters=4, width=3), dict(filters=3, width=2)]),
    "geometry+bias": dict(bias=True, layers=[
        dict(filters=4, width=3, stride=2, padding=2, dilation=2),
        dict(filters=3, width=2, padding=1, dilation=2)]),
    "pool+3 layers": dict(bias=True, layers=[
        dict(filters=4, width=3, pool=2),
        dict(filters=5, width=2, padding=1, pool=3, pool_stride=1),
        dict(filters=3, width=2, stride=2)]),
}


def make_model(config, dtype=np.float64, seed=0, **extra):
    p = CharCNNParams(**config, **extra)
    info = DataInfo((N_LEN,), [f"c{i}" for i in range(K)], {"vocab": D})
    rng = np.random.default_rng(seed)
    model = charcnn(p, info, dtype, rng)
    for v in model.params.values():  # biases start at 0: make them non-trivial
        v += 0.1 * rng.standard_normal(v.shape).astype(dtype)
    return model


def handout_columns(idx, d):
    """(n, n_len) -> (d * n_len, n): vec of each name's one-hot matrix, one per column."""
    return np.stack([x.flatten(order="F") for x in one_hot(idx, d)], axis=1)


@pytest.mark.parametrize("name", CONFIGS)
def test_fast_path_equals_the_handout_formulation(name):
    rng = np.random.default_rng(8)
    model = make_model(CONFIGS[name])
    n = 5
    idx = random_names(rng, n, N_LEN, D)
    y = rng.integers(0, K, n)
    loss, _, grads = model.loss(idx, y)

    hp = model.to_handout(model.params)
    L = len(model.specs)
    bias = "bW" in hp
    Fs = [hp[f"F{l}"] for l in range(1, L + 1)]
    bs = [hp[f"b{l}"] for l in range(1, L + 1)] if bias else None
    P, cache = ref.reference_forward(handout_columns(idx, D), Fs, hp["W"], model.specs, bs,
                                     hp.get("bW"))
    expected = ref.reference_backward(np.eye(K)[:, y], P, cache)

    np.testing.assert_allclose(model.proba(idx), P.T, atol=1e-12)
    assert loss == pytest.approx(-np.log(P[y, np.arange(n)]).mean(), abs=1e-12)
    fast = model.to_handout(grads)
    assert set(fast) == set(expected) == set(model.params)
    for k in expected:
        np.testing.assert_allclose(fast[k], expected[k], atol=1e-12, err_msg=k)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("batch", [1, 3])
def test_model_gradients(name, batch):
    rng = np.random.default_rng(9)
    model = make_model(CONFIGS[name], l2=0.01)
    idx = random_names(rng, batch, N_LEN, D)
    y = rng.integers(0, K, batch)
    _, _, grads = model.loss(idx, y)

    def cost():
        loss, penalty, _ = model.loss(idx, y)
        return loss + penalty

    for k, v in model.params.items():
        assert max_rel_error(grads[k], numerical_grad(cost, v)) < 1e-6, k


def test_model_gradients_with_dropout():
    rng = np.random.default_rng(10)
    model = make_model(CONFIGS["pool+3 layers"], keep=0.6)
    idx = random_names(rng, 3, N_LEN, D)
    y = rng.integers(0, K, 3)

    def loss_and_grads():  # the same seed gives the same dropout mask every call
        return model.loss(idx, y, train=True, rng=np.random.default_rng(11))

    _, _, grads = loss_and_grads()
    for k, v in model.params.items():
        assert max_rel_error(grads[k], numerical_grad(lambda: loss_and_grads()[0], v)) < 1e-6, k
    # dropout is on in training only: evaluation scores ignore the rng
    assert not np.allclose(model.forward(idx, True, np.random.default_rng(11))[0],
                           model.forward(idx, False)[0])


def test_params_names_shapes_and_decay():
    model = make_model(CONFIGS["pool+3 layers"])
    # lengths: 13 -conv3-> 11 -pool2-> 5 -conv2,pad1-> 6 -pool3,s1-> 4 -conv2,s2-> 2
    assert {k: v.shape for k, v in model.params.items()} == {
        "F1": (3, D, 4), "b1": (4,), "F2": (2, 4, 5), "b2": (5,), "F3": (2, 5, 3),
        "b3": (3,), "W": (3 * 2, K), "bW": (K,)}
    assert model.decay == ["F1", "F2", "F3", "W"]
    plain = make_model(CONFIGS["handout"])
    assert list(plain.params) == ["F1", "F2", "W"]
    hp = plain.to_handout(plain.params)
    assert hp["F1"].shape == (D, 3, 4) and hp["W"].shape == (K, 3 * 10)
    back = plain.from_handout(hp)
    for k, v in plain.params.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].flags.c_contiguous


def test_he_init_uses_k1_as_fan_in_of_the_one_hot_layer():
    p = CharCNNParams(layers=[dict(filters=400, width=5), dict(filters=300, width=3)])
    info = DataInfo((19,), [str(i) for i in range(18)], {"vocab": 28})
    model = charcnn(p, info, np.float64, np.random.default_rng(12))
    assert model.params["F1"].std() == pytest.approx(np.sqrt(2 / 5), rel=0.02)
    assert model.params["F2"].std() == pytest.approx(np.sqrt(2 / (3 * 400)), rel=0.02)
    assert model.params["W"].std() == pytest.approx(np.sqrt(2 / (300 * 13)), rel=0.02)


def test_float32_stays_float32():
    model = make_model(CONFIGS["pool+3 layers"], dtype=np.float32)
    rng = np.random.default_rng(13)
    idx = random_names(rng, 7, N_LEN, D)
    scores, _ = model.forward(idx, train=False)
    _, _, grads = model.loss(idx, rng.integers(0, K, 7))
    assert scores.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    np.testing.assert_allclose(model.proba(idx).sum(axis=1), 1, rtol=1e-5)


def test_registered_with_yaml_keys():
    entry = MODELS["charcnn"]
    p = entry.params.model_validate({"layers": [{"filters": 8, "width": 4, "pool": 2}],
                                     "bias": True, "keep": 0.5, "l2": 0.001})
    assert p.layers[0].pool == 2 and p.layers[0].stride == 1 and p.keep == 0.5
    assert [q.filters for q in entry.params().layers] == [20, 20]  # the report's n1 = n2
    for bad in ({"layers": []}, {"keep": 0}, {"layers": [{"filters": 2}]},
                {"layers": [{"filters": 2, "width": 3, "stride": 0}]}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            entry.params.model_validate(bad)


@pytest.mark.parametrize("layers,message", [
    ([dict(filters=2, width=20)], "layers[0]: width 20"),
    ([dict(filters=2, width=3), dict(filters=2, width=3, dilation=6)], "layers[1]"),
    ([dict(filters=2, width=3, pool=12)], "pool 12"),
])
def test_impossible_geometry_is_a_user_error(layers, message):
    with pytest.raises(UserError, match=re.escape(message)):
        make_model({"layers": layers})


def test_needs_name_data():
    p = CharCNNParams()
    info = DataInfo((3072,), ["a", "b"], {})
    with pytest.raises(UserError, match="names"):
        charcnn(p, info, np.float64, np.random.default_rng(0))
