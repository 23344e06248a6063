"""Gradient checks: analytic gradients of the cost J = loss + penalty against finite
differences (check.py; the hand-outs' ComputeGradsNumSlow/ComputeGradsNum, made robust to
steps, scales and kinks) or against PyTorch autograd (torch_ref.py), per parameter.

`gradcheck(exp, data, ...)` is what `dl2424 gradcheck` runs; `numerical_grad` and
`max_rel_error` are the plain finite difference and comparison the layer tests use.
"""

from __future__ import annotations

from ..config import Experiment
from ..data.bundle import DataBundle
from .check import Options, Progress, check_model, max_rel_error, rel_error
from .numeric import numerical_grad, step_for
from .problem import Problem, problem_from_experiment
from .result import GradReport, ParamCheck

__all__ = ["GradReport", "Options", "ParamCheck", "Problem", "check_model", "gradcheck",
           "max_rel_error", "numerical_grad", "problem_from_experiment", "rel_error",
           "step_for"]


def gradcheck(exp: Experiment, data: DataBundle, *, n: int | None = None, dims: int | None = 20,
              crop: int | None = 8, against: str = "numerical", opts: Options = Options(),
              progress: Progress | None = None) -> list[GradReport]:
    """Check the configured model's gradients on a reduced problem (see
    problem_from_experiment) against finite differences, or against torch autograd (one
    report per mode: training, and evaluation with the running statistics when the model
    has batch norm). n defaults to 2 examples against finite differences, 4 with batch norm
    (see problem_from_experiment), and to 8 against torch: batch norm on two examples
    normalises every feature to +-1, a computation so ill-conditioned that two correct
    implementations differ by rounding amplified to ~1e-8."""
    n = n or (8 if against == "torch" else None)
    problem = problem_from_experiment(exp, data, n=n, dims=dims, crop=crop)
    if against == "torch":
        from .torch_ref import check_against_torch

        return check_against_torch(problem, opts)
    return [check_model(problem, opts, progress)]
