"""Trial values from a search space: grid points, random draws, and coarse-to-fine narrowing.

Random draws are deterministic under the spec's seed. Each space key has its own generator,
PCG64([seed, crc32(key)]), drawing one uniform u in [0, 1) per trial, which is then mapped
into the key's distribution. So a key's values do not depend on the other keys, and asking
for more trials keeps the first ones.
"""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np

from ..errors import UserError
from .spec import (
    CONTINUOUS,
    Choice,
    Grid,
    IntUniform,
    LogGrid,
    LogUniform,
    SearchSpec,
    Uniform,
    kind_of,
)


def unit_draws(seed: int, key: str, n: int) -> np.ndarray:
    """Returns (n,) uniform draws in [0, 1) for one space key."""
    rng = np.random.Generator(np.random.PCG64([seed, zlib.crc32(key.encode())]))
    return rng.random(n)


def log_grid_values(lo: float, hi: float, n: int) -> list[float]:
    """n values 10^l with l evenly spaced from log10(lo) to log10(hi), both included."""
    a, b = math.log10(lo), math.log10(hi)
    return [10.0 ** (a + (b - a) * i / (n - 1)) for i in range(n)]


def finite_values(dist) -> list:
    """Every value of a finite distribution, in order."""
    if isinstance(dist, (Choice, Grid)):
        return list(getattr(dist, kind_of(dist)))
    if isinstance(dist, IntUniform):
        lo, hi = dist.int_uniform
        return list(range(lo, hi + 1))
    if isinstance(dist, LogGrid):
        g = dist.log_grid
        return log_grid_values(g.lo, g.hi, g.n)
    raise TypeError(f"{kind_of(dist)} has no finite list of values")


def from_unit(dist, u: float):
    """Map one uniform draw u in [0, 1) to a value of the distribution.

    uniform [lo, hi]: lo + u (hi - lo). log_uniform [lo, hi]: 10^(a + u (b - a)) with
    a, b = log10 lo, log10 hi. int_uniform [lo, hi]: lo + floor(u (hi - lo + 1)).
    choice / grid / log_grid: the value at index floor(u n), each equally likely.
    """
    if isinstance(dist, Uniform):
        lo, hi = dist.uniform
        return float(lo + u * (hi - lo))
    if isinstance(dist, LogUniform):
        a, b = (math.log10(v) for v in dist.log_uniform)
        return float(10.0 ** (a + u * (b - a)))
    if isinstance(dist, IntUniform):
        lo, hi = dist.int_uniform
        return min(lo + int(u * (hi - lo + 1)), hi)
    values = finite_values(dist)
    return values[min(int(u * len(values)), len(values) - 1)]


def grid_points(space: dict) -> list[dict]:
    """The cartesian product of the keys' values, in the space's order (last key fastest)."""
    keys = list(space)
    combos = itertools.product(*(finite_values(space[k]) for k in keys))
    return [dict(zip(keys, combo, strict=True)) for combo in combos]


def narrow(dist, centre, factor: float):
    """A narrower copy of a uniform or log_uniform distribution around a centre value c.

    log_uniform: [c / factor, c * factor] — a fixed width of 2 log10(factor) decades; not
    clipped to the spec's range, so a best value at the edge of the coarse range can move on.
    uniform [lo, hi]: c ± (hi - lo) / (2 factor), clipped to [lo, hi] (linear keys often
    have hard limits, such as probabilities); the centre is first clipped into [lo, hi].
    """
    if not isinstance(centre, (int, float)) or isinstance(centre, bool):
        raise UserError(f"refine: centre {centre!r} is not a number")
    if isinstance(dist, LogUniform):
        if centre <= 0:
            raise UserError(f"refine: cannot centre a log_uniform range on {centre} (≤ 0)")
        return LogUniform(log_uniform=(centre / factor, centre * factor))
    lo, hi = dist.uniform
    c = min(max(float(centre), lo), hi)
    half = (hi - lo) / (2 * factor)
    return Uniform(uniform=(max(lo, c - half), min(hi, c + half)))


def centre_spaces(space: dict, centres: list[dict], factor: float) -> list[dict]:
    """One space per centre: its continuous keys narrowed around the centre's values; keys
    the centre has no value for, and discrete keys, stay as the spec gives them."""
    return [{k: narrow(d, c[k], factor) if isinstance(d, CONTINUOUS) and k in c else d
             for k, d in space.items()} for c in centres]


def plan_trials(spec: SearchSpec, centres: list[dict] | None = None) -> list[dict]:
    """The values of every trial, one dict per trial (space keys → plain Python values).

    With centres (best first), trial i draws from the space narrowed around centre i mod k:
    the trials are spread round-robin across the k centres, the best getting any extra.
    """
    if spec.method == "grid":
        return grid_points(spec.space)
    n = spec.trials
    draws = {k: unit_draws(spec.seed, k, n) for k in spec.space}
    spaces = centre_spaces(spec.space, centres, spec.refine.factor) if centres else [spec.space]
    return [{k: from_unit(spaces[i % len(spaces)][k], float(draws[k][i])) for k in spec.space}
            for i in range(n)]
