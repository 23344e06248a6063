"""Name → component registries. Adding a component is one decorated definition in one file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, field_validator


def _takes_bool(annotation) -> bool:
    """Whether a field's type admits true/false anywhere in it (bool, Any, nested types)."""
    if annotation is bool or annotation is Any:
        return True
    return any(_takes_bool(a) for a in get_args(annotation) if a is not annotation)


def _has_bool(value) -> bool:
    return isinstance(value, bool) or (isinstance(value, list | tuple)
                                       and any(map(_has_bool, value)))


class Params(BaseModel):
    """Base for a component's parameter model: unknown keys are errors, and so are inf/NaN
    and true/false where a number is wanted."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value, info):
        field = cls.model_fields.get(info.field_name)
        if field is not None and _has_bool(value) and not _takes_bool(field.annotation):
            raise ValueError("true/false given where a number is wanted")
        return value


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    params: type[Params]
    help: str
    extras: dict[str, Any] = field(default_factory=dict)  # kind-specific hooks (see register)


class Registry:
    """A dict of named factories, each with the pydantic model of its parameters."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, params: type[Params] = Params, **extras):
        """Decorator: register a factory (a function or a class) under `name`, with its
        parameter model. `extras` are what this kind of component needs beyond the
        factory (a dataset's `locate` and `search_places`)."""

        def wrap(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            doc = (factory.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, factory, params, doc[0] if doc else "", extras)
            return factory

        return wrap

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)


DATASETS = Registry("dataset")
MODELS = Registry("model")
LOSSES = Registry("loss")
INITS = Registry("initializer")
OPTIMIZERS = Registry("optimizer")
SCHEDULES = Registry("schedule")
SAMPLERS = Registry("sampler")


class Spec(BaseModel):
    """A resolved component: its registered name and its validated parameters."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    type: str
    params: Params

    def dump(self) -> dict:
        return {"type": self.type, **self.params.model_dump(mode="json")}


def component(registry: Registry):
    """A pydantic field type: a name, or a mapping with `type:` plus that component's keys.

    Validation errors inside the component's parameters keep their dotted location.
    """

    def resolve(value):
        if isinstance(value, Spec):
            return value
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, dict):
            raise ValueError(f"expected a {registry.kind} name or a mapping with a 'type' key")
        value = dict(value)
        name = value.pop("type", None)
        choices = ", ".join(registry.names())
        if name is None:
            raise ValueError(f"missing 'type' (registered {registry.kind}s: {choices})")
        if not isinstance(name, str) or name not in registry:
            raise ValueError(f"unknown {registry.kind} {name!r}; registered: {choices}")
        return Spec(type=name, params=registry[name].params.model_validate(value))

    # The registry rides along as metadata, so config composition can find components.
    return Annotated[Spec, BeforeValidator(resolve), PlainSerializer(lambda s: s.dump()),
                     registry]
