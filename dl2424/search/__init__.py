"""Hyper-parameter search: a spec of distributions over config keys, trials as ordinary runs.

spec.py    the search spec (YAML → pydantic) · sample.py  trial values (grid, random, refine)
sweep.py   the sweep folder and its loop     · execute.py local process pool or dask
plot.py    the metric against each searched key
"""

from .spec import Search, SearchSpec, load_spec
from .sweep import Sweep, Trial, create, load, run

__all__ = ["Search", "SearchSpec", "Sweep", "Trial", "create", "load", "load_spec", "run"]
