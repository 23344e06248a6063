"""Where datasets live: the data directory, and what `data list` reports about each dataset."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pooch

ENV_VAR = "DL2424_DATA_DIR"


def resolve_data_dir(cli_value: Path | None) -> Path:
    """The data directory: `--data-dir`, else $DL2424_DATA_DIR, else a per-user cache folder."""
    if cli_value is not None:
        return Path(cli_value).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path(pooch.os_cache("dl2424"))


def data_dir_origin(cli_value: Path | None) -> str:
    """Which of the three rules `resolve_data_dir` used, for messages."""
    if cli_value is not None:
        return "--data-dir"
    if os.environ.get(ENV_VAR):
        return f"${ENV_VAR}"
    return "the default cache folder"


def search_dirs(data_dir: Path, folder: str) -> list[Path]:
    """data_dir/folder, then data_dir/*/folder (one level deeper), existing ones only."""
    direct = [data_dir / folder]
    deeper = sorted(data_dir.glob(f"*/{folder}")) if data_dir.is_dir() else []
    return [d for d in direct + deeper if d.is_dir()]


@dataclass(frozen=True)
class Found:
    """Where a dataset's files are and in which of its formats."""

    folder: Path
    format: str  # e.g. "python", "matlab" (cifar10); "course", "tutorial" (names)


@dataclass
class DatasetStatus:
    """One row of `dl2424 data list`."""

    name: str
    help: str
    looked_in: list[str]  # paths and glob patterns, in search order
    found: Path | None  # the folder that would be loaded
    format: str | None  # e.g. "python", "matlab", "course", "tutorial"


def list_datasets(data_dir: Path) -> list[DatasetStatus]:
    """For each registered dataset: where it is looked for under data_dir and whether present.
    A dataset registers its `locate(data_dir)` and `search_places(data_dir)` with DATASETS."""
    from ..registry import DATASETS  # imported here: registering datasets imports this module

    rows = []
    for name in DATASETS.names():
        entry = DATASETS[name]
        found = entry.extras["locate"](data_dir)
        rows.append(DatasetStatus(
            name=name,
            help=entry.help,
            looked_in=entry.extras["search_places"](data_dir),
            found=found.folder if found else None,
            format=found.format if found else None,
        ))
    return rows
