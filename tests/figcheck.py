"""Record the figures dl2424 saves, and every text each save draws with where it landed.

    with recording() as saved: make_report(...)
    saved: [Saved(figure, texts)], one per Figure.savefig call, in order
    clipped(saved_item) -> [(text, (x0, y0, x1, y1))] drawn outside the saved image
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.text import Text


@dataclass
class Saved:
    figure: Figure
    file: str | None  # the file name saved to; None for a buffer
    size: tuple[float, float] = (0.0, 0.0)  # pixels of the image written
    drawn: dict = field(default_factory=dict)  # id(artist) -> (artist, extent)

    @property
    def texts(self) -> list[tuple[Text, tuple]]:
        """(artist, extent) of each text, as the last draw placed it (a save with a layout
        engine draws once without rendering, to lay out, then renders)."""
        return list(self.drawn.values())


@contextlib.contextmanager
def recording():
    """Collect every Figure.savefig while the block runs, with the non-empty text artists
    that save rendered and their extents in the saved image's pixels."""
    saved: list[Saved] = []
    current: list[Saved] = []
    save, draw = Figure.savefig, Text.draw

    def savefig(self, fname, *args, **kwargs):
        current.append(Saved(self, Path(fname).name if isinstance(fname, str | PathLike)
                             else None))
        try:
            save(self, fname, *args, **kwargs)
        finally:
            saved.append(current.pop())

    def draw_text(self, renderer):
        draw(self, renderer)
        if current and self.get_visible() and self.get_text().strip():
            item = current[-1]
            item.size = (item.figure.bbox.width, item.figure.bbox.height)
            item.drawn[id(self)] = (self, tuple(self.get_window_extent(renderer).extents))

    Figure.savefig, Text.draw = savefig, draw_text
    try:
        yield saved
    finally:
        Figure.savefig, Text.draw = save, draw


def clipped(item: Saved, tolerance: float = 1.0) -> list[tuple[str, tuple]]:
    w, h = item.size
    return [(t.get_text(), tuple(round(v) for v in e)) for t, e in item.texts
            if e[0] < -tolerance or e[1] < -tolerance or e[2] > w + tolerance
            or e[3] > h + tolerance]
