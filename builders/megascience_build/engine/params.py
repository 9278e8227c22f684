"""Typed stage parameters: each stage declares a frozen dataclass, one field per parameter.

    @dataclass(frozen=True)
    class Params:
        samples: int = param(16, "policy answers per question", min=1)
        mode: Literal["paper", "authors"] = param("paper", "whose semantics: the paper's or the authors' code")

`parse_params` checks what a pipeline file gives against the field types (int, float, bool, str, None,
Literal[...], list[X], dict[K, V] and unions of them) and the `min` / `max` bounds, and builds the instance;
a `__post_init__` raising ValueError adds checks across fields. Every error is a ParamError (engine.stage
turns it into a StageError) naming the stage, the parameter and what was expected. Values are kept as given
(no coercion): `params_dict` of the instance, the defaults updated with what the pipeline gives, is what
manifests and fingerprints record.
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Literal, Mapping, Union


class ParamError(ValueError):
    """A parameter a pipeline entry gives is unknown or does not fit its type (engine.stage turns it into a
    StageError)."""


@dataclasses.dataclass(frozen=True)
class NoParams:
    """A stage without parameters."""


def param(default: Any, help: str, *, min: float | None = None, max: float | None = None) -> Any:
    """A parameter field: its default, a one-line help text (shown by `megascience-build stages`) and optional
    numeric bounds. Mutable defaults (lists, dicts) are copied for each stage."""
    meta = {"help": help, "min": min, "max": max}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def fields_of(params_cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, resolved type) of every parameter, in declaration order."""
    hints = typing.get_type_hints(params_cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(params_cls)]


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def parse_params(params_cls: type, given: Mapping[str, Any] | None, label: str) -> Any:
    """The parameter instance for what a pipeline entry gives; ParamError on an unknown name, a wrong type,
    a value out of bounds or a failed cross-field check."""
    given = dict(given or {})
    known = fields_of(params_cls)
    names = [f.name for f, _ in known]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ParamError(f"stage {label!r}: unknown parameter(s) {unknown}; accepted: {sorted(names)}")
    for f, hint in known:
        if f.name in given:
            _check(label, f, hint, given[f.name])
    try:
        return params_cls(**given)
    except ValueError as exc:
        raise ParamError(f"stage {label!r}: {exc}") from None


def params_dict(params: Any) -> dict[str, Any]:
    """The values by name, in declaration order (what a stage's `params` and the manifest show)."""
    return {f.name: copy.deepcopy(getattr(params, f.name)) for f in dataclasses.fields(params)}


def _check(label: str, f: dataclasses.Field, hint: Any, value: Any) -> None:
    low, high = f.metadata.get("min"), f.metadata.get("max")
    ok = matches(hint, value)
    if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        raise ParamError(f"stage {label!r}: parameter {f.name!r} must be {expected(hint, low, high)}, "
                         f"got {value!r}")


def _union_args(hint: Any) -> tuple | None:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return typing.get_args(hint)
    return None


def matches(hint: Any, value: Any) -> bool:
    """Whether a YAML value fits a parameter type."""
    if hint is Any:
        return True
    if hint is type(None) or hint is None:
        return value is None
    args = _union_args(hint)
    if args is not None:
        return any(matches(a, value) for a in args)
    origin = typing.get_origin(hint)
    if origin is Literal:
        return any(value == choice and type(value) is type(choice) for choice in typing.get_args(hint))
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return isinstance(value, (list, tuple)) and all(matches(item, v) for v in value)
    if origin is dict:
        key, val = typing.get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(matches(key, k) and matches(val, v) for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


_NOUNS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def expected(hint: Any, low: float | None = None, high: float | None = None) -> str:
    """What a parameter accepts, in words ("a positive integer", "one of ['drop', 'keep']", ...)."""
    args = _union_args(hint)
    if args is not None:
        parts = [expected(a, low, high) for a in args if a is not type(None)]
        return " or ".join(parts + (["null"] if type(None) in args else []))
    origin = typing.get_origin(hint)
    if origin is Literal:
        return f"one of {list(typing.get_args(hint))}"
    if origin in (list, tuple):
        item = (typing.get_args(hint) or (Any,))[0]
        return "a list" + ("" if item is Any else f" of {type_name(item)} values")
    if origin is dict:
        return "a mapping" + ("" if not typing.get_args(hint) else f" {type_name(hint)}")
    if hint in (int, float):
        if hint is int and low == 1 and high is None:
            return "a positive integer"
        bounds = [f">= {low}"] if low is not None else []
        bounds += [f"<= {high}"] if high is not None else []
        return _NOUNS[hint] + (f" {' and '.join(bounds)}" if bounds else "")
    return _NOUNS.get(hint, getattr(hint, "__name__", str(hint)))


def type_name(hint: Any) -> str:
    """A short type for listings: int, str | null, list[str], 'drop' | 'keep'."""
    args = _union_args(hint)
    if args is not None:
        return " | ".join(type_name(a) for a in args)
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(c) for c in typing.get_args(hint))
    if origin in (list, tuple, dict):
        inner = ", ".join(type_name(a) for a in typing.get_args(hint))
        return f"{origin.__name__}[{inner}]" if inner else origin.__name__
    return getattr(hint, "__name__", str(hint))
