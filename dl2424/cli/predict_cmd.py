"""`predict`: the language of surnames, from a trained run."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import UserError
from . import app, console, err_console, user_errors
from .options import DataDir, RunsDir, Weights, WeightsOption, settings


class Truncate(StrEnum):
    first = "first"
    last = "last"


def _read_list(source: Path) -> tuple[str, str]:
    """(text, where) of a name list: a file, or stdin for '-'."""
    if str(source) == "-":
        return sys.stdin.read(), "stdin"
    try:
        return source.read_text(encoding="utf-8"), str(source)
    except FileNotFoundError:
        raise UserError(f"--from {source}: no such file; give a text file with one name "
                        "per line (optionally followed by its language), or - for stdin"
                        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--from {source}: cannot read it as UTF-8 text ({e})") from None


def _table(results, top: int, first: str = "name") -> Table:
    labelled = any(r.label is not None for r in results)
    show_read = any(r.read_as != r.name.strip().lower() for r in results)
    t = Table()
    t.add_column(first, overflow="fold")
    if show_read:
        t.add_column("read as")
    if labelled:
        for col in ("true", "predicted", "p(true)", "rank of true"):
            t.add_column(col, justify="left" if col in ("true", "predicted") else "right")
    else:
        for i in range(1, min(top, len(results[0].ranking)) + 1):
            t.add_column(f"#{i}")
    for r in results:
        cells = [escape(r.name)] + ([escape(r.read_as)] if show_read else [])
        if labelled and r.label is not None:
            mark = "[green]✓[/]" if r.correct else "[red]✗[/]"
            cells += [r.label, f"{mark} {r.ranking[0][0]} ({r.ranking[0][1]:.3f})",
                      f"{r.p_label:.3f}", str(r.rank)]
        elif labelled:
            cells += ["–", f"{r.ranking[0][0]} ({r.ranking[0][1]:.3f})", "–", "–"]
        else:
            cells += [f"{c} {p:.3f}" for c, p in r.ranking[:top]]
        t.add_row(*cells)
    return t


@app.command()
def predict(
    name: Annotated[list[str] | None, typer.Option(
        "--name", help="A surname; repeat for several.")] = None,
    from_: Annotated[Path | None, typer.Option(
        "--from", help="A file with one name per line, optionally followed by its language "
        "(a name or the course's 1-based number): 'Nakamura Japanese'. - reads stdin.")
    ] = None,
    image: Annotated[list[Path] | None, typer.Option(
        help="An image file (any size: its centre square is resized to 32x32) for a CIFAR "
        "run; more files may follow: --image a.png b.jpg.")] = None,
    more: Annotated[list[Path] | None, typer.Argument(
        metavar="[IMAGE]...", help="More image files after --image.", show_default=False)
    ] = None,
    from_test: Annotated[int | None, typer.Option(
        "--from-test", help="Draw the first N test images of an image run with their true "
        "and predicted classes into a figure (--out).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Figure file of --from-test; default RUN/test_predictions.png.")] = None,
    run: Annotated[Path | None, typer.Option(
        help="Run folder to use; default: the completed run of the right kind (surname or "
        "image) with the best validation accuracy.")] = None,
    top: Annotated[int, typer.Option(help="Show the TOP most likely classes.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="One CSV row per name.")] = False,
    drop_unknown: Annotated[bool, typer.Option(
        help="Drop characters outside the alphabet instead of failing.")] = False,
    truncate: Annotated[Truncate, typer.Option(
        help="Names longer than the model's n_len keep their first or last characters.")
    ] = Truncate.first,
    weights: WeightsOption = Weights.best,
    runs_dir: RunsDir = None,
    data_dir: DataDir = None,
):
    """Predict the language of surnames (dl2424 predict --name Xiong --name Gagos, or
    --from friends.txt with lines 'Name' or 'Name Language' for an accuracy), or the class
    of images (--image a.png b.jpg; --from-test 16 draws test images)."""
    from .. import predict as lib

    images = list(image or []) + list(more or [])
    with user_errors():
        kind = _kind(name or from_ is not None, image, more, from_test, top, as_json, as_csv)
        wants_images = kind == "image"
        s = settings(data_dir, runs_dir)
        choice = lib.given_run(run) if run is not None else lib.best_run(s.runs_dir, kind)
        if wants_images:
            results, figure = _predict_images(choice.run, weights, images, from_test, out,
                                              s.data_dir)
        else:
            results = _predict_names(choice.run, weights, name, from_, truncate, drop_unknown)
    _show(lib, choice, results, top, as_json, as_csv, "file" if wants_images else "name")
    if wants_images and figure:
        console.print(f"figure: [bold]{figure[0]}[/] ({figure[1]}/{figure[2]} test images "
                      "right)", highlight=False)


def _kind(names: bool, image, more, from_test, top, as_json, as_csv) -> str:
    """What the options ask for, "surname" or "image"; one message for what does not fit."""
    if top < 1:
        raise UserError(f"--top: must be at least 1, got {top}")
    if as_json and as_csv:
        raise UserError("--json and --csv: choose one output format")
    if more and not image:
        raise UserError(f"unexpected argument {str(more[0])!r}; names go after --name, "
                        "image files after --image")
    wants_images = bool(image) or from_test is not None
    if wants_images and names:
        raise UserError("names (--name/--from) and images (--image/--from-test) need "
                        "different runs; ask for one kind at a time")
    if not (names or wants_images):
        raise UserError("give names with --name NAME (repeatable) or --from FILE, or "
                        "images with --image FILE ... or --from-test N")
    return "image" if wants_images else "surname"


def _predict_names(run: Path, weights, name, from_, truncate, drop_unknown):
    from ..predict import Predictor, read_name_list

    predictor = Predictor(run, weights)
    names, labels = list(name or []), [None] * len(name or [])
    if from_ is not None:
        text, where = _read_list(from_)
        listed = read_name_list(text, predictor.class_names, where)
        names += [n for n, _ in listed]
        labels += [lab for _, lab in listed]
    return predictor(names, truncate=truncate.value, drop_unknown=drop_unknown, labels=labels)


def _predict_images(run: Path, weights, images, from_test, out, data_dir):
    from ..predict_image import ImagePredictor, figure_of_test_images

    predictor = ImagePredictor(run, weights)
    figure = None
    if from_test is not None:
        out = out or run / "test_predictions.png"
        right, n = figure_of_test_images(predictor, data_dir, from_test,
                                         out)
        figure = (out, right, n)
    return (predictor(images) if images else []), figure


def _show(lib, choice, results, top: int, as_json: bool, as_csv: bool, first: str) -> None:
    machine = as_json or as_csv
    (err_console if machine else console).print(choice.line(), highlight=False,
                                                soft_wrap=True, markup=False)
    if warning := choice.warning():
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False,
                          soft_wrap=True)
    if as_json:
        print(json.dumps(lib.to_json(choice, results, top), indent=2))
    elif as_csv:
        print(lib.to_csv(results, top), end="")
    elif results:
        console.print(_table(results, top, first))
    right, n = lib.accuracy(results)
    if n and not as_json:
        top_k = f"; top-{top}: {lib.accuracy(results, top)[0]}/{n}" if top > 1 else ""
        (err_console if machine else console).print(
            f"accuracy: {right}/{n} = {100 * right / n:.1f}% of the labelled names{top_k}",
            highlight=False)
    for r in results:
        if r.notice:
            err_console.print(f"note: {r.name[:40]!r}: {r.notice}", highlight=False,
                              markup=False)
