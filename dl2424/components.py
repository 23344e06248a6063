"""Importing this module registers every built-in component."""

from . import data, optim, samplers, schedules  # noqa: F401
from .models import charcnn, cnn, mlp, patchnet, rnn  # noqa: F401
from .nn import init, losses  # noqa: F401
