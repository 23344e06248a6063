"""The experiment spec: YAML → validated pydantic models, with `--set` overrides.

Every problem is reported as `dotted.path: what is wrong`, one per line, through UserError.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import ClassVar, Literal

import yaml
from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from . import (
    components,  # noqa: F401  (fills the registries)
    limits,
)
from .compose import Notify, merge, nest, read_with_bases, registry_of
from .errors import UserError
from .registry import DATASETS, MODELS, OPTIMIZERS, SAMPLERS, SCHEDULES, Params, component


class TrainConfig(Params):
    # One length: a layer (base, config file, --set) giving one of these replaces the others.
    exclusive_keys: ClassVar = (("epochs", "steps", "cycles"),)
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


def sets_own_lr(schedule: object) -> bool:
    """Whether a registered schedule sets the learning rate itself (no optimizer.lr)."""
    return isinstance(schedule, str) and schedule in SCHEDULES and \
        not SCHEDULES[schedule].factory.needs_base_lr


# Train keys only one of the two trainers reads (trainer.py; seqtrain.py for text).
TEXT_ONLY = ("clip", "clip_norm", "synth_every", "val_every")
CLASSIFIER_ONLY = ("class_weighted", "label_smoothing", "snapshots", "eval_train_subset")


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

    @staticmethod
    def after_switch(raw: dict, switched: list[str], notify) -> dict:
        """A schedule switched to one that sets the learning rate itself drops optimizer.lr."""
        schedule, optimizer = raw.get("schedule"), raw.get("optimizer")
        kind = schedule.get("type") if isinstance(schedule, dict) else schedule
        if ("schedule" in switched and sets_own_lr(kind) and isinstance(optimizer, dict)
                and "lr" in optimizer):
            notify(f"optimizer: schedule {kind} sets the learning rate itself; drops lr")
            raw = raw | {"optimizer": {k: v for k, v in optimizer.items() if k != "lr"}}
        return raw

    @model_validator(mode="after")
    def _consistent(self):
        kind = SCHEDULES[self.schedule.type].factory
        needs_lr = kind.needs_base_lr
        lr = getattr(self.optimizer.params, "lr", None)
        if needs_lr and lr is None:
            raise ValueError(f"optimizer.lr is required with schedule {self.schedule.type!r}")
        if not needs_lr and lr is not None:
            raise ValueError(f"optimizer.lr is not used with schedule {self.schedule.type!r}, "
                             "which sets the learning rate itself; remove optimizer.lr")
        cyclic = " or ".join(n for n in SCHEDULES.names() if SCHEDULES[n].factory.has_cycles)
        if self.train.snapshots and not kind.has_cycles:
            raise ValueError(f"train.snapshots needs schedule.type: {cyclic} (a snapshot is "
                             "taken at the end of each cycle)")
        if self.train.cycles is not None and not kind.has_cycles:
            raise ValueError(f"train.cycles needs schedule.type: {cyclic}; use epochs or steps")
        self._text_keys()
        return self

    def _text_keys(self) -> None:
        text = self.data.type == "text"
        used = self.train.model_fields_set
        wrong = [k for k in (CLASSIFIER_ONLY if text else TEXT_ONLY)
                 if k in used and getattr(self.train, k) not in (None, False, 0.0)]
        if wrong:
            what = ("is not used by the text dataset's language models" if text else
                    "applies to text models only (data.type: text)")
            raise ValueError(f"train.{', train.'.join(wrong)}: {what}; remove it")
        if text and self.sampler.type != "shuffle":
            raise ValueError("sampler: the text dataset orders its pieces itself (data.order); "
                             "remove sampler")

    def dump(self) -> dict:
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """Hash of the resolved config, stored in checkpoints to match them to runs."""
        blob = json.dumps(self.dump(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"duplicate key {key!r} (each key may appear once)", key_node.start_mark)
        return super().construct_mapping(node, deep)


def load_yaml(text: str):
    """yaml.safe_load, but a duplicate key is an error instead of silently last-wins."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 — a SafeLoader subclass


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
        elif e["type"] == "finite_number":
            msg = f"must be a finite number, not {e['input']!r}"
        lines.append(f"  {_fmt_loc(e['loc'])}: {msg}" if e["loc"] else f"  {msg}")
    return "\n".join(lines)


def parse_override(item: str) -> tuple[list[str], object]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {item!r}: expected dotted.key=value, e.g. --set optimizer.lr=0.01")
    try:
        parsed = load_yaml(value) if value.strip() else None
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


def _through_list(raw: dict, path: list[str]) -> bool:
    """Whether a --set path goes through a list (then it sets an element in place)."""
    node = raw
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, list):
            return True
    return False


def apply_overrides(raw: dict, overrides: list[str], notify: Notify = lambda m: None) -> dict:
    """Apply `dotted.key=value` items, each merged over the config as a layer (see compose);
    a numeric part indexes a list (model.layers.0.width) and sets that element in place."""
    for item in overrides:
        path, value = parse_override(item)
        if not _through_list(raw, path):
            raw = merge(raw, nest(path, value), Experiment, "", notify)
            continue
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
        text = limits.read_text(Path(path), "config")
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a config file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                        f"{e.start}); save the config as UTF-8") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read config ({e.strerror or type(e).__name__})"
                        ) from None
    try:
        raw = load_yaml(text)
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


NO_DEFAULT = object()


def key_default(config: dict, key: str):
    """The value a resolved config lacking the dotted `key` would have: the default of that
    key in Experiment, TrainConfig or the registered component the config's `type` names
    (a run folder made before the key was added ran as that default). NO_DEFAULT for a
    required key, a key inside a list or a nested component, or one nothing declares."""
    section, _, rest = key.partition(".")
    field = Experiment.model_fields.get(section)
    if field is None or "." in rest or "[" in rest:
        return NO_DEFAULT
    if not rest:
        model, name = Experiment, section
    elif (registry := registry_of(field)) is not None:
        if rest == "type":
            return field.default if isinstance(field.default, str) else NO_DEFAULT
        node = config.get(section, field.default)
        kind = node.get("type") if isinstance(node, dict) else node
        if not isinstance(kind, str) or kind not in registry:
            return NO_DEFAULT
        model, name = registry[kind].params, rest
    else:
        model, name = field.annotation, rest
    f = getattr(model, "model_fields", {}).get(name)
    if f is None or f.is_required():
        return NO_DEFAULT
    value = f.get_default(call_default_factory=True)
    return value if value is None or isinstance(value, bool | int | float | str) else NO_DEFAULT


def validate(raw: dict, source: str = "config") -> Experiment:
    try:
        return Experiment.model_validate(raw)
    except ValidationError as e:
        raise UserError(format_errors(e, source)) from None


def read_config(path: Path, notify: Notify = lambda m: None) -> dict:
    """A train config file with its `base:` chain merged in (not yet validated)."""
    return read_with_bases(path, read_yaml, Experiment, notify)


def compose(paths: Path | list[Path], overrides: list[str] = (),
            notify: Notify = lambda m: None) -> dict:
    """Config files merged left to right (each with its bases), then the --set values."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        raise UserError("give a config file (YAML), e.g. configs/names_convnet.yaml")
    raw: dict = {}
    for path in paths:
        raw = merge(raw, read_config(path, notify), Experiment, "", notify)
    return apply_overrides(raw, list(overrides), notify)


def load_experiment(paths: Path | list[Path], overrides: list[str] = (),
                    notify: Notify = lambda m: None) -> Experiment:
    """The validated experiment of config files (merged left to right) and --set values."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    raw = compose(paths, overrides, notify)
    return validate(raw, " + ".join(str(p) for p in paths))
