"""Where datasets live: the data directory, and what `data list` reports about each dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
