"""What `dl2424 config show` prints: every config key with its type, default and description,
read from the registries and the pydantic models (so the README's key tables are generated,
not hand-kept)."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .compose import registry_of
from .config import Experiment, TrainConfig
from .errors import UserError
from .registry import DATASETS, INITS, LOSSES, MODELS, OPTIMIZERS, SAMPLERS, SCHEDULES, Registry

# The config section each registry fills, in the order of a config file.
KINDS: dict[str, Registry] = {"data": DATASETS, "model": MODELS, "loss": LOSSES, "init": INITS,
                              "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
                              "sampler": SAMPLERS}
SECTIONS: dict[str, type[BaseModel]] = {"experiment": Experiment, "train": TrainConfig}


@dataclass(frozen=True)
class Key:
    name: str
    type: str
    default: str
    description: str
    choices: bool = False  # the type is a list of allowed words

@dataclass(frozen=True)
class Doc:
    kind: str  # data, model, ..., or "section"
    name: str
    help: str
    keys: list[Key]


def type_name(annotation) -> str:
    """`float | None`, `relu | leaky_relu`, `list[int]`, ... as a user writes the value."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        reg = next((m for m in annotation.__metadata__ if isinstance(m, Registry)), None)
        return f"{reg.kind} ({' | '.join(reg.names())})" if reg else type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else type_name(a) for a in args)
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "{" + ", ".join(annotation.model_fields) + "}"
    name = getattr(annotation, "__name__", str(annotation))
    return {"PositiveInt": "int > 0", "NonNegativeInt": "int ≥ 0",
            "PositiveFloat": "float > 0", "str": "text"}.get(name, name)


def _default(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel) or isinstance(value, list | dict):
        plain = value.model_dump(mode="json", exclude_none=True) if isinstance(value, BaseModel) \
            else [v.model_dump(mode="json", exclude_none=True) if isinstance(v, BaseModel) else v
                  for v in value] if isinstance(value, list) else value
        return yaml.safe_dump(plain, default_flow_style=True, width=10**6).strip()
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _bounds(field) -> str:
    """` > 0`, ` in [0, 1)`, ...: the numeric bounds a field declares."""
    b = {type(m).__name__: getattr(m, type(m).__name__.lower()) for m in field.metadata
         if type(m).__name__ in ("Gt", "Ge", "Lt", "Le")}
    lo = f"[{b['Ge']}" if "Ge" in b else f"({b['Gt']}" if "Gt" in b else None
    hi = f"{b['Le']}]" if "Le" in b else f"{b['Lt']})" if "Lt" in b else None
    if lo and hi:
        return f" in {lo}, {hi}"
    if lo:
        return f" {'≥' if lo[0] == '[' else '>'} {lo[1:]}"
    return f" {'≤' if hi[-1] == ']' else '<'} {hi[:-1]}" if hi else ""


def keys_of(model: type[BaseModel]) -> list[Key]:
    return [Key(name, type_name(f.annotation if registry_of(f) is None else
                                typing.Annotated[object, registry_of(f)]) + _bounds(f),
                _default(f), f.description or "", typing.get_origin(f.annotation) is typing.Literal)
            for name, f in model.model_fields.items()]


def describe(what: str | None = None) -> list[Doc]:
    """All components and sections, or those of one kind (`optimizer`), one registered name
    (`adam`, `kind/name` when a name is in two registries), or one section (`train`)."""
    docs = [Doc("section", name, (model.__doc__ or "").strip().splitlines()[0]
                if model.__doc__ else "", keys_of(model)) for name, model in SECTIONS.items()]
    docs += [Doc(kind, name, reg[name].help, keys_of(reg[name].params))
             for kind, reg in KINDS.items() for name in reg.names()]
    if what is None:
        return docs
    kind, _, name = what.rpartition("/")
    if kind:
        return [d for d in docs if (d.kind, d.name) == (kind, name)]
    return [d for d in docs if what in (d.kind, d.name)]


def choices() -> list[str]:
    """Everything `config show` accepts (for shell completion and the error message)."""
    return [*SECTIONS, *KINDS, *sorted({n for r in KINDS.values() for n in r.names()})]


def markdown(docs: list[Doc]) -> str:
    """One table per component: the README's key tables."""
    out = []
    for d in docs:
        title = d.name if d.kind == "section" else f"{d.kind} `{d.name}`"
        out.append(f"**{title}**" + (f": {d.help}" if d.help else ""))
        if not d.keys:
            out += ["", "(no keys)", ""]
            continue
        out += ["", "| key | type | default | description |", "|---|---|---|---|"]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in (
            f"`{k.name}`", k.type, f"`{k.default}`", k.description)) + " |" for k in d.keys]
        out.append("")
    return "\n".join(out)


def summary(docs: list[Doc]) -> str:
    """One row per section and component: its keys with their defaults (and descriptions).
    What the README's key table holds (`make readme` writes it there)."""
    rows = ["| section or component | key = default (choices): description |", "|---|---|"]
    for d in docs:
        title = f"`{d.name}`" if d.kind == "section" else f"{d.kind} `{d.name}`"
        keys = "; ".join(f"`{k.name}` = {k.default}" + (f" ({k.type})" if k.choices else "")
                         + (f": {k.description}" if k.description else "") for k in d.keys)
        rows.append(f"| {title} | " + (keys or "no keys").replace("|", "\\|") + " |")
    return "\n".join(rows) + "\n"


BEGIN, END = "<!-- keys: begin (generated: make readme) -->", "<!-- keys: end -->"


def splice(text: str, table: str) -> str:
    """`text` with the part between the BEGIN and END markers replaced by `table`."""
    if BEGIN not in text or END not in text:
        raise UserError(f"no {BEGIN} ... {END} markers to write the key table between")
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + "\n" + table + rest[rest.index(END):]
