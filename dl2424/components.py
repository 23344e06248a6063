"""Importing this module registers every built-in component: every module of
dl2424/models is imported, so a new model registers by being there."""

import importlib
import pkgutil

from . import data, models, optim, samplers, schedules  # noqa: F401
from .nn import init, losses  # noqa: F401

for _module in sorted(m.name for m in pkgutil.iter_modules(models.__path__)):
    importlib.import_module(f"{models.__name__}.{_module}")
