"""Weight initializers: each returns a callable (fan_in, shape, rng, dtype) -> array."""

from __future__ import annotations

import numpy as np
from pydantic import PositiveFloat

from ..registry import INITS, Params


class GaussianParams(Params):
    std: PositiveFloat = 0.01


@INITS.register("gaussian", GaussianParams)
def gaussian(p: GaussianParams):
    """N(0, std^2) for every weight (A1: std 0.01; the A3 sensitivity runs)."""
    return lambda fan_in, shape, rng, dtype: (p.std * rng.standard_normal(shape)).astype(dtype)


@INITS.register("xavier")
def xavier(p: Params):
    """N(0, 1/fan_in) (the course's 'Xavier', A2 2019+: std 1/sqrt(d))."""
    return lambda fan_in, shape, rng, dtype: (
        rng.standard_normal(shape) / np.sqrt(fan_in)
    ).astype(dtype)


@INITS.register("he")
def he(p: Params):
    """N(0, 2/fan_in) (He et al. 2015), for ReLU networks."""
    return lambda fan_in, shape, rng, dtype: (
        rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    ).astype(dtype)


class FanInParams(Params):
    scale: PositiveFloat = 1.0


@INITS.register("fan_in", FanInParams)
def fan_in(p: FanInParams):
    """N(0, scale/fan_in) (A4 2026: U ~ N(0, 1/(2K)), W ~ N(0, 1/(2m)) with scale 0.5)."""
    return lambda fan_in, shape, rng, dtype: (
        rng.standard_normal(shape) * np.sqrt(p.scale / fan_in)
    ).astype(dtype)
