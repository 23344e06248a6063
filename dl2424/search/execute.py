"""Where trials run: a local process pool or a dask cluster, behind one small interface.

A backend has `slots()` (trials to keep in flight), `submit(task) -> future`,
`wait_any(futures) -> done futures`, `cancel(futures)` and `close()`. Futures are
concurrent.futures or dask futures; both give `.result()`. `run_trial` is what runs in
a worker: one ordinary run through dl2424.experiment, never raising.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import copy
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import re
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from .. import experiment, rundir, settings
from ..config import apply_overrides, validate
from ..errors import UserError
from ..trainer import StopFlag

# the BLAS libraries' thread counts, and the image ConvNet's own (dl2424.nn.parallel)
BLAS_VARS = (*settings.BLAS_VARS, settings.THREADS)
CLUSTER_HINT = "install with pip install dl2424[cluster]"


@dataclass(frozen=True)
class TrialTask:
    """Everything a worker needs for one trial; plain data, so it pickles."""

    trial: int
    name: str  # the run's name (base name + trial id)
    base: dict  # the base experiment mapping, before overrides
    overrides: list[str]  # `--set`-style dotted.key=value, the name first
    data_dir: str
    runs_dir: str
    metric: str
    resume_run: str | None = None  # continue this run folder from its checkpoint instead


# ---------------------------------------------------------------------------- in the worker

STOP_SIGNAL = signal.SIGUSR1  # from the sweep: stop at the next update, keep a checkpoint


class WorkerStop:
    """The stop state of one local pool worker process: the StopFlag its signal handler
    sets and the trial it runs reads. The first ^C (or SIGTERM) lets the current trial save
    a checkpoint and stop, a second aborts it; STOP_SIGNAL from the sweep only ever asks
    for the first."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, STOP_SIGNAL)

    def __init__(self):
        self.flag = StopFlag()

    def handle(self, signum, frame) -> None:
        if self.flag.signum is not None and signum != STOP_SIGNAL:
            raise KeyboardInterrupt
        self.flag.signum = self.flag.signum or signum

    def install(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self.handle)

    @classmethod
    def installed(cls) -> StopFlag:
        """The flag of the WorkerStop whose handler this process runs (the pool worker's),
        or a flag nothing sets (a dask worker, or no worker at all)."""
        owner = getattr(signal.getsignal(STOP_SIGNAL), "__self__", None)
        return owner.flag if isinstance(owner, cls) else StopFlag()


def _init_worker(parent: int) -> None:
    """Local pool worker: its WorkerStop handles the stop signals, and it dies with the
    sweep process that started it, however that ends (kill -9)."""
    WorkerStop().install()
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """Kill this process when `parent` is gone: at once through the kernel on Linux
    (PR_SET_PDEATHSIG), else within a second through a watchdog thread. Its trial's run
    folder then resumes from its last checkpoint, as after any kill -9."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)

    if os.getppid() != parent:  # died before the kernel was told
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


def _metric(row: dict | None, metric: str) -> float | None:
    if row is None:
        return None
    if metric not in row:
        raise KeyError(f"metric {metric!r} is not a column of this run's metrics "
                       f"({', '.join(row)})")
    return float(row[metric])


def _completed(run: Path) -> dict | None:
    try:
        summary = rundir.read_summary(run)
    except (OSError, UserError):
        return None
    return summary if summary.get("status") == "completed" else None


def find_run(runs_dir: Path, name: str) -> Path | None:
    """The newest run folder of this trial, for errors raised after it was made."""
    pattern = re.compile(rf"^\d{{8}}-\d{{6}}-{re.escape(name)}(-\d+)?$")
    found = sorted(p for p in runs_dir.glob(f"*-{name}*") if pattern.match(p.name))
    return found[-1] if found else None


def _outcome(task: TrialTask, status: str, run: Path | None, summary: dict | None,
             error: str, t0: float) -> dict:
    out = {"trial": task.trial, "status": status, "best": None, "final": None,
           "run": str(run) if run else "", "error": error,
           "wall_s": round(time.perf_counter() - t0, 3)}
    if summary:
        try:
            out["best"] = _metric(summary.get("best"), task.metric)
            out["final"] = _metric(summary.get("final"), task.metric)
        except KeyError as e:
            out["status"], out["error"] = "failed", str(e.args[0])
    return out


def run_trial(task: TrialTask, stop: StopFlag | None = None) -> dict:
    """One trial as an ordinary run, stopping when `stop` is set (by default the flag of
    this worker's WorkerStop). Returns {trial, status: ok|failed|pending, best, final (the
    metric in the best-val-acc row and in the last row), run, error, wall_s}."""
    t0 = time.perf_counter()
    stop = WorkerStop.installed() if stop is None else stop
    data_dir, runs_dir = Path(task.data_dir), Path(task.runs_dir)
    try:
        done = _completed(Path(task.resume_run)) if task.resume_run else None
        if done is not None:  # finished while the sweep that started it was killed
            return _outcome(task, "ok", Path(task.resume_run), done, "", t0)
        if task.resume_run:
            run, summary = experiment.resume(Path(task.resume_run), data_dir, stop=stop)
        else:
            raw = apply_overrides(copy.deepcopy(task.base), task.overrides)
            exp = validate(raw, f"trial {task.trial}")
            run, summary = experiment.start(exp, task.overrides, data_dir, runs_dir, stop=stop)
    except experiment.RunFailed as e:
        return _outcome(task, "failed", e.run, e.summary, str(e), t0)
    except experiment.RunInterrupted as e:
        return _outcome(task, "pending", e.run, e.summary,
                        f"interrupted at step {e.summary['steps']}; checkpoint kept", t0)
    except Exception as e:  # noqa: BLE001 — a trial's crash is recorded, the sweep goes on
        run = find_run(runs_dir, task.name) if runs_dir.is_dir() else None
        return _outcome(task, "failed", run, None, f"{type(e).__name__}: {e}", t0)
    return _outcome(task, "ok", run, summary, "", t0)


# ---------------------------------------------------------------------------- local pool

@contextlib.contextmanager
def blas_threads(n: int):
    """Set the BLAS thread variables while worker processes start, then restore them.

    Spawned workers inherit the parent's environment; OpenBLAS reads it once, when numpy
    is first imported, which in a spawned worker happens while it unpickles its first job
    (and its initializer) — too late for an initializer to set them.
    """
    saved = {k: os.environ.get(k) for k in BLAS_VARS}
    os.environ.update({k: str(n) for k in BLAS_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def threads_per_worker(workers: int) -> int:
    """cores // workers, or fewer if the environment already asks for fewer BLAS threads
    (OPENBLAS_NUM_THREADS=1 ... : small matrices on a busy machine run faster on one)."""
    asked = [int(v) for k in BLAS_VARS if (v := os.environ.get(k, "")).isdigit() and int(v) > 0]
    return max(1, min([cpu_count() // workers, *asked]))


class LocalPool:
    """A spawn-context ProcessPoolExecutor; each worker gets cores // workers BLAS threads
    (see threads_per_worker)."""

    graceful = True  # workers see ^C themselves and checkpoint their trial

    def __init__(self, workers: int | None = None):
        self.workers = workers or cpu_count()
        self.threads = threads_per_worker(self.workers)
        self._env = blas_threads(self.threads)
        self._env.__enter__()  # held until close(): workers start lazily, on submit
        self.pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.workers, multiprocessing.get_context("spawn"),
                                      initializer=_init_worker, initargs=(os.getpid(),))

    def stop_workers(self) -> None:
        """Ask every worker's trial to stop at its next update with a checkpoint (SIGTERM to
        the sweep reaches only the sweep; ^C at a terminal reaches the workers too)."""
        for p in list(getattr(self.pool, "_processes", None) or {}):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, STOP_SIGNAL)

    def describe(self) -> str:
        return (f"local: {self.workers} worker process{'es' if self.workers > 1 else ''} "
                f"× {self.threads} BLAS thread{'s' if self.threads > 1 else ''}")

    def slots(self) -> int:
        return self.workers

    def submit(self, task: TrialTask):
        try:
            return self.pool.submit(run_trial, task)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): its trials failed with "worker lost";
            # the rest of the sweep gets a fresh pool.
            self.pool.shutdown(wait=False)
            self.pool = self._new_pool()
            return self.pool.submit(run_trial, task)

    def wait_any(self, futures):
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done

    def cancel(self, futures) -> None:
        for f in futures:
            f.cancel()

    def close(self) -> None:
        try:
            self.pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self._env.__exit__(None, None, None)


# ---------------------------------------------------------------------------- dask

def _distributed():
    try:
        import distributed
    except ImportError:
        raise UserError(f"--scheduler / --cluster need dask.distributed, which is not "
                        f"installed; {CLUSTER_HINT}") from None
    return distributed


class DaskCluster:
    """Trials as dask futures on a scheduler at an address, or on a LocalCluster of worker
    processes with one thread each (dask's nannies set the BLAS variables to 1 there).

    Remote workers must see the same paths as this machine (data dir, sweep folder) and
    have dl2424 installed."""

    graceful = False  # running dask tasks cannot be asked to stop; ^C abandons them

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        distributed = _distributed()
        self._wait = distributed.wait
        self.cluster = None
        if scheduler:
            try:
                self.client = distributed.Client(scheduler, timeout="10s")
            except (OSError, TimeoutError) as e:
                raise UserError(f"--scheduler {scheduler}: cannot connect to a dask scheduler "
                                f"there ({e}); start one with `dask scheduler` and workers "
                                f"with `dask worker {scheduler}`") from None
            self.where = f"dask scheduler {scheduler}"
        else:
            n = workers or cpu_count()
            self.cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.ERROR)
            self.client = distributed.Client(self.cluster)
            self.where = f"dask LocalCluster: {n} worker process{'es' if n > 1 else ''} × 1 thread"

    def describe(self) -> str:
        return self.where

    def slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, task: TrialTask):
        # pure=False: a rerun of the same trial (resume) must run again, not reuse a result
        return self.client.submit(run_trial, task, pure=False)

    def wait_any(self, futures):
        return self._wait(futures, return_when="FIRST_COMPLETED").done

    def cancel(self, futures) -> None:
        self.client.cancel(list(futures))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def check_backend(workers: int | None = None, scheduler: str | None = None,
                  cluster: str | None = None) -> None:
    """Reject bad backend options before anything is made (dask missing included)."""
    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: give at least 1")
    if scheduler and cluster:
        raise UserError("give either --scheduler ADDRESS or --cluster local, not both")
    if scheduler and workers:
        raise UserError("--workers does not apply to --scheduler (the cluster has its own "
                        "workers)")
    if cluster is not None and cluster != "local":
        raise UserError(f"--cluster {cluster!r}: only 'local' (a dask LocalCluster on this "
                        "machine) is supported; for other clusters give --scheduler ADDRESS")
    if scheduler or cluster:
        _distributed()


def open_backend(workers: int | None = None, scheduler: str | None = None,
                 cluster: str | None = None):
    check_backend(workers, scheduler, cluster)
    if scheduler or cluster:
        return DaskCluster(scheduler, workers)
    return LocalPool(workers)
