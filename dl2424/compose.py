"""Config composition: `base:` files, several config files and `--set` values, merged layer
over layer, left to right.

Merging follows the schema (the pydantic models of the config and of each registered
component), so that a layer means what a user expects:
- mappings merge key by key; lists and plain values replace;
- a component switched to another type (`optimizer: adam` over momentum) keeps the keys
  the new type accepts, drops the others with a one-line notice, and takes its defaults;
- a schema's `after_switch(raw, switched, notify)` settles what a switch implies elsewhere;
- a key of an exclusive group (`train.epochs | steps | cycles`) replaces the others.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .errors import UserError
from .registry import Registry

Notify = Callable[[str], None]


def registry_of(field) -> Registry | None:
    """The registry of a `component()` field, or None for an ordinary field."""
    return next((m for m in getattr(field, "metadata", ()) if isinstance(m, Registry)), None)


def _submodel(field) -> type[BaseModel] | None:
    ann = getattr(field, "annotation", None)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _as_mapping(value) -> dict | None:
    if isinstance(value, str):
        return {"type": value}
    return dict(value) if isinstance(value, dict) else None


def _switch(old: dict, new_type: str, registry: Registry, where: str, notify: Notify) -> dict:
    """The keys of `old` that component `new_type` accepts; a notice names the others."""
    accepted = registry[new_type].params.model_fields
    kept = {k: v for k, v in old.items() if k == "type" or k in accepted}
    dropped = [k for k in old if k not in kept]
    if dropped:
        notify(f"{where}: {old.get('type')} → {new_type} drops {', '.join(dropped)} "
               f"({new_type} has no such key)")
    return kept | {"type": new_type}


def _merge_component(base, layer, registry: Registry, where: str, notify: Notify):
    old, new = _as_mapping(base), _as_mapping(layer)
    if old is None or new is None:
        return layer
    new_type = new.pop("type", old.get("type"))
    if new_type != old.get("type") and isinstance(new_type, str) and new_type in registry:
        old = _switch(old, new_type, registry, where, notify)
    schema = registry[new_type].params if isinstance(new_type, str) and new_type in registry \
        else None
    merged = merge(old, new, schema, where, notify)
    merged["type"] = new_type
    return merged


def merge(base: dict, layer: dict, schema: type[BaseModel] | None = None, where: str = "",
          notify: Notify = lambda msg: None) -> dict:
    """`layer` over `base` (neither is changed); `schema` tells components and groups apart."""
    out = dict(base)
    fields = schema.model_fields if schema is not None else {}
    for group in getattr(schema, "exclusive_keys", ()):
        if any(k in layer for k in group):
            for k in group:
                if k not in layer:
                    out.pop(k, None)
    switched = []
    for key, value in layer.items():
        path = f"{where}.{key}" if where else str(key)
        field = fields.get(key)
        registry = registry_of(field)
        if key not in out:
            out[key] = value
        elif registry is not None:
            before = (_as_mapping(out[key]) or {}).get("type")
            out[key] = _merge_component(out[key], value, registry, path, notify)
            if (_as_mapping(out[key]) or {}).get("type") != before:
                switched.append(key)
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = merge(out[key], value, _submodel(field), path, notify)
        else:
            out[key] = value
    hook = getattr(schema, "after_switch", None)
    return hook(out, switched, notify) if switched and hook else out


def read_with_bases(path: Path, read: Callable[[Path], dict], schema: type[BaseModel],
                    notify: Notify, _chain: tuple[Path, ...] = ()) -> dict:
    """A config file with its `base:` (a file, or a list of files merged left to right,
    relative to this one) merged under it, recursively."""
    path = Path(path)
    here = path.resolve()
    if here in _chain:
        cycle = " → ".join(str(p) for p in (*_chain, here))
        raise UserError(f"{path}: base: loops back on itself ({cycle}); remove one base")
    raw = read(path)
    bases = raw.pop("base", None)
    if bases is None:
        return raw
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise UserError(f"{path}: base: must be a file name (relative to this file) or a list "
                        "of them, e.g. base: cifar_a3_base.yaml")
    merged: dict = {}
    for b in bases:
        if not (path.parent / b).is_file():
            raise UserError(f"{path}: base: {b}: no such file ({path.parent / b}); a base is "
                            "named relative to the file that names it")
        parent = read_with_bases(path.parent / b, read, schema, notify, (*_chain, here))
        merged = merge(merged, parent, schema, "", notify)
    return merge(merged, raw, schema, "", notify)


def nest(path: list[str], value: Any) -> dict:
    """`['a', 'b'], v` → `{'a': {'b': v}}`."""
    for part in reversed(path):
        value = {part: value}
    return value
