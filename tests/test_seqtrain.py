"""Text data, the truncated-BPTT trainer, `generate`, `gradcheck` and `data fetch` for texts."""

import functools
import http.server
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dl2424 import experiment
from dl2424.build import build_model
from dl2424.cli import app
from dl2424.config import validate
from dl2424.data import fetch, load_dataset, text
from dl2424.rundir import read_rows
from dl2424.seqtrain import Sequential
from dl2424.trainer import Reporter, StopFlag

from .fixtures import real_data_dir

runner = CliRunner()
BOOK = ("It was the best of times, it was the worst of times,\nit was the age of wisdom, "
        "it was the age of foolishness.\n") * 4


def config(tmp_path, **over):
    (tmp_path / "book.txt").write_text(BOOK, encoding="utf-8")
    cfg = {"name": "tinybook", "seed": 5, "dtype": "float64",
           "data": {"type": "text", "path": str(tmp_path / "book.txt"), "seq_length": 10},
           "model": {"type": "rnn", "hidden": 8},
           "optimizer": {"type": "adagrad", "lr": 0.1},
           "train": {"batch_size": 1, "steps": 40, "clip": 5, "eval_every": 10,
                     "synth_every": 20, "synth_length": 30, "checkpoint_every": 10}}
    for key, value in over.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return cfg


def train(tmp_path, cfg, *extra):
    file = tmp_path / "cfg.yaml"
    file.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["train", str(file), "--runs-dir", str(tmp_path / "runs"),
                              "--quiet", *extra])
    assert res.exit_code == 0, res.output
    return sorted((tmp_path / "runs").iterdir())[-1]


def test_book_vocabulary_is_ordered_and_saved_with_the_run(tmp_path):
    run = train(tmp_path, config(tmp_path))
    meta = json.loads((run / "data.json").read_text())["meta"]
    chars = "".join(meta["text"]["chars"])
    assert chars == "".join(sorted(set(BOOK))) and meta["vocab"] == len(chars)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 40


def test_tinyshakespeare_is_read_whole(tmp_path):
    data = load_dataset(validate(config(tmp_path, **{
        "data.path": "tinyshakespeare"})).data, real_data_dir(), np.float64)
    assert len(data.train.seq) == 1_115_394 and data.vocab.K == 65
    assert data.vocab.decode(data.train.seq[:14]) == "First Citizen:"


def test_sequential_order_is_the_handouts_loop():
    seq = np.arange(100)
    order = Sequential(seq, 10, 1)
    # e = 0, 10, ..., 80: e advances by seq_length while e <= len - seq_length - 2.
    assert order.steps_per_epoch == 9
    x, y, _, reset = order.batch(0)
    assert reset and x.tolist() == [list(range(10))] and y.tolist() == [list(range(1, 11))]
    x, _, _, reset = order.batch(8)
    assert not reset and x[0, 0] == 80
    x, _, _, reset = order.batch(9)  # the next epoch starts again at e = 0 with hprev = 0
    assert reset and x[0, 0] == 0
    two = Sequential(seq, 10, 2)  # B streams over consecutive halves
    x, _, _, _ = two.batch(1)
    assert x[:, 0].tolist() == [10, 60]


def test_trainer_losses_are_the_handout_loop_by_hand(tmp_path):
    """Every logged loss equals a plain loop: carried hprev, reset per epoch, clip, AdaGrad."""
    cfg = config(tmp_path, **{"train.eval_every": 1, "train.steps": 60})
    run = train(tmp_path, cfg)
    rows = read_rows(run / "metrics.csv")
    exp = validate(cfg)
    data = load_dataset(exp.data, tmp_path, np.float64)
    model = build_model(exp, data.info)
    seq, T = data.train.seq, 10
    spe = (len(seq) - T - 2) // T + 1
    m = {k: np.zeros_like(v) for k, v in model.params.items()}
    state, smooth = model.zero_state(1), None
    for step in range(60):
        e = (step % spe) * T
        if e == 0:
            state = model.zero_state(1)
        loss, grads, state = model.seq_loss(seq[None, e:e + T], seq[None, e + 1:e + T + 1],
                                            state)
        for k, w in model.params.items():
            g = np.clip(grads[k], -5, 5)
            m[k] += g * g
            w -= 0.1 * g / np.sqrt(m[k] + 1e-8)
        smooth = loss if smooth is None else 0.999 * smooth + 0.001 * loss
        row = rows[step]
        assert row["step"] == step + 1
        assert row["loss"] == pytest.approx(loss, rel=1e-10)
        assert row["smooth_loss"] == pytest.approx(smooth, rel=1e-10)
    assert spe < 60  # the run crossed an epoch boundary


def test_run_folder_samples_best_and_determinism(tmp_path):
    cfg = config(tmp_path, **{"data.val_fraction": 0.2, "train.val_every": 20})
    a = train(tmp_path, cfg)
    b = train(tmp_path, cfg)
    rows = read_rows(a / "metrics.csv")
    assert [r["step"] for r in rows] == [1, 10, 20, 30, 40]
    assert np.isnan(rows[1]["val_loss"]) and np.isfinite(rows[2]["val_loss"])
    samples = json.loads((a / "samples.json").read_text())
    assert [s["step"] for s in samples] == [0, 20, 40]
    assert all(len(s["text"]) == 30 and set(s["text"]) <= set(BOOK) for s in samples)
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    assert samples == json.loads((b / "samples.json").read_text())
    best = json.loads((a / "best.json").read_text())
    assert best["best"]["smooth_loss"] == min(r["smooth_loss"] for r in rows)


class StopAt(Reporter):
    def __init__(self, stop, step):
        self.stop, self.at = stop, step

    def on_step(self, step, lr, loss):
        if step == self.at:
            self.stop.signum = 15


@pytest.mark.parametrize("order", ["sequential", "chunks", "random"])
def test_resume_gives_the_uninterrupted_numbers(tmp_path, order):
    cfg = config(tmp_path, **{"data.order": order, "data.chunk_length": 40,
                              "train.batch_size": 2})
    whole = train(tmp_path, cfg)
    exp = validate(cfg)
    stop = StopFlag()
    with pytest.raises(experiment.RunInterrupted) as e:
        experiment.start(exp, [], tmp_path, tmp_path / "runs2", StopAt(stop, 25), stop)
    run = e.value.run
    experiment.resume(run, tmp_path)
    assert (run / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    assert json.loads((run / "samples.json").read_text()) == json.loads(
        (whole / "samples.json").read_text())


def test_generate_book(tmp_path):
    run = train(tmp_path, config(tmp_path))
    args = ["generate", "--run", str(run), "--length", "50", "--seed", "3"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and len(first.output.rstrip("\n")) >= 50
    assert runner.invoke(app, args).output == first.output
    primed = runner.invoke(app, [*args, "--prime", "It was", "--temperature", "0.5",
                                 "--top-p", "0.9"])
    assert primed.exit_code == 0 and primed.output.startswith("It was")
    for bad in (["--class", "Russian"], ["--top-p", "0"], ["--prime", "XYZ€"]):
        res = runner.invoke(app, [*args, *bad])
        assert res.exit_code == 2 and "error" in res.output and "Traceback" not in res.output


def test_surname_lines_by_class_share_the_names_split_and_generate(env):
    cfg = {"name": "gen", "seed": 1, "dtype": "float64",
           "data": {"type": "text", "source": "names", "mode": "lines", "by_class": True},
           "model": {"type": "rnn", "hidden": 16, "reduction": "mean"},
           "optimizer": {"type": "adam", "lr": 0.01},
           "train": {"batch_size": 8, "steps": 30, "eval_every": 10, "synth_every": 10,
                     "clip_norm": 5.0}}
    root = Path(os.environ["DL2424_DATA_DIR"])
    data = load_dataset(validate(cfg).data, root, np.float64)
    nd = load_dataset(validate({"name": "n", "data": "names", "model": "charcnn",
                                "optimizer": {"type": "sgd", "lr": 0.1},
                                "train": {"steps": 1}}).data, root, np.float64)
    val_names = sorted(text.EOS.join(
        data.vocab.decode(r[r >= 0][:-1]) for r in data.val.Y_lines).split(text.EOS))
    assert val_names == sorted(nd.val.text)
    assert data.vocab.classes == tuple(nd.info.class_names)
    # Each line starts from its language's token and ends with the EOS character.
    x0, y_end = data.train.X_lines[:, 0], data.train.Y_lines
    assert (x0 == data.vocab.K + data.train.labels).all()
    assert all(r[r >= 0][-1] == data.vocab.chars.index("\n") for r in y_end[:20])
    run = train(env, cfg)
    res = runner.invoke(app, ["generate", "--run", str(run), "--class",
                              nd.info.class_names[1], "--count", "4", "--length", "12"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) == 4 and all(len(s) <= 12 for s in lines)
    assert set("".join(lines)) <= set(data.vocab.chars)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_gradcheck_command_on_a_text_config(tmp_path, cell):
    """The hand-out's check: the first 25 characters, h0 = 0, m = 5, h = 1e-4, the initial
    weights; then the same against torch autograd."""
    cfg = config(tmp_path, **{"model.hidden": 5, "model.cell": cell, "data.seq_length": 25})
    file = tmp_path / "cfg.yaml"
    file.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["gradcheck", str(file), "--n", "1", "--h", "1e-4",
                              "--at", "init"])
    assert res.exit_code == 0, res.output
    assert all(p in res.output for p in ("U", "W", "V")) and "PASS" in res.output
    res = runner.invoke(app, ["gradcheck", str(file), "--n", "2", "--against", "torch"])
    assert res.exit_code == 0 and "torch" in res.output, res.output


def test_text_errors_are_one_message(tmp_path):
    cfg = config(tmp_path, **{"data.seq_length": 500})
    file = tmp_path / "cfg.yaml"
    file.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["train", str(file), "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 2 and "seq_length" in res.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    cfg = config(tmp_path, **{"data.path": "goblet"})
    file.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["train", str(file), "--data-dir", str(tmp_path)])
    assert res.exit_code == 2 and "dl2424 data fetch goblet" in res.output


# ---------------------------------------------------------------------------- fetch

@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www (no network here)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_fetch_text_checks_the_pinned_sha256(http_root, tmp_path, monkeypatch):
    root, base = http_root
    real = real_data_dir() / "text" / "tinyshakespeare.txt"
    (root / "input.txt").write_bytes(real.read_bytes())
    (root / "goblet_book.txt").write_text("not the book\n")
    monkeypatch.setitem(fetch.TEXT_FILES, "tinyshakespeare",
                        (base + "input.txt", fetch.TEXT_FILES["tinyshakespeare"][1]))
    monkeypatch.setitem(fetch.TEXT_FILES, "goblet",
                        (base + "goblet_book.txt", fetch.TEXT_FILES["goblet"][1]))
    data = tmp_path / "data"
    res = runner.invoke(app, ["data", "fetch", "tinyshakespeare", "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    assert (data / "text" / "tinyshakespeare.txt").read_bytes() == real.read_bytes()
    res = runner.invoke(app, ["data", "fetch", "goblet", "--data-dir", str(data)])
    assert res.exit_code == 2 and "509e5a69" in res.output
    assert not (data / "text" / "goblet_book.txt").exists()


def test_fetch_urls_are_pinned():
    url, digest = fetch.TEXT_FILES["goblet"]
    assert "Sven-Mattus/DeepLearning_Group_98/ac05a0a1eb7a857c92dbd57f0311b3f89e11ce64/" in url
    assert digest.endswith("509e5a69c608d06db036bee9399516491e343abfeb3b6f26e42bdb20738791e5")


def test_report_and_runs_listing_of_a_text_run(tmp_path):
    run = train(tmp_path, config(tmp_path, **{"train.synth_every": 10}))
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    md = (run / "report" / "report.md").read_text()
    assert (run / "report" / "smooth_loss.png").is_file() and "index.html" in res.output
    assert "| 0 |" in md and "| 40 |" in md  # samples before the first update and later
    passage = md.split("```text\n")[1].split("\n```")[0]
    assert len(passage) == 1000 and set(passage) <= set(BOOK)
    res = runner.invoke(app, ["runs", "ls", "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 0 and "tinybook" in res.output and "completed" in res.output


def test_lines_from_a_file_end_with_eos_and_are_capped(tmp_path):
    (tmp_path / "tweets.txt").write_text("short one\n\nA much longer line here\nmid line\n" * 5)
    cfg = config(tmp_path, **{"data.path": str(tmp_path / "tweets.txt"), "data.mode": "lines",
                              "data.max_length": 10, "data.val_fraction": 0.2,
                              "train.batch_size": 4, "train.steps": 12})
    data = load_dataset(validate(cfg).data, tmp_path, np.float64)
    eos = data.vocab.chars.index(text.EOS)
    assert len(data.train.X_lines) == 12 and len(data.val.X_lines) == 3  # empty lines dropped
    for x, y in zip(data.train.X_lines, data.train.Y_lines, strict=True):
        n = int((y >= 0).sum())
        assert 2 <= n <= 11 and y[n - 1] == eos and x[0] == eos  # starts after an EOS
        assert (x[1:n] == y[:n - 1]).all()  # inputs are the targets shifted by one
    run = train(tmp_path, cfg)
    res = runner.invoke(app, ["generate", "--run", str(run), "--count", "3", "--length", "10"])
    assert res.exit_code == 0 and len(res.output.splitlines()) == 3
    assert runner.invoke(app, ["report", str(run)]).exit_code == 0
    shown = (run / "report" / "report.md").read_text().split("```text\n")[1].split("\n```")[0]
    assert len(shown.split("\n")) == 20  # a model of lines: 20 lines, not one long passage


@pytest.mark.parametrize("cfg_change,message", [
    ({"train.class_weighted": True}, "train.class_weighted: is not used by the text"),
    ({"train.label_smoothing": 0.1}, "train.label_smoothing: is not used by the text"),
])
def test_classifier_keys_are_refused_for_text(tmp_path, cfg_change, message):
    file = tmp_path / "cfg.yaml"
    file.write_text(yaml.safe_dump(config(tmp_path, **cfg_change)))
    res = runner.invoke(app, ["train", str(file), "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 2 and message in res.output and not (tmp_path / "runs").exists()


def test_text_keys_are_refused_for_classifiers(env):
    cfg = Path(__file__).parent.parent / "configs" / "names_rnn.yaml"
    res = runner.invoke(app, ["train", str(cfg), "--set", "train.clip=5",
                              "--runs-dir", str(env / "runs")])
    assert res.exit_code == 2 and "train.clip: applies to text models only" in res.output


def test_runs_listing_shows_a_language_models_lowest_losses(tmp_path):
    from dl2424.report import runs_table

    run = train(tmp_path, config(tmp_path, **{"data.val_fraction": 0.2, "train.val_every": 20}))
    rows = read_rows(run / "metrics.csv")
    t = runs_table([tmp_path / "runs"])
    assert "best val_acc" in t.columns  # a classifier's column stays, empty for a text run
    row = dict(zip(t.columns, t.rows[0], strict=True))
    assert row["best val_acc"] is None
    assert row["lowest smooth_loss"] == min(r["smooth_loss"] for r in rows)
    assert row["lowest val_loss"] == np.nanmin([r["val_loss"] for r in rows])
    res = runner.invoke(app, ["runs", "ls", "--runs-dir", str(tmp_path / "runs"), "--wide"])
    assert res.exit_code == 0 and f"{row['lowest val_loss']:.4f}" in res.output
    res = runner.invoke(app, ["train", str(tmp_path / "cfg.yaml"), "--runs-dir",
                              str(tmp_path / "runs"), "--quiet"])  # its summary table
    assert "lowest smooth loss" in res.output and "best val" not in res.output


def test_train_summary_leaves_a_val_loss_between_validations_blank(tmp_path):
    from dl2424.cli import console
    from dl2424.cli.train_cmd import _print_summary

    summary = {"name": "lm", "status": "completed", "wall_time_s": 1.0,
               "final": {"step": 40, "smooth_loss": 2.5, "val_loss": 2.75},
               "best": {"step": 30, "smooth_loss": 2.25, "val_loss": float("nan")}}
    with console.capture() as out:
        _print_summary(tmp_path, summary)
    text = out.get()
    val = next(line for line in text.splitlines() if "val_loss" in line)
    assert "2.7500" in val and "nan" not in text.lower() and "2.2500" in text
