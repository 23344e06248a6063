"""The problem a gradient check works on: a float64 model, a few examples, their targets.

The hand-outs check gradients on a reduced problem (the first 20 input dimensions, one or
two examples) because finite differences cost two forward passes per entry. Image ConvNets
get the same treatment with a centre crop of the images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..build import build_model
from ..config import Experiment
from ..data.bundle import DataBundle, DataInfo
from ..errors import UserError
from ..models.base import Model
from ..rng import Stream, generator
from ..trainer import class_weights


@dataclass
class Problem:
    """J(params) = loss(model(X), target, weights) + penalty, in training mode.

    Dropout masks are the same in every evaluation: each gets a fresh generator with the
    same seed, so the masks are fixed by (seed, Stream.CHECK).
    """

    model: Model
    X: np.ndarray
    target: np.ndarray
    weights: np.ndarray | None = None
    seed: int = 0
    what: str = ""
    model_type: str = ""  # its name in the model registry (keys the torch twins)
    forward_only: bool = True  # cost() skips the backward pass (see check_cost)

    def rng(self) -> np.random.Generator:
        return generator(self.seed, Stream.CHECK)

    def cost_and_grads(self, train: bool = True) -> tuple[float, dict[str, np.ndarray]]:
        loss, pen, grads = self.model.loss(self.X, self.target, self.weights, train=train,
                                           rng=self.rng())
        return loss + pen, grads

    def cost(self) -> float:
        """J alone: the forward pass, the loss and the penalty, no backward pass (unless
        check_cost found that the model's `loss` computes J some other way)."""
        if not self.forward_only:
            return self.cost_and_grads()[0]
        m = self.model
        scores, _ = m.forward(self.X, train=True, rng=self.rng())
        return m.loss_fn(scores, self.target, self.weights)[0] + m.penalty()

    def check_cost(self, J: float) -> None:
        """Fall back to model.loss for every evaluation when the forward-only J differs
        from J = model.loss(...) (a model that overrides `loss` with terms of its own)."""
        if abs(self.cost() - J) > 1e-12 * max(1.0, abs(J)):
            self.forward_only = False


def _try_build(exp: Experiment, info: DataInfo) -> Model | None:
    try:
        return build_model(exp, info, np.float64)
    except UserError:  # this model needs the full input
        return None


def _reduced(exp: Experiment, info: DataInfo, X, dims: int | None, crop: int | None):
    """The model built on the reduced input, the reduced info and X; the full size when
    the model refuses every reduction. The whole images also when the crop would change how
    a layer computes (Model.methods): Winograd's convolutions need maps of 4x4 or more."""
    flat = len(info.input_shape) == 1 and np.issubdtype(X.dtype, np.floating)
    if dims and flat and dims < info.input_shape[0]:
        small = replace(info, input_shape=(dims,), meta={})
        if (model := _try_build(exp, small)) is not None:
            return model, small, X[:, :dims]
    full = build_model(exp, info, np.float64)
    shape = info.meta.get("image_shape")
    if crop and shape is not None and crop < min(shape[1:]):
        C, H, W = shape
        for side in range(crop, min(H, W)):  # the smallest crop the model accepts
            small = replace(info, input_shape=(C * side * side,),
                            meta={**info.meta, "image_shape": [C, side, side]})
            if (model := _try_build(exp, small)) is None:
                continue
            if model.methods() != full.methods():
                break
            top, left = (H - side) // 2, (W - side) // 2
            imgs = X.reshape(-1, C, H, W)[:, :, top:top + side, left:left + side]
            return model, small, imgs.reshape(X.shape[0], -1)
    return full, info, X


def problem_from_experiment(exp: Experiment, data: DataBundle, *, n: int | None = None,
                            dims: int | None = 20, crop: int | None = 8) -> Problem:
    """The configured model in float64 at its initial weights, on the first n training
    examples: flat inputs cut to their first `dims` dimensions, images to a centre crop of
    `crop` x `crop` pixels (or the smallest larger crop the network accepts; the whole
    images when that crop would change a layer's method).

    n defaults to 2 (the hand-outs'), and to 4 for a model with batch norm (state): on two
    examples BN maps every feature to +-1 and its gradient lives on near-ties of the two,
    so J is so curved and rounding-sensitive that finite differences lose 1e-5."""
    tr = data.train
    model, info, X = _reduced(exp, data.info, tr.X[:max(n or 4, 1)], dims, crop)
    n = n or (4 if model.state else 2)
    if n < 1 or n > len(data.train):
        raise UserError(f"--n: need 1..{len(data.train)} examples, got {n}")
    X = X[:n]
    if np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    target = tr.T[:n].astype(np.float64) if tr.T is not None else tr.y[:n]
    weights = (class_weights(tr.y, data.info.n_classes, np.float64)[:n]
               if exp.train.class_weighted else None)
    what = (f"{exp.model.type}, {n} example{'s' if n > 1 else ''}, input {tuple(X.shape[1:])}"
            + (f" (image {'x'.join(map(str, info.meta['image_shape']))})"
               if "image_shape" in info.meta else "")
            + "".join(f", {layer} {how}" for layer, how in model.methods().items())
            + f", lambda {exp.model.params.l2}, float64")
    return Problem(model, X, target, weights, exp.seed, what, exp.model.type)
