"""A search worker's stop state is an object (execute.WorkerStop) that its signal handler and
its trial share; run_trial stops on whatever flag it is given."""

import os
import signal

import pytest

from dl2424.search.execute import STOP_SIGNAL, TrialTask, WorkerStop, run_trial
from dl2424.trainer import StopFlag

from .fixtures import write_cifar_python
from .test_search import BASE


@pytest.fixture
def restore_handlers():
    saved = {s: signal.getsignal(s) for s in WorkerStop.SIGNALS}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_worker_stop_keeps_the_protocol_and_is_what_a_trial_reads(restore_handlers):
    assert WorkerStop.installed().signum is None  # no worker here: a flag nothing sets
    worker = WorkerStop()
    worker.install()
    assert WorkerStop.installed() is worker.flag
    os.kill(os.getpid(), STOP_SIGNAL)
    assert worker.flag.signum == STOP_SIGNAL
    os.kill(os.getpid(), STOP_SIGNAL)  # the sweep asking again never aborts the trial
    assert worker.flag.signum == STOP_SIGNAL
    with pytest.raises(KeyboardInterrupt):  # a second ^C/SIGTERM does
        os.kill(os.getpid(), signal.SIGTERM)


def test_run_trial_stops_on_the_flag_it_is_given(tmp_path):
    write_cifar_python(tmp_path / "data", n_per_batch=20)
    task = TrialTask(trial=0, name="tiny-t000", base=BASE, overrides=["name=tiny-t000"],
                     data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"),
                     metric="val_acc")
    out = run_trial(task, StopFlag(signal.SIGTERM))
    assert out["status"] == "pending" and out["error"].startswith("interrupted at step 1;")
    assert run_trial(task, StopFlag())["status"] == "ok"
