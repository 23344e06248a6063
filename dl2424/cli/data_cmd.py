"""`dl2424 data list | fetch | inspect`: where datasets are, getting them, looking at them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from ..data.fetch import fetch
from ..data.inspect import CifarFacts, NamesFacts, inspect_cifar, inspect_names
from ..data.paths import list_datasets
from . import app, console, user_errors
from .options import DataDir, settings

data_app = typer.Typer(help="List, download and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


class DatasetName(StrEnum):
    cifar10 = "cifar10"
    names = "names"
    goblet = "goblet"  # texts for the recurrent models (fetch only)
    tinyshakespeare = "tinyshakespeare"


class ArchiveFormat(StrEnum):
    python = "python"
    matlab = "matlab"


class NamesSource(StrEnum):
    course = "course"
    tutorial = "tutorial"


@data_app.command("list")
def list_cmd(data_dir: DataDir = None):
    """Show the known datasets, where each is looked for, and whether it is present."""
    with user_errors():
        s = settings(data_dir)
        rows = list_datasets(s.data_dir)
    console.print(f"data dir: {s.data_dir}  [dim](from {s.data_dir_origin})[/]")
    table = Table("dataset", "status", "format")
    table.add_column("folder / looked in", no_wrap=True)  # whole paths, to copy
    table.add_column("description", ratio=1)
    for r in rows:
        status = "[green]present[/]" if r.found else "[red]missing[/]"
        where = str(r.found) if r.found else "\n".join(r.looked_in)
        table.add_row(r.name, status, r.format or "", where, r.help)
    console.print(table)
    for r in rows:
        if not r.found:
            what = "goblet (or tinyshakespeare)" if r.name == "text" else r.name
            console.print(f"get {r.name}: dl2424 data fetch {what}")


@data_app.command("fetch")
def fetch_cmd(
    name: Annotated[DatasetName, typer.Argument(help="Dataset to download.")],
    fmt: Annotated[ArchiveFormat | None, typer.Option(
        "--format", help="cifar10: python pickles (default) or MATLAB .mat batches.")] = None,
    source: Annotated[NamesSource | None, typer.Option(
        "--source", help="names: the course's files (default) or the PyTorch tutorial.")] = None,
    data_dir: DataDir = None,
):
    """Download a dataset from its public source and check its hash."""
    with user_errors():
        root = settings(data_dir).data_dir
        result = fetch(name.value, root, fmt and fmt.value, source and source.value)
    if result.already_present:
        console.print(f"{result.name} is already present in {result.folder}")
        return
    console.print(f"{result.name} is in {result.folder}")
    for fname, digest in result.hashes.items():
        verdict = "verified" if result.pinned else "[yellow]no pinned hash is known; compare " \
                                                   "this with a trusted copy[/]"
        console.print(f"  {fname}  {digest}  {verdict}")
    if name is DatasetName.names and source is NamesSource.tutorial:
        console.print("load it with `data: {type: names, format: tutorial}` if course files "
                      "are also present")


@data_app.command("inspect")
def inspect_cmd(
    name: Annotated[DatasetName, typer.Argument(help="Dataset to inspect.")],
    data_dir: DataDir = None,
    limit: Annotated[int, typer.Option(help="Examples to show per list.")] = 10,
):
    """Print class sizes, overlaps and oddities of a dataset."""
    with user_errors():
        root = settings(data_dir).data_dir
        if name in (DatasetName.goblet, DatasetName.tinyshakespeare):
            from ..data.text import describe_text
            console.print(describe_text(name.value, root), highlight=False)
            return
        facts = inspect_names(root) if name is DatasetName.names else inspect_cifar(root)
    if isinstance(facts, NamesFacts):
        _print_names(facts, limit)
    else:
        _print_cifar(facts)


def _print_names(f: NamesFacts, limit: int):
    n_train, n_val = int(f.train_counts.sum()), int(f.val_counts.sum())
    console.print(f"names ({f.format} format) from {f.folder}: {n_train + n_val} names, "
                  f"{n_train} train, {n_val} val, {len(f.class_names)} classes")
    console.print(f"alphabet ({len(f.alphabet)} characters): {f.alphabet!r}; "
                  f"longest name n_len = {f.n_len}", highlight=False)
    table = Table("#", "class", "train", "val")
    for k, cls in enumerate(f.class_names):
        table.add_row(str(k + 1), cls, str(f.train_counts[k]), str(f.val_counts[k]))
    console.print(table)
    lengths = Table("length", "names", "", title="name lengths")
    top = max(f.length_counts.values())
    for n, count in f.length_counts.items():
        lengths.add_row(str(n), str(count), "█" * max(1, round(40 * count / top)))
    console.print(lengths)
    extra = sum(c - 1 for _, _, c in f.duplicates)
    _print_list(f"{len(f.duplicates)} exact duplicates (same name and label; {extra} extra "
                "copies)", [f"{n!r} {cls} x{c}" for n, cls, c in f.duplicates], limit)
    _print_list(f"{len(f.multi_label)} names carry more than one label",
                [f"{n!r}: {', '.join(cls)}" for n, cls in f.multi_label], limit)
    _print_list(f"{len(f.val_in_train)} validation names also occur in the training part",
                [f"{n!r} ({cls})" for n, cls in f.val_in_train], limit)
    if f.dropped_chars or f.dropped_names:
        chars = ", ".join(f"{c!r} x{k}" for c, k in f.dropped_chars.items())
        console.print(f"non-ASCII characters dropped after folding accents: {chars or 'none'}; "
                      f"names left empty and skipped: {f.dropped_names}", highlight=False)


def _print_list(title: str, items: list[str], limit: int):
    console.print(title, highlight=False)
    shown = items[:limit]
    if shown:
        more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
        console.print("  " + "; ".join(shown) + more, highlight=False)


def _print_cifar(f: CifarFacts):
    console.print(f"cifar10 ({f.format} batches) from {f.folder}")
    table = Table("split", "n", *f.class_names, "mean R/G/B", "std R/G/B")
    for s in f.splits:
        table.add_row(s.split, str(s.n), *map(str, s.class_counts),
                      "/".join(f"{v:.1f}" for v in s.channel_mean),
                      "/".join(f"{v:.1f}" for v in s.channel_std))
    console.print(table)
    console.print("pixel statistics are on the raw 0..255 scale", style="dim")
