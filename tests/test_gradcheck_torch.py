"""`--against torch`: every model family's analytic gradients equal autograd's of its
torch twin to <= 1e-10, in training mode (dropout masks fixed) and evaluation mode."""

import pytest

from dl2424.gradcheck import Options
from dl2424.gradcheck.torch_ref import TWINS, _load_twins, check_against_torch

from .gradcheck_models import CHARCNN, CNN, MLP_BN, make_problem

pytest.importorskip("torch")

CASES = {
    "linear svm": ("mlp", {"loss": "svm", "l2": 0.1}, {}),
    "linear bce soft": ("mlp", {"loss": "bce", "l2": 0.1}, {"soft": True}),
    "mlp bn before, dropout, leaky, weighted": ("mlp", MLP_BN, {"weighted": True}),
    "mlp bn after": ("mlp", {**MLP_BN, "bn_placement": "after", "activation": "relu"}, {}),
    "charcnn stride/padding/dilation/pool/bias": ("charcnn", CHARCNN, {}),
    "charcnn hand-out": ("charcnn", {"layers": [{"filters": 3, "width": 4},
                                                {"filters": 3, "width": 2}]}, {"soft": True}),
    "cnn bn, padded pool, fc": ("cnn", CNN, {}),
    "cnn no bn, leaky, 2x2 pool": ("cnn", {"layers": [3, "M", 4], "activation": "leaky_relu",
                                          "pool": {"kernel": 2, "stride": 2, "padding": 0}},
                                   {"side": 6}),
    "patchnet f=4, no bias": ("patchnet", {"f": 4, "nf": 3, "nh": 5, "l2": 0.01}, {}),
    "patchnet f=2, conv bias, soft targets": ("patchnet", {"f": 2, "nf": 2, "nh": 4,
                                                           "bias": True, "l2": 0.003},
                                              {"soft": True}),
}


@pytest.mark.parametrize("case", CASES)
def test_twin_agrees_with_the_analytic_gradients(case):
    kind, keys, extra = CASES[case]
    problem = make_problem(kind, keys, n=8, **extra)
    reports = check_against_torch(problem, Options())
    assert len(reports) == (2 if problem.model.state else 1)
    for rep in reports:
        for r in rep.rows:
            assert r.checked == problem.model.params[r.name].size
            assert r.max_rel <= 1e-10, (case, rep.what, r)
            assert r.max_abs < 1e-12


def test_every_model_family_has_a_twin():
    import dl2424.components  # noqa: F401  (registers every model)
    from dl2424.registry import MODELS

    _load_twins()
    missing = set(MODELS.names()) - set(TWINS.names())
    assert not missing, (f"models without a torch twin: {missing}; add one in "
                         "dl2424/gradcheck/twins/ (see dl2424/gradcheck/torch_ref.py)")


def test_a_wrong_bn_gradient_is_caught_in_both_modes(monkeypatch):
    from dl2424.nn import batchnorm

    real = batchnorm.batchnorm_backward

    def wrong(dout, cache):
        dx, dgamma, dbeta = real(dout, cache)
        return dx, dgamma * (1 + 1e-7), dbeta

    monkeypatch.setattr(batchnorm, "batchnorm_backward", wrong)
    reports = check_against_torch(make_problem("mlp", MLP_BN, n=8), Options())
    for rep in reports:
        rows = {r.name: r for r in rep.rows}
        assert not rows["gamma1"].passed and rows["W3"].passed
