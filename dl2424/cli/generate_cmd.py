"""`generate`: text from a trained language-model run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from . import app, console, user_errors


@app.command()
def generate(
    run: Annotated[Path, typer.Option(help="Run folder of a text (language-model) run.")],
    length: Annotated[int, typer.Option(help="Characters to write (lines: at most).")] = 1000,
    temperature: Annotated[float, typer.Option(help="Sample from softmax(o / T).")] = 1.0,
    top_p: Annotated[float, typer.Option(
        "--top-p", help="Nucleus sampling: keep the most probable characters up to this "
        "total probability (1 = all).")] = 1.0,
    prime: Annotated[str, typer.Option(help="Text to start from (it is printed too).")] = "",
    seed: Annotated[int, typer.Option(help="Seed of the sampling.")] = 0,
    cls: Annotated[str | None, typer.Option(
        "--class", help="Lines by class (surnames): the language to write names of.")] = None,
    count: Annotated[int, typer.Option(help="How many passages or lines.")] = 1,
    weights: Annotated[str, typer.Option(
        help="best (lowest smooth loss) or last (final checkpoint).")] = "best",
):
    """Write text with a trained character model: dl2424 generate --run runs/<id>."""
    from ..generate import Settings
    from ..generate import generate as run_generate

    with user_errors():
        if weights not in ("best", "last"):
            raise UserError(f"--weights: {weights!r} is not one of best, last")
        texts = run_generate(run, Settings(length, temperature, top_p, prime, seed, cls, count),
                             weights)
    for t in texts:
        console.print(t, highlight=False, markup=False, soft_wrap=True)
