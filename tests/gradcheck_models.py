"""Tiny float64 problems of every model family, for the gradient-check tests."""

import numpy as np

import dl2424.models.charcnn  # noqa: F401  (registers the models)
import dl2424.models.cnn  # noqa: F401
import dl2424.models.mlp  # noqa: F401
from dl2424.data.bundle import DataInfo
from dl2424.gradcheck import Problem
from dl2424.registry import MODELS

K = 4
VOCAB, N_LEN = 6, 9


def _info(kind, dims=7, side=8):
    classes = [f"c{k}" for k in range(K)]
    if kind == "charcnn":
        return DataInfo((N_LEN,), classes, {"vocab": VOCAB})
    if kind in ("cnn", "patchnet"):
        return DataInfo((3 * side * side,), classes, {"image_shape": [3, side, side]})
    return DataInfo((dims,), classes)


def make_problem(kind, keys, n=3, seed=0, soft=False, weighted=False, side=8) -> Problem:
    """A model of registered type `kind` built from config keys, at its initial weights,
    on n random examples with random labels (or soft targets / per-example weights)."""
    info = _info(kind, side=side)
    p = MODELS[kind].params.model_validate(keys)
    model = MODELS[kind].factory(p, info, np.dtype(np.float64), np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    if kind == "charcnn":
        X = rng.integers(0, VOCAB, (n, N_LEN))
        X[:, N_LEN - 5:] = VOCAB  # short names: padded ends, the bias kink of issue 11
    else:
        X = rng.standard_normal((n, info.input_shape[0]))
    y = rng.integers(0, K, n)
    target = rng.dirichlet(np.ones(K), n) if soft else y
    weights = rng.uniform(0.5, 2.0, n) if weighted else None
    return Problem(model, X, target, weights, seed=seed, what=kind, model_type=kind)


MLP_BN = {"hidden": [6, 5], "batchnorm": True, "keep": 0.7, "activation": "leaky_relu",
          "l2": 0.01, "init": "xavier"}
CHARCNN = {"layers": [{"filters": 4, "width": 3, "padding": 1, "dilation": 2},
                      {"filters": 5, "width": 2, "stride": 2, "padding": 1, "pool": 2}],
           "bias": True, "keep": 0.6, "l2": 0.01}
CNN = {"layers": [4, "M", 5, "M"], "pool": {"kernel": 3, "stride": 2, "padding": 1},
       "batchnorm": True, "hidden": [6], "keep": 0.8, "l2": 0.01}
