"""Typed dataclass configs loaded from YAML (or dicts), in the style of TRL's `SFTConfig`.

An unknown field is an error that names it; a value of the wrong type is an error that names
the field and the expected type. Nested dataclasses load from nested mappings. String values
may use variables (`${SELFLENGTHEN_DATA_DIR}/federalist.jsonl`), so one config serves machines
whose data lives in different places. Variables come from the environment, overlaid with an
explicit mapping (an experiment's `data_dir`), never by changing the environment.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from pathlib import Path
from collections.abc import Mapping
from typing import Any, TypeVar

import yaml

from harness.errors import UserError
from infra.compute import forced_precision

T = TypeVar("T")

LARGEST_INT = 2**63 - 1
"""No count a config means is larger; beyond it a value overflows the libraries it reaches."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error, not a silent overwrite."""

    def construct_mapping(self, node, deep=False):
        first_line: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first_line[key]})", key_node.start_mark)
                first_line[key] = line
            except TypeError:  # an unhashable key: yaml's own error follows
                continue
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every failure into a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte offset {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"malformed YAML in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of field names to values, not {type(data).__name__}")
    return data


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "",
              variables: Mapping[str, str] | None = None, base: T | None = None) -> T:
    """Build dataclass `cls` from `data`, checking field names and simple types.

    Fields `data` leaves out come from `base` when given, else from the class defaults. A nested
    section starts from its field's own default (a factory may differ from the class defaults:
    the reference's stop strings), so writing one value of a section keeps the others.
    `${NAME}` in a string expands from `variables`, else from the environment.
    """
    data = {} if data is None else data
    scope = {**os.environ, **(variables or {})}
    label = where or cls.__name__
    if not isinstance(data, dict):
        raise UserError(f"{label} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r} in {label}; known fields: {', '.join(sorted(fields))}")
    kwargs = {name: _field_value(fields[name], hints[name], value, f"{label}.{name}", scope)
              for name, value in data.items()}
    if base is not None:
        kwargs = {**{name: getattr(base, name) for name in fields}, **kwargs}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid {label}: {exc}") from None


def _field_value(spec: dataclasses.Field, tp: Any, value: Any, label: str, scope: Mapping[str, str]) -> Any:
    """`value` coerced to the field's type; a mapping for a dataclass field overlays the field's default."""
    if isinstance(value, dict) and spec.default_factory is not dataclasses.MISSING:
        default = spec.default_factory()
        if dataclasses.is_dataclass(default):
            return from_dict(type(default), value, label, scope, base=default)
    return _coerce(tp, value, label, scope)


def load_config(cls: type[T], path: str | Path) -> T:
    """Load dataclass `cls` from a YAML file."""
    return from_dict(cls, load_yaml(path), where=f"{Path(path).name}")


def _coerce(tp: Any, value: Any, label: str, scope: Mapping[str, str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, label, scope)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(errors[0] if errors else f"{label}: unexpected value {value!r}")
    if dataclasses.is_dataclass(tp):
        if value is None:
            raise UserError(f"{label} must be a mapping, got null (leave the section out for its defaults)")
        return value if isinstance(value, tp) else from_dict(tp, value, label, scope)
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"{label} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{label} must be a list, got {type(value).__name__}")
        inner = args[0] if args else Any
        return [_coerce(inner, v, f"{label}[{i}]", scope) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{label} must be a mapping, got {type(value).__name__}")
        inner = args[1] if len(args) == 2 else Any
        return {k: _coerce(inner, v, f"{label}.{k}", scope) for k, v in value.items()}
    if tp is float:
        return _number(value, label)
    if tp is bool and not isinstance(value, bool):
        raise UserError(f"{label} must be true or false, got {value!r}")
    if tp is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise UserError(f"{label} must be an integer, got {value!r}")
    if tp is int and abs(value) > LARGEST_INT:
        raise UserError(f"{label} is too large to mean anything: {value}")
    if tp is str and not isinstance(value, str):
        raise UserError(f"{label} must be a string, got {value!r}")
    if isinstance(value, str) and "$" in value:
        return expand_variables(value, scope, label)
    return value


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand_variables(value: str, scope: Mapping[str, str], label: str) -> str:
    """`value` with `$NAME` / `${NAME}` replaced from `scope`; an unset one is an error naming the field."""
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in scope or scope[name] == "":
            raise UserError(f"{label} uses an unset environment variable: {value}")
        return scope[name]

    return _VARIABLE.sub(replace, value)


def _number(value: Any, label: str) -> float:
    """A float field's value; YAML 1.1 reads `1e-3` as a string, so a numeric string is accepted."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"{label} must be a number, got {value!r}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{label} must be a number, got {value!r}")
    else:
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    if not math.isfinite(number):
        raise UserError(f"{label} must be a finite number, got {value!r}")
    return number


def precision_setting() -> str | None:
    """SELFLENGTHEN_PRECISION's bf16 or fp32 (None when unset), refused in one line before any work when it
    is anything else: every command checks it first (`harness.cli.main`)."""
    try:
        return forced_precision()
    except ValueError as exc:
        raise UserError(str(exc)) from None
