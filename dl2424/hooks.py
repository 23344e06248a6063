"""What the trainer tells the outside world, as hooks: progress for people (the CLI's rich
display) and results for the run folder (rundir.Recorder). Every hook is optional."""

from __future__ import annotations


class Reporter:
    def on_start(self, setup, start_step: int) -> None: ...
    def on_step(self, step: int, lr: float, loss: float) -> None: ...
    def on_metrics(self, rows: list[dict], val_confusion) -> None:
        """After an evaluation: every metrics row so far, and this one's val confusion."""
    def on_eval(self, row: dict) -> None: ...
    def on_checkpoint(self, kind: str, model, optimizer, meta: dict) -> None:
        """Parameters to keep: kind is "last" (to resume from), "best" (by validation
        accuracy) or "cycle<k>" (end of cycle k, train.snapshots)."""
    def on_samples(self, samples: list[dict]) -> None:
        """Every text a language model sampled so far (with each checkpoint)."""
    def on_end(self, summary: dict) -> None: ...
    def close(self) -> None: ...  # the run stopped, however it ended (may be called twice)


class Reporters(Reporter):
    """Several reporters as one: each hook goes to each, in the order given."""

    def __init__(self, *reporters: Reporter | None):
        self.reporters = [r for r in reporters if r is not None]

    def _each(self, hook: str, *args) -> None:
        for r in self.reporters:
            getattr(r, hook)(*args)

    def on_start(self, *args): self._each("on_start", *args)
    def on_step(self, *args): self._each("on_step", *args)
    def on_metrics(self, *args): self._each("on_metrics", *args)
    def on_eval(self, *args): self._each("on_eval", *args)
    def on_checkpoint(self, *args): self._each("on_checkpoint", *args)
    def on_samples(self, *args): self._each("on_samples", *args)
    def on_end(self, *args): self._each("on_end", *args)
    def close(self): self._each("close")
