"""One training run from start to finish: folder, training, summary — or resume one."""

from __future__ import annotations

import os
import platform
import signal
import socket
import time
from pathlib import Path

import numpy as np

from . import __version__, checkpoint, rundir, tblog
from .build import Setup, build, build_model, build_schedule
from .config import Experiment, apply_overrides, load_experiment, validate
from .errors import UserError
from .hooks import Reporter, Reporters
from .rundir import load_info, load_run_config  # noqa: F401  (what callers used to import here)
from .trainer import (
    Diverged,
    Interrupted,
    StopFlag,
    Trainer,
    evaluate,
    float_errors_ignored,
    trainer_for,
)


def versions() -> dict:
    return {"dl2424": __version__, "python": platform.python_version(),
            "numpy": np.__version__}


def _summary(trainer: Trainer, status: str, started: float, wall: float, steps_run: int,
             error: str | None = None, test: dict | None = None, previous: dict | None = None):
    s = trainer.s
    summary = {
        "name": s.exp.name, "status": status,
        "dataset": s.exp.data.type, "model": s.exp.model.type,
        "started": (previous or {}).get("started", time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                  time.localtime(started))),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S") if status != "running" else None,
        "wall_time_s": round(wall, 3),
        "steps": trainer.step, "total_steps": s.total_steps,
        "checkpoint_step": trainer.saved_step,
        "steps_per_sec": round(steps_run / wall, 2) if wall > 0 and steps_run else None,
        "n_params": s.model.n_params(), "seed": s.exp.seed, "config_hash": s.exp.digest(),
        "final": trainer.rows[-1] if trainer.rows else None, "best": trainer.best,
        "skipped_batches": trainer.skipped,
        "host": socket.gethostname(), "pid": os.getpid(), "versions": versions(),
        "error": error,
    }
    summary |= test or {}
    return summary


def test_metrics(setup: Setup, run: Path, best: dict | None) -> dict:
    """Test loss/accuracy of the final parameters (their confusion and per-example
    predictions go to the run folder) and of the best-by-validation ones (best.npz)."""
    data, K = setup.data, setup.data.info.n_classes
    if data.test is None:
        return {}
    ev = evaluate(setup.model, data.test.X, data.test.y, K)
    rundir.write_test(run, ev.confusion, data.test.y, ev.pred, ev.p_label,
                      data.info.class_names)
    out = {"test": {"loss": ev.loss, "acc": ev.acc}}
    best_file = run / rundir.BEST
    if best_file.is_file():
        model = build_model(setup.exp, data.info)
        checkpoint.restore(checkpoint.load(best_file), model)
        ev_b = evaluate(model, data.test.X, data.test.y, K)
        out["test_at_best"] = {"loss": ev_b.loss, "acc": ev_b.acc,
                               "step": best["step"] if best else None}
    return out


def recording(setup: Setup, run: Path, reporter: Reporter | None = None) -> Reporters:
    """The trainer's reporter: the run folder's recorder, then the caller's (and the
    TensorBoard writer when tensorboard is installed)."""
    keep = setup.exp.train.keep_confusions
    return Reporters(rundir.Recorder(run, setup.data.info.class_names, keep),
                     tblog.attach(reporter, run))


def _trainer(setup, run: Path, reporter: Reporter | None, stop: StopFlag | None):
    """The setup's trainer (Trainer, or a text model's seqtrain.TextTrainer), writing this
    run folder through rundir.Recorder."""
    return trainer_for(setup)(setup, recording(setup, run, reporter), stop)


def _test_metrics(setup, run: Path, trainer) -> dict:
    if isinstance(trainer, Trainer):
        return test_metrics(setup, run, trainer.best)
    return trainer.test_metrics()


def execute(setup: Setup, run: Path, trainer: Trainer, previous: dict | None = None) -> dict:
    """Train to the end; always leave a summary.json that says how it ended."""
    started = time.time()
    t0, step0 = time.perf_counter(), trainer.step
    wall_before = (previous or {}).get("wall_time_s", 0.0)

    def finish(status, error=None, test=None):
        wall = wall_before + time.perf_counter() - t0
        summary = _summary(trainer, status, started, wall, trainer.step - step0, error, test,
                           previous)
        rundir.write_summary(run, summary)
        return summary

    try:  # the caller holds the run folder's lock (rundir.claim)
        finish("running")
        with float_errors_ignored():
            trainer.fit()
    except Diverged as e:
        summary = finish("failed", f"diverged: {e}")
        raise RunFailed(run, summary) from None
    except Interrupted as e:
        summary = finish("interrupted", str(e))
        raise RunInterrupted(run, summary, e.signum) from None
    except KeyboardInterrupt:  # a second signal: stopped at once, the last checkpoint stands
        summary = finish("interrupted", f"aborted at step {trainer.step}")
        raise RunAborted(run, summary) from None
    except BaseException as e:  # noqa: BLE001 — record, then let it propagate
        finish("failed", f"{type(e).__name__}: {e}")
        raise
    else:
        rundir.write_class_counts(run, trainer.class_counts())
        summary = finish("completed", test=_test_metrics(setup, run, trainer))
        trainer.reporter.on_end(summary)
    finally:
        trainer.reporter.close()
        rundir.release(run)
    return summary


class RunFailed(Exception):
    def __init__(self, run: Path, summary: dict):
        super().__init__(summary.get("error"))
        self.run, self.summary = run, summary


class RunInterrupted(Exception):
    def __init__(self, run: Path, summary: dict, signum: int):
        super().__init__(summary.get("error"))
        self.run, self.summary, self.signum = run, summary, signum


class RunAborted(KeyboardInterrupt):
    """Ctrl-C that was not (or no longer) waiting for the update to finish: the run is marked
    interrupted and resumes from its last periodic checkpoint. Still a KeyboardInterrupt, so
    code that calls start() stops as it would on any Ctrl-C."""

    signum = signal.SIGINT

    def __init__(self, run: Path, summary: dict):
        super().__init__(summary.get("error"))
        self.run, self.summary = run, summary


def start(exp: Experiment, overrides: list[str], data_dir: Path, runs_dir: Path,
          reporter: Reporter | None = None, stop: StopFlag | None = None) -> tuple[Path, dict]:
    setup = build(exp, data_dir)  # everything that can be wrong with the input fails here
    run = rundir.create(runs_dir, exp.name)
    rundir.claim(run)
    try:
        rundir.write_config(run, exp.dump(), overrides)
        rundir.write_info(run, setup.data.info)
        save_normalisation(setup, run)
        trainer = _trainer(setup, run, reporter, stop)
    except BaseException:
        rundir.release(run)
        raise
    return run, execute(setup, run, trainer)


def save_normalisation(setup: Setup, run: Path) -> None:
    if setup.data.normalisation is not None:
        rundir.write_normalisation(run, setup.data.normalisation.to_arrays())


def _previous_summary(run: Path) -> dict | None:
    """The summary of the earlier attempt, or None if missing or unreadable (it is only a
    record; the checkpoint decides where training continues)."""
    try:
        previous = rundir.read_summary(run)
    except (OSError, UserError):
        return None
    ok = isinstance(previous, dict) and isinstance(previous.get("wall_time_s", 0.0), float | int)
    return previous if ok else None


def resume(run: Path, data_dir: Path, reporter: Reporter | None = None,
           stop: StopFlag | None = None, longer: list[str] = ()) -> tuple[Path, dict]:
    """Continue a run from its checkpoint; `longer` (--set train.steps=N, ...) first extends
    the length of an interrupted or completed run."""
    load_run_config(run)  # is it a run folder at all (before a lock file is put in it)
    rundir.claim(run)  # before anything reads or trims the folder: a refused one changes nothing
    try:
        exp = load_run_config(run)
        setup, trainer, previous = _prepare_resume(run, exp, data_dir, reporter, stop,
                                                   list(longer))
    except BaseException:
        rundir.release(run)
        raise
    return run, execute(setup, run, trainer, previous)


LENGTH_KEYS = ("train.epochs", "train.steps", "train.cycles")


def _lengthened(run: Path, exp: Experiment, overrides: list[str]) -> Experiment:
    """The run's config with a new length; any other change is refused."""
    other = [o for o in overrides if o.partition("=")[0].strip() not in LENGTH_KEYS]
    if other:
        raise UserError(f"--resume {run} --set {other[0]!r}: only the length of a run can "
                        f"change when it continues ({', '.join(LENGTH_KEYS)}); train a new "
                        f"run for anything else: dl2424 train {run / 'config.yaml'} --set ...")
    return validate(apply_overrides(exp.dump(), overrides), f"--resume {run} --set")


def _check_extension(run: Path, exp: Experiment, setup: Setup, step: int, old_total: int):
    if setup.total_steps <= step:
        raise UserError(f"{run}: the new length ({setup.total_steps} updates) does not go past "
                        f"the checkpoint at step {step}; give a longer one")
    before, _ = build_schedule(exp, setup.steps_per_epoch, old_total)
    changed = next((k for k in range(old_total) if before(k) != setup.schedule(k)), None)
    if changed is not None:
        raise UserError(f"{run}: schedule {exp.schedule.type} depends on the run's length (the "
                        f"learning rate at step {changed} would change from {before(changed):.4g}"
                        f" to {setup.schedule(changed):.4g}); a longer run must start again")


def _prepare_resume(run: Path, exp: Experiment, data_dir: Path, reporter, stop,
                    longer: list[str] = ()):
    if not (run / rundir.CHECKPOINT).exists():
        raise UserError(f"{run}: no checkpoint.npz; the run stopped before its first checkpoint "
                        f"(train.checkpoint_every) and must start again: "
                        f"dl2424 train {run / 'config.yaml'}")
    ckpt = checkpoint.load(run / rundir.CHECKPOINT)
    if ckpt.meta.get("config_hash") != exp.digest():
        raise UserError(f"{run}: checkpoint was written for another config "
                        f"(hash {ckpt.meta.get('config_hash')} vs {exp.digest()})")
    previous = _previous_summary(run)
    if previous and previous.get("status") == "completed" and not longer:
        raise UserError(f"{run}: run already completed; nothing to resume (to train it for "
                        f"longer: dl2424 train --resume {run} --set train.steps=N)")
    if longer:
        old, exp = exp, _lengthened(run, exp, longer)
        setup = build(exp, data_dir)
        _check_extension(run, old, setup, ckpt.meta["step"],
                         ckpt.meta.get("total_steps", ckpt.meta["step"]))
        for name in (rundir.CHECKPOINT, rundir.BEST):
            if (run / name).is_file():
                checkpoint.update_meta(run / name, config_hash=exp.digest(),
                                       total_steps=setup.total_steps)
        rundir.write_config(run, exp.dump(), [*rundir.read_overrides(run), *longer])
    else:
        setup = build(exp, data_dir)
    if not 0 <= ckpt.meta["step"] <= setup.total_steps:
        raise UserError(f"{run / rundir.CHECKPOINT}: step {ckpt.meta['step']} is not a step of "
                        f"this run (0..{setup.total_steps})")
    if len(ckpt.meta.get("sampled") or []) != setup.data.info.n_classes:
        raise UserError(f"{run / rundir.CHECKPOINT}: metadata lacks the sampler's class counts "
                        "('sampled'); it was not written by this version of dl2424")
    if not (run / rundir.NORMALISATION).is_file():  # a run from before it was saved
        save_normalisation(setup, run)
    trainer = _trainer(setup, run, reporter, stop)
    if isinstance(trainer, Trainer):
        trainer.resume_from(ckpt, _metrics_before(run), str(run / rundir.CHECKPOINT))
        rundir.trim(run, trainer.step, trainer.rows)
    else:
        _resume_text(run, ckpt, trainer)
    if longer:  # the old last evaluation recorded the lr of the old last update
        for row in trainer.rows:
            row["lr"] = trainer.lr_at(row["step"])
        rundir.write_rows(run / rundir.METRICS, trainer.rows)
    return setup, trainer, previous


def _resume_text(run: Path, ckpt: checkpoint.Checkpoint, trainer) -> None:
    """A language model's trainer (seqtrain.TextTrainer) from the run folder: its rows,
    samples and best.npz up to the checkpoint."""
    try:
        samples = rundir.read_samples(run)
    except FileNotFoundError:
        raise UserError(f"{run / rundir.SAMPLES}: missing; the run folder was changed by "
                        "hand") from None
    best = rundir.params_file(run, "best")
    trainer.resume_from(ckpt, _metrics_before(run), samples,
                        best if best.is_file() else None, str(run / rundir.CHECKPOINT))
    rundir.remove_partial_files(run)


def _metrics_before(run: Path) -> list[dict]:
    file = run / rundir.METRICS
    try:
        return rundir.read_rows(file)
    except FileNotFoundError:
        raise UserError(f"{file}: missing; the checkpoint cannot be resumed without the "
                        "metrics written before it") from None
    except (ValueError, KeyError, OSError) as e:
        raise UserError(f"{file}: unreadable ({e}); the run folder was changed by "
                        "hand") from None


def train(configs: list[Path], overrides: list[str], resume_dir: Path | None, data_dir: Path,
          runs_dir: Path, reporter: Reporter | None = None, stop: StopFlag | None = None,
          notify=lambda message: None) -> tuple[Path, dict]:
    """What `dl2424 train` does: a new run from config files (merged left to right) and
    --set overrides (missing data downloaded first), or the rest of the interrupted run in
    `resume_dir` (the overrides then make it longer)."""
    if resume_dir is None and not configs:
        raise UserError("give a CONFIG file to train, or --resume RUN_DIR")
    if resume_dir is not None:
        if configs:
            raise UserError("--resume uses the config stored in the run folder; do not give "
                            "CONFIG with it (--set train.steps=N makes the run longer)")
        return resume(resume_dir, data_dir, reporter, stop, overrides)
    from .data.fetch import fetch_missing  # downloads: only when a new run needs the data

    exp = load_experiment(configs, overrides, notify)
    fetch_missing(exp.data, data_dir, notify)
    return start(exp, overrides, data_dir, runs_dir, reporter, stop)
