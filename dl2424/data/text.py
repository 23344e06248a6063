"""Character-level text for recurrent language models (DD2424 Assignment 4).

Two modes:
- book: the whole UTF-8 file is one sequence of character indices (the hand-out's
  goblet_book.txt); optionally its last `val_fraction` is a held-out validation chunk.
- lines: every line is a document: its characters then an end-of-sequence character (the
  newline itself, which no line contains), the state starts from zero at each line (the
  2017 tweet bonus, up to max_length characters). `source: names` reads the surname files
  (the names dataset, same validation split as the ConvNet); with `by_class` each name
  starts from its language's start token, so one model generates names per language.

The character map is ordered (sorted by code point) and saved in the run's data.json, so
`generate` needs only the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from ..errors import UserError
from ..registry import DATASETS, Params
from .bundle import DataInfo
from .paths import Found

NAME = "text"
EOS = "\n"
# Files `data fetch` knows, found under <data dir>/text/ by their short name.
KNOWN = {"goblet": "goblet_book.txt", "tinyshakespeare": "tinyshakespeare.txt"}


class TextParams(Params):
    path: str = Field(description="a UTF-8 text file, or goblet / tinyshakespeare (looked "
                      "for in <data dir>/text/)", default="tinyshakespeare")
    source: Literal["file", "names"] = Field(
        "file", description="names: the surname files of the names dataset, one per line")
    mode: Literal["book", "lines"] = "book"
    seq_length: PositiveInt = Field(25, description="characters per truncated-BPTT piece")
    order: Literal["sequential", "random", "chunks"] = Field(
        "sequential", description="book: in order with the state carried (hand-out), random "
        "locations from a zero state, or shuffled chunks read in order")
    chunk_length: PositiveInt = Field(2500, description="order chunks: characters per chunk")
    val_fraction: float = Field(0.0, ge=0, lt=1, description="book: held-out final part; "
                                "lines from a file: held-out random lines")
    max_length: PositiveInt = Field(140, description="lines: longest line kept (characters)")
    by_class: bool = Field(False, description="source names: one start token per language")

    @model_validator(mode="after")
    def _consistent(self):
        if self.source == "names" and self.mode != "lines":
            raise ValueError("source: names needs mode: lines (one surname per line)")
        if self.by_class and self.source != "names":
            raise ValueError("by_class needs source: names (classes come from the names files)")
        if self.mode == "lines" and self.order != "sequential":
            raise ValueError("order applies to mode: book (lines are shuffled every epoch)")
        if self.order == "chunks" and self.chunk_length <= self.seq_length:
            raise ValueError("chunk_length must be longer than seq_length")
        return self


@dataclass
class Vocab:
    """The ordered character map; inputs beyond the characters are start tokens."""

    chars: str
    classes: tuple[str, ...] = ()  # start tokens, one per class (line mode by class)
    eos: bool = False

    @property
    def K(self) -> int:
        return len(self.chars)

    @property
    def n_inputs(self) -> int:
        return self.K + len(self.classes)

    def encode(self, text: str) -> np.ndarray:
        table = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.fromiter((table[c] for c in text), np.int64, len(text))
        except KeyError as e:
            raise UserError(f"character {e.args[0]!r} is not in the model's alphabet "
                            f"{self.chars!r}; use only those characters") from None

    def decode(self, idx) -> str:
        return "".join(self.chars[i] for i in idx)

    def start(self, cls: str | None = None) -> int:
        """The first input of a line: the class's token, else the end-of-sequence char."""
        if cls is None:
            return self.chars.index(EOS)
        return self.K + self.classes.index(cls)

    def to_json(self) -> dict:
        return {"chars": list(self.chars), "classes": list(self.classes), "eos": self.eos}

    @classmethod
    def from_json(cls, d: dict) -> Vocab:
        return cls("".join(d["chars"]), tuple(d.get("classes", ())), bool(d.get("eos")))


@dataclass
class TextSplit:
    """One split. Book: `seq`, the indices of the text. Lines: X (n, L) inputs (start token,
    then the characters), Y (n, L) targets (the characters, then EOS; -1 = padding)."""

    seq: np.ndarray | None = None
    X_lines: np.ndarray | None = None
    Y_lines: np.ndarray | None = None
    labels: np.ndarray | None = None
    seq_length: int = 25

    @property
    def X(self) -> np.ndarray:
        """Inputs as rows: consecutive seq_length windows (book) or the lines."""
        if self.seq is None:
            return self.X_lines
        n = (len(self.seq) - 1) // self.seq_length
        return self.seq[: n * self.seq_length].reshape(n, self.seq_length)

    @property
    def y(self) -> np.ndarray:
        if self.seq is None:
            return self.Y_lines
        n = (len(self.seq) - 1) // self.seq_length
        return self.seq[1: n * self.seq_length + 1].reshape(n, self.seq_length)

    T = None  # no soft targets (the gradient check reads split.T)

    def __len__(self) -> int:
        return len(self.X)

    @property
    def n_chars(self) -> int:
        return len(self.seq) if self.seq is not None else int((self.Y_lines >= 0).sum())


@dataclass
class TextBundle:
    train: TextSplit
    val: TextSplit | None
    info: DataInfo
    vocab: Vocab
    params: TextParams
    test = None
    masks = {}
    normalisation = None


def text_path(p: TextParams, data_dir: Path) -> Path:
    """The file a config names: a path as given, else <data dir>/text/<file>."""
    given = Path(p.path).expanduser()
    candidates = [given, data_dir / "text" / p.path, data_dir / p.path]
    if p.path in KNOWN:
        candidates += [data_dir / "text" / KNOWN[p.path], data_dir / KNOWN[p.path]]
    for c in candidates:
        if c.is_file():
            return c
    hint = (f"get it with: dl2424 data fetch {p.path}" if p.path in KNOWN else
            "give an existing UTF-8 file (a path, or a file name under <data dir>/text/)")
    raise UserError(f"data.path: {p.path!r} not found (looked in "
                    f"{', '.join(str(c) for c in candidates)}); {hint}")


def read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                        f"{e.start}); convert it to UTF-8") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    if len(text) < 3:
        raise UserError(f"{path}: only {len(text)} characters; a text model needs more")
    return text


def load_book(p: TextParams, data_dir: Path) -> TextBundle:
    text = read_text(text_path(p, data_dir))
    vocab = Vocab("".join(sorted(set(text))))
    seq = vocab.encode(text)
    n_val = int(len(seq) * p.val_fraction)
    if len(seq) - n_val < p.seq_length + 1:
        raise UserError(f"data.seq_length: {p.seq_length} is longer than the training text "
                        f"({len(seq) - n_val} characters); use a shorter seq_length")
    train = TextSplit(seq=seq[: len(seq) - n_val], seq_length=p.seq_length)
    val = TextSplit(seq=seq[len(seq) - n_val:], seq_length=p.seq_length) if n_val > 1 else None
    return TextBundle(train, val, _info(p, vocab), vocab, p)


def _read_lines(p: TextParams, data_dir: Path):
    """(train lines, train labels, val lines, val labels, class names)."""
    if p.source == "names":
        from .names import NamesParams, read_table

        table = read_table(NamesParams(), data_dir)
        names, labels = np.array(table.names, dtype=object), np.asarray(table.labels)
        val = np.asarray(table.is_val)
        classes = list(table.class_names)
        return (list(names[~val]), labels[~val], list(names[val]), labels[val], classes)
    lines = [s for s in read_text(text_path(p, data_dir)).split(EOS) if s.strip()]
    lines = [s[: p.max_length] for s in lines]
    if len(lines) < 2:
        raise UserError(f"data.path: {p.path!r} has fewer than 2 non-empty lines; mode: lines "
                        "reads one document per line")
    n_val = int(len(lines) * p.val_fraction)
    rng = np.random.default_rng(0)
    val = np.zeros(len(lines), bool)
    val[rng.choice(len(lines), n_val, replace=False)] = True
    arr, zeros = np.array(lines, dtype=object), np.zeros(len(lines), np.int64)
    return list(arr[~val]), zeros[~val], list(arr[val]), zeros[val], []


def encode_lines(vocab: Vocab, lines: list[str], labels, by_class: bool, classes: list[str]):
    """Lines -> X (n, L) start token + characters, Y (n, L) characters + EOS, -1 padded."""
    L = max(map(len, lines)) + 1
    X = np.zeros((len(lines), L), np.int64)
    Y = np.full((len(lines), L), -1, np.int64)
    for i, (s, k) in enumerate(zip(lines, labels, strict=True)):
        idx = vocab.encode(s + EOS)
        X[i, 0] = vocab.start(classes[k] if by_class else None)
        X[i, 1:len(idx)] = idx[:-1]
        Y[i, :len(idx)] = idx
    return X, Y


def load_lines(p: TextParams, data_dir: Path) -> TextBundle:
    tr, tr_y, va, va_y, classes = _read_lines(p, data_dir)
    vocab = Vocab("".join(sorted(set("".join(tr + va)) | {EOS})),
                  tuple(classes) if p.by_class else (), eos=True)
    X, Y = encode_lines(vocab, tr, tr_y, p.by_class, classes)
    train = TextSplit(X_lines=X, Y_lines=Y, labels=tr_y, seq_length=X.shape[1])
    val = None
    if va:
        Xv, Yv = encode_lines(vocab, va, va_y, p.by_class, classes)
        val = TextSplit(X_lines=Xv, Y_lines=Yv, labels=va_y, seq_length=Xv.shape[1])
    return TextBundle(train, val, _info(p, vocab), vocab, p)


def _info(p: TextParams, vocab: Vocab) -> DataInfo:
    return DataInfo(input_shape=(p.seq_length,), class_names=list(vocab.classes),
                    meta={"task": "lm", "vocab": vocab.K, "n_inputs": vocab.n_inputs,
                          "mode": p.mode, "text": vocab.to_json()})


def search_places(data_dir: Path) -> list[str]:
    """Where the known texts are looked for (any other file is given by its path)."""
    return [str(d / f) for d in (data_dir / "text", data_dir) for f in KNOWN.values()]


def locate(data_dir: Path) -> Found | None:
    """The folder holding the known texts, its 'format' the ones present."""
    for d in (data_dir / "text", data_dir):
        present = [name for name, f in KNOWN.items() if (d / f).is_file()]
        if present:
            return Found(d, ", ".join(present))
    return None


@DATASETS.register(NAME, TextParams, locate=locate, search_places=search_places)
def load(p: TextParams, data_dir: Path, dtype: np.dtype) -> TextBundle:
    """Characters of a UTF-8 text (one book, or one document per line) for language models."""
    return load_book(p, data_dir) if p.mode == "book" else load_lines(p, data_dir)


def describe_text(name: str, data_dir: Path) -> str:
    """`data inspect goblet`: where the file is, its size, characters and alphabet."""
    path = text_path(TextParams(path=name), data_dir)
    text = read_text(path)
    chars = "".join(sorted(set(text)))
    return (f"{path}: {path.stat().st_size:,} bytes, {len(text):,} characters, "
            f"{len(chars)} distinct, {text.count(EOS):,} lines\nalphabet: {chars!r}")
