"""The experiment spec: YAML → validated pydantic models, with `--set` overrides.

Every problem is reported as `dotted.path: what is wrong`, one per line, through UserError.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from . import components  # noqa: F401  (fills the registries)
from .errors import UserError
from .registry import DATASETS, MODELS, OPTIMIZERS, SAMPLERS, SCHEDULES, Params, component


class TrainConfig(Params):
    batch_size: PositiveInt = 100
    epochs: PositiveInt | None = None
    steps: PositiveInt | None = None
    cycles: PositiveInt | None = Field(None, description="needs schedule.type: cyclic")
    eval_every: PositiveInt | None = Field(None, description="update steps; default: each epoch")
    eval_train_subset: PositiveInt | None = Field(
        None, description="measure training metrics on this many fixed random examples")
    checkpoint_every: PositiveInt | None = Field(
        None, description="update steps between checkpoints; default: at every evaluation")
    on_nan: Literal["stop", "skip_batch"] = "stop"
    class_weighted: bool = Field(False, description="weight examples by 1/(K n_y) (A3 eq. 47)")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    keep_confusions: bool = Field(True, description="save every evaluation's val confusion")
    snapshots: bool = Field(False, description="save the parameters at the end of every "
                            "cycle of a cyclic schedule (snapshot ensembles, A2 bonus)")
    # Recurrent language models (the text dataset); see dl2424/seqtrain.py.
    clip: PositiveFloat | None = Field(
        None, description="text models: clip every gradient entry to [-clip, clip] (A4: 5)")
    clip_norm: PositiveFloat | None = Field(
        None, description="text models: rescale the gradient to this global L2 norm if larger")
    synth_every: PositiveInt | None = Field(
        None, description="text models: sample synth_length characters every this many updates")
    synth_length: PositiveInt = Field(200, description="text models: characters per sample")
    val_every: PositiveInt | None = Field(
        None, description="text models: validation loss every this many updates "
        "(default: at every checkpoint)")

    @model_validator(mode="after")
    def _one_length(self):
        given = [k for k in ("epochs", "steps", "cycles") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of epochs, steps or cycles"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


class Experiment(Params):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    seed: NonNegativeInt = 0
    dtype: Literal["float32", "float64"] = "float32"
    data: component(DATASETS)
    model: component(MODELS)
    optimizer: component(OPTIMIZERS) = "sgd"
    schedule: component(SCHEDULES) = "constant"
    sampler: component(SAMPLERS) = "shuffle"
    train: TrainConfig

    @model_validator(mode="after")
    def _consistent(self):
        needs_lr = self.schedule.type in ("constant", "step", "linear")
        lr = getattr(self.optimizer.params, "lr", None)
        if needs_lr and lr is None:
            raise ValueError(f"optimizer.lr is required with schedule {self.schedule.type!r}")
        if not needs_lr and lr is not None:
            raise ValueError(f"optimizer.lr is not used with schedule {self.schedule.type!r}, "
                             "which sets the learning rate itself; remove optimizer.lr")
        if self.train.snapshots and self.schedule.type != "cyclic":
            raise ValueError("train.snapshots needs schedule.type: cyclic (a snapshot is "
                             "taken at the end of each cycle)")
        if self.train.cycles is not None and self.schedule.type != "cyclic":
            raise ValueError("train.cycles needs schedule.type: cyclic; use epochs or steps")
        return self

    def dump(self) -> dict:
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """Hash of the resolved config, stored in checkpoints to match them to runs."""
        blob = json.dumps(self.dump(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _fmt_loc(loc) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config ({err.error_count()} problem"
             f"{'s' if err.error_count() != 1 else ''})"]
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see README 'Config format')"
        elif e["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {_fmt_loc(e['loc'])}: {msg}" if e["loc"] else f"  {msg}")
    return "\n".join(lines)


def parse_override(item: str) -> tuple[list[str], object]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {item!r}: expected dotted.key=value, e.g. --set optimizer.lr=0.01")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as e:
        raise UserError(f"--set {item!r}: value is not valid YAML "
                        f"({getattr(e, 'problem', None) or e})") from None
    except RecursionError:
        raise UserError(f"--set {item!r}: value is nested too deeply") from None
    return key.strip().split("."), parsed


def _step(node, part: str, item: str, where: str):
    """The child of a mapping (by key) or of a list (by 0-based index) for `--set`."""
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise UserError(f"--set {item!r}: {where} is a list of {len(node)}; "
                            f"use an index 0..{len(node) - 1}")
        return int(part)
    return part


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `dotted.key=value` items; a numeric part indexes a list (model.layers.0.width)."""
    for item in overrides:
        path, value = parse_override(item)
        node = raw
        for i, part in enumerate(path[:-1]):
            where = ".".join(path[:i]) or "(top level)"
            key = _step(node, part, item, where)
            child = node[key] if isinstance(node, list) else node.get(key)
            if isinstance(child, str):  # `optimizer: sgd` shorthand: expand to a mapping
                child = node[key] = {"type": child}
            elif child is None:
                child = node[key] = {}
            elif not isinstance(child, dict | list):
                raise UserError(f"--set {item!r}: {'.'.join(path[: i + 1])} is not a mapping")
            node = child
        node[_step(node, path[-1], item, ".".join(path[:-1]))] = value
    return raw


def read_yaml(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                        f"{e.start}); save the config as UTF-8") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read config ({e.__class__.__name__})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise UserError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a config") from None
    if raw is None:
        raise UserError(f"{path}: config file is empty; see configs/ for examples")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a config must be a mapping of sections (name, data, model, "
                        f"...), not a {type(raw).__name__}")
    return raw


def validate(raw: dict, source: str = "config") -> Experiment:
    try:
        return Experiment.model_validate(raw)
    except ValidationError as e:
        raise UserError(format_errors(e, source)) from None


def load_experiment(path: Path, overrides: list[str] = ()) -> Experiment:
    raw = apply_overrides(read_yaml(path), list(overrides))
    return validate(raw, str(path))
