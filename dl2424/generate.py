"""`generate`: text from a trained language-model run (only its folder is read).

Book models continue a prime (or start from a newline) for `length` characters; line
models (surnames) write `count` lines, each from its start token (a language's, with
--class) to the end-of-sequence character. Sampling is the hand-out's inverse CDF on
softmax(o / temperature), optionally restricted to the top-p nucleus.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint, rundir
from .build import build_model
from .data.text import EOS, Vocab
from .errors import UserError
from .models.rnn import LanguageModel, sample
from .rundir import load_info, load_run_config


@dataclass
class Settings:
    length: int = 1000
    temperature: float = 1.0
    top_p: float = 1.0
    prime: str = ""
    seed: int = 0
    cls: str | None = None
    count: int = 1

    def check(self) -> None:
        if self.length < 1 or self.count < 1:
            raise UserError("--length and --count must be at least 1")
        if not self.temperature > 0:
            raise UserError(f"--temperature: must be > 0, got {self.temperature:g}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p: must be in (0, 1], got {self.top_p:g}")


def load_language_model(run: Path, weights: str = "best") -> tuple[LanguageModel, Vocab, str]:
    """The run's model with its best (lowest smooth loss) or last parameters, its character
    map and its text mode (book or lines)."""
    if not (run / rundir.DATA).is_file() or not (run / rundir.CONFIG).is_file():
        raise UserError(f"{run}: not a run folder (no data.json/config.yaml); give a folder "
                        "under runs/ made by dl2424 train")
    info, exp = load_info(run), load_run_config(run)
    if info.meta.get("task") != "lm" or "text" not in info.meta:
        raise UserError(f"{run}: not a language-model run (trained on {exp.data.type}); "
                        "generate needs a run of the text dataset")
    model = build_model(exp, info)
    file = rundir.weights_file(run, weights)
    ckpt = checkpoint.load(file)
    model.state = {k: np.zeros_like(v) for k, v in ckpt.state.items()}  # the carried state
    checkpoint.restore(ckpt, model, where=str(file))
    return model, Vocab.from_json(info.meta["text"]), info.meta["mode"]


def generate(run: Path, s: Settings, weights: str = "best") -> list[str]:
    """Samples from a run: one passage (book mode) or s.count lines (lines mode)."""
    s.check()
    model, vocab, mode = load_language_model(run, weights)
    rng = np.random.default_rng(s.seed)
    if s.cls is not None and s.cls not in vocab.classes:
        raise UserError(f"--class: {s.cls!r} is not a class of this run" + (
            f"; one of: {', '.join(vocab.classes)}" if vocab.classes else
            " (it was trained without classes: data.by_class)"))
    if mode == "book":
        if s.cls is not None:
            raise UserError("--class applies to runs trained on lines by class (surnames)")
        return [_passage(model, vocab, s, rng) for _ in range(s.count)]
    stop = vocab.chars.index(EOS)
    out = []
    for _ in range(s.count):
        cls = s.cls if s.cls is not None or not vocab.classes else \
            vocab.classes[rng.integers(len(vocab.classes))]
        x0, state = _primed(model, [vocab.start(cls), *vocab.encode(s.prime).tolist()])
        idx = sample(model, x0, state, s.length, rng, s.temperature, s.top_p, stop)
        out.append(s.prime + vocab.decode(i for i in idx if i != stop))
    return out


def _primed(model: LanguageModel, seq: list[int]):
    """Feed all but the last of seq through the model from a zero state; returns the last
    (the next input) and the state."""
    state = model.zero_state(1)
    if len(seq) > 1:
        _, state, _ = model.run_cell(np.array(seq[:-1])[None, :], state)
    return seq[-1], state


def _passage(model: LanguageModel, vocab: Vocab, s: Settings, rng) -> str:
    first = EOS if EOS in vocab.chars else vocab.chars[0]
    seq = vocab.encode(s.prime).tolist() if s.prime else [vocab.chars.index(first)]
    x0, state = _primed(model, seq)
    return s.prime + vocab.decode(sample(model, x0, state, s.length, rng, s.temperature,
                                         s.top_p))
