"""The patchify convolution and the `patchnet` model: loop references and float64 gradients.
(Its torch twin, conv2d with stride f, is checked in test_gradcheck_torch.py.)"""

import numpy as np
import pydantic
import pytest

import dl2424.models.patchnet  # noqa: F401  (registers the model)
from dl2424.data.bundle import DataInfo
from dl2424.errors import UserError
from dl2424.gradcheck import max_rel_error, numerical_grad
from dl2424.nn import patchify as pf
from dl2424.registry import MODELS

# (n, C, H, W, f, nf): square and not, one patch per image, a single channel
CASES = [(2, 3, 8, 8, 2, 3), (3, 3, 8, 8, 4, 2), (2, 3, 8, 8, 8, 4), (2, 2, 4, 6, 2, 5),
         (1, 1, 6, 3, 3, 2)]


def hand_out_mx(x, f):
    """The hand-out's construction, patch by patch: MX[i, l] = X_ims patch (f, f, C) in
    C order, patches row-major over the grid."""
    n, C, H, W = x.shape
    mx = np.zeros((n, (H // f) * (W // f), f * f * C))
    for i in range(n):
        ims = x[i].transpose(1, 2, 0)  # (H, W, C), the hand-out's X_ims[:, :, :, i]
        l = 0
        for r in range(H // f):
            for c in range(W // f):
                mx[i, l] = ims[r * f:(r + 1) * f, c * f:(c + 1) * f, :].reshape(-1)
                l += 1
    return mx


def conv_reference(x, F, b):
    """The definition: a dot product of every filter with every f x f x C patch."""
    n, C, H, W = x.shape
    f, nf = F.shape[0], F.shape[3]
    out = np.zeros((n, H // f, W // f, nf))
    for i in range(n):
        for r in range(H // f):
            for c in range(W // f):
                patch = x[i, :, r * f:(r + 1) * f, c * f:(c + 1) * f].transpose(1, 2, 0)
                for k in range(nf):
                    out[i, r, c, k] = np.sum(patch * F[:, :, :, k]) + (b[k] if b is not None
                                                                       else 0)
    return out.reshape(n, -1, nf)


def _layer_inputs(case, seed=0, bias=True):
    n, C, H, W, f, nf = case
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, C, H, W)), rng.standard_normal((f, f, C, nf)),
            rng.standard_normal(nf) if bias else None)


@pytest.mark.parametrize("case", CASES)
def test_patch_matrix_is_the_hand_outs_mx_and_its_adjoint_inverts_it(case):
    x, F, _ = _layer_inputs(case)
    mx = pf.patch_matrix(x, F.shape[0])
    np.testing.assert_array_equal(mx, hand_out_mx(x, F.shape[0]))
    np.testing.assert_array_equal(pf.patch_matrix_adjoint(mx, x.shape, F.shape[0]), x)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_forward_matches_the_per_patch_loop(case, bias):
    x, F, b = _layer_inputs(case, bias=bias)
    out, _ = pf.patchify_forward(x, F, b)
    np.testing.assert_allclose(out, conv_reference(x, F, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_filter_gradient_is_the_sum_of_per_image_mx_transpose_g(case):
    """eq. 22 of the hand-out written as a loop over images."""
    x, F, b = _layer_inputs(case)
    out, cache = pf.patchify_forward(x, F, b)
    g = np.random.default_rng(3).standard_normal(out.shape)
    _, dF, db = pf.patchify_backward(g, cache)
    mx = hand_out_mx(x, F.shape[0])
    expect = sum(mx[i].T @ g[i] for i in range(x.shape[0]))
    np.testing.assert_allclose(dF.reshape(expect.shape), expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, g.sum(axis=(0, 1)), rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_layer_gradients_against_centred_differences(case):
    x, F, b = _layer_inputs(case)
    g = np.random.default_rng(4).standard_normal(pf.patchify_forward(x, F, b)[0].shape)

    def f():
        return float(np.sum(pf.patchify_forward(x, F, b)[0] * g))

    dx, dF, db = pf.patchify_backward(g, pf.patchify_forward(x, F, b)[1])
    for analytic, wrt in ((dx, x), (dF, F), (db, b)):
        assert analytic.shape == wrt.shape
        # f is linear in each input, so a larger step loses nothing and keeps the rounding
        # noise (eps |f| / h, |f| ~ 100 here) well below 1e-6
        assert max_rel_error(analytic, numerical_grad(f, wrt, h=1e-3)) < 1e-6


def test_the_input_gradient_can_be_skipped():
    x, F, b = _layer_inputs(CASES[0])
    out, cache = pf.patchify_forward(x, F, b)
    dx, dF, _ = pf.patchify_backward(np.ones_like(out), cache, input_grad=False)
    assert dx is None and dF.shape == F.shape


# ---------------------------------------------------------------------------- the model
def _info(side=8, K=4):
    return DataInfo((3 * side * side,), [str(k) for k in range(K)],
                    {"image_shape": [3, side, side]})


def _build(keys, info=None, dtype=np.float64, seed=0):
    p = MODELS["patchnet"].params.model_validate(keys)
    return MODELS["patchnet"].factory(p, info or _info(), np.dtype(dtype),
                                      np.random.default_rng(seed))


def _data(n, side=8, K=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3 * side * side)), rng.integers(0, K, n)


def model_reference(model, X):
    """Scores from the definition: loop convolution, then the two layers in the hand-out's
    column layout (W1 h + b1, with h = conv_flat)."""
    P = model.params
    x = X.reshape(X.shape[0], *model.image_shape)
    H = np.maximum(conv_reference(x, P["F"], P.get("bF")), 0)
    h = H.reshape(X.shape[0], -1).T  # (nf n_p, n), the hand-out's conv_flat
    x1 = np.maximum(P["W1"].T @ h + P["b1"][:, None], 0)
    return (P["W2"].T @ x1 + P["b2"][:, None]).T


@pytest.mark.parametrize("keys", [{"f": 2, "nf": 3, "nh": 5}, {"f": 4, "nf": 4, "nh": 6,
                                                               "bias": True}])
def test_model_scores_match_the_reference(keys):
    model = _build(keys)
    X, _ = _data(3)
    np.testing.assert_allclose(model.forward(X, train=False)[0], model_reference(model, X),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("keys", [
    {"f": 2, "nf": 3, "nh": 5, "l2": 0.01},
    {"f": 4, "nf": 4, "nh": 6, "bias": True, "l2": 0.1},
    {"f": 8, "nf": 5, "nh": 4, "bias": True, "l2": 0.003},
])
def test_whole_model_gradients_against_centred_differences(keys):
    model = _build(keys)
    X, y = _data(3)

    def cost():
        loss, pen, _ = model.loss(X, y)
        return loss + pen

    _, _, grads = model.loss(X, y)
    assert set(grads) == set(model.params) == ({"F", "W1", "b1", "W2", "b2"}
                                              | ({"bF"} if keys.get("bias") else set()))
    for k, w in model.params.items():
        assert max_rel_error(grads[k], numerical_grad(cost, w), eps=1e-4) < 1e-6, k


def test_l2_covers_the_filters_and_both_weight_matrices_but_no_bias():
    model = _build({"f": 4, "nf": 3, "nh": 5, "bias": True, "l2": 0.5})
    for k in ("bF", "b1", "b2"):
        model.params[k][:] = 7.0
    P = model.params
    expect = 0.5 * sum(np.sum(P[k] ** 2) for k in ("F", "W1", "W2"))
    assert model.penalty() == pytest.approx(expect, rel=1e-12)


def test_he_initialisation_scales_with_the_fan_in():
    model = _build({"f": 16, "nf": 160, "nh": 50}, info=_info(side=32, K=10))
    P = model.params
    assert P["F"].shape == (16, 16, 3, 160) and P["W1"].shape == (160 * 4, 50)
    assert np.std(P["F"]) == pytest.approx(np.sqrt(2 / (3 * 16 * 16)), rel=0.02)
    assert np.std(P["W1"]) == pytest.approx(np.sqrt(2 / 640), rel=0.03)
    assert not P["b1"].any() and not P["b2"].any()


def test_a_patch_size_that_does_not_divide_the_image_is_a_user_error():
    with pytest.raises(UserError, match="model.f: 3 does not divide the 8x8"):
        _build({"f": 3})


def test_images_are_required():
    with pytest.raises(UserError, match="needs images"):
        _build({}, info=DataInfo((12,), ["a", "b"], {}))


def test_unknown_keys_are_refused():
    with pytest.raises(pydantic.ValidationError):
        MODELS["patchnet"].params.model_validate({"stride": 2})


def test_the_shipped_sweep_spec_plans_the_four_hand_out_architectures():
    import copy
    from pathlib import Path

    from dl2424.config import apply_overrides, load_experiment, validate
    from dl2424.search.sample import plan_trials
    from dl2424.search.spec import load_spec
    from dl2424.search.sweep import format_value

    configs = Path(__file__).parent.parent / "configs"
    search = load_spec(configs / "search_patch_arch.yaml")
    ref = load_experiment(configs / "cifar_patch_ref.yaml")
    got = []
    for values in plan_trials(search.spec):
        sets = [f"{k}={format_value(v)}" for k, v in values.items()]
        exp = validate(apply_overrides(copy.deepcopy(search.base), sets), "trial")
        p = exp.model.params
        got.append((p.f, p.nf, p.nh))
        assert exp.model_copy(update={"model": ref.model}) == ref  # only the model differs
        assert (p.l2, p.bias, p.init) == (0.003, False, ref.model.params.init)
    assert got == [(2, 3, 50), (4, 10, 50), (8, 40, 50), (16, 160, 50)]
