"""The k-layer MLP: gradients of the whole cost for every option, in float64."""

import numpy as np
import pytest

from dl2424.data.bundle import DataInfo
from dl2424.gradcheck import max_rel_error, numerical_grad
from dl2424.models.mlp import MLPParams, mlp
from dl2424.rng import Stream, generator

INFO = DataInfo((7,), [f"c{i}" for i in range(4)])

VARIANTS = {
    "linear": {"hidden": []},
    "two-layer": {"hidden": [9], "l2": 0.1},
    "three-layer leaky": {"hidden": [8, 6], "activation": "leaky_relu", "l2": 0.05},
    "bn before relu": {"hidden": [8, 6], "batchnorm": True, "l2": 0.01},
    "bn after relu": {"hidden": [8, 6], "batchnorm": True, "bn_placement": "after"},
    "dropout": {"hidden": [10, 10], "keep": 0.7},
    "svm": {"hidden": [9], "loss": "svm", "l2": 0.01},
    "bce": {"hidden": [9], "loss": "bce"},
    "nine-layer bn": {"hidden": [8, 7, 6, 6, 5, 5, 5, 5], "batchnorm": True},
}


@pytest.mark.parametrize("name", VARIANTS)
def test_cost_gradients(name):
    p = MLPParams.model_validate({"init": "he", **VARIANTS[name]})
    model = mlp(p, INFO, np.float64, np.random.default_rng(1))
    data = np.random.default_rng(2)
    X, y = data.standard_normal((5, 7)), data.integers(0, 4, 5)

    def cost():
        loss, pen, _ = model.loss(X, y, rng=generator(0, Stream.CHECK))  # a fixed dropout mask
        return loss + pen

    _, _, grads = model.loss(X, y, rng=generator(0, Stream.CHECK))
    assert set(grads) == set(model.params)
    for k, w in model.params.items():
        assert max_rel_error(grads[k], numerical_grad(cost, w), atol=1e-10) < 1e-6, k


def test_penalty_is_weights_only():
    p = MLPParams(hidden=[3], l2=0.5, batchnorm=True)
    model = mlp(p, INFO, np.float64, np.random.default_rng(0))
    expected = 0.5 * (np.sum(model.params["W1"] ** 2) + np.sum(model.params["W2"] ** 2))
    assert model.penalty() == pytest.approx(expected)
    assert model.decay == ["W1", "W2"]


def test_batchnorm_eval_mode_uses_moving_averages():
    p = MLPParams(hidden=[4], batchnorm=True, bn_alpha=0.5)
    model = mlp(p, INFO, np.float64, np.random.default_rng(0))
    rng = np.random.default_rng(3)
    X1, X2 = rng.standard_normal((6, 7)), rng.standard_normal((6, 7)) + 2
    y = np.zeros(6, int)
    model.loss(X1, y)
    model.loss(X2, y)
    s1, s2 = X1 @ model.params["W1"], X2 @ model.params["W1"]
    np.testing.assert_allclose(model.state["bn1.mean"], 0.5 * s1.mean(0) + 0.5 * s2.mean(0))
    np.testing.assert_allclose(model.state["bn1.var"], 0.5 * s1.var(0) + 0.5 * s2.var(0))
    # In evaluation mode one example alone is normalised with the averages, not its own stats.
    one = model.scores(X1[:1])
    h = np.maximum((s1[:1] - model.state["bn1.mean"]) / np.sqrt(model.state["bn1.var"] + 1e-5),
                   0)
    np.testing.assert_allclose(one, h @ model.params["W2"] + model.params["b2"])


def test_first_layer_init_matches_handout_order():
    # W1 drawn before anything else, N(0, 0.01^2) for the A1 setting.
    p = MLPParams.model_validate({"hidden": [], "init": {"type": "gaussian", "std": 0.01}})
    model = mlp(p, INFO, np.float64, np.random.default_rng(400))
    np.testing.assert_allclose(model.params["W1"],
                               0.01 * np.random.default_rng(400).standard_normal((7, 4)))
    assert not model.params["b1"].any()
