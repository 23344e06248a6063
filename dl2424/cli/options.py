"""The options several commands share, declared once, and every fixed choice as a StrEnum
(typer checks it and lists the choices in --help and in the error, exit status 2)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .. import settings as _settings

Configs = Annotated[list[Path] | None, typer.Argument(
    help="Experiment YAML files, merged left to right (later ones override earlier ones).")]
MoreConfigs = Annotated[list[Path] | None, typer.Option(
    "--config", "-c", help="Another experiment YAML, merged after the CONFIG arguments.")]
Overrides = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config value: dotted.key=value (value parsed as YAML).")]
DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", file_okay=False,
    help="Where datasets are; default $DL2424_DATA_DIR, else a per-user cache folder.")]
RunsDir = Annotated[Path | None, typer.Option(
    help="Where run folders are; default $DL2424_RUNS_DIR, else runs.")]
SweepsDir = Annotated[Path | None, typer.Option(
    help="Where sweep folders go; default $DL2424_SWEEPS_DIR, else sweeps.")]
Quiet = Annotated[bool, typer.Option(help="No progress display.")]


class Weights(StrEnum):
    best = "best"  # best validation accuracy (best.npz)
    last = "last"  # the final checkpoint


WeightsOption = Annotated[Weights, typer.Option(
    help="best (best validation accuracy) or last (final checkpoint).")]


class Spacing(StrEnum):
    exp = "exp"  # log-spaced
    linear = "linear"


def configs_of(config: list[Path] | None, more: list[Path] | None) -> list[Path]:
    return [*(config or []), *(more or [])]


def settings(data_dir: Path | None = None, runs_dir: Path | None = None,
             sweeps_dir: Path | None = None) -> _settings.Settings:
    """The command's settings: its options, else the environment, else the defaults."""
    return _settings.read(data_dir, runs_dir, sweeps_dir)
