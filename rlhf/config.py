"""Typed stage configs: one dataclass per stage, a help line per field, YAML values + command-line overrides.

    python -m stages.sft --config data/configs/sft.yaml --epochs 2 --mode full

Unknown keys (in YAML or on the command line) are an error, the resolved config is printed
at start and stored with the checkpoint and the registry row.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

from rlhf.errors import InputError, RlhfError

C = TypeVar("C")


def field(default: Any, help: str, choices: tuple | None = None):
    """A config field: its default, its one help line (`--help`) and, for a closed set of values, the choices."""
    return dataclasses.field(default=default, metadata={"help": help, **({"choices": choices} if choices else {})})


def _coerce(cls, name: str, value: Any, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    kind = hints[name]
    origin = typing.get_origin(kind)
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        kind = args[0]
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind in (int, float, str):
            return kind(value)
        if typing.get_origin(kind) is list:
            return list(value) if not isinstance(value, str) else [v for v in value.split(",") if v]
    except (TypeError, ValueError):
        raise RlhfError(f"{where}: {name}: expected {getattr(kind, '__name__', kind)}, got {value!r}") from None
    return value


def _validate(cfg) -> None:
    for f in dataclasses.fields(cfg):
        choices = f.metadata.get("choices")
        if choices and getattr(cfg, f.name) not in choices:
            raise RlhfError(f"unknown --{f.name.replace('_', '-')} {getattr(cfg, f.name)!r}: expected one of {', '.join(map(str, choices))}")


def _coerced(cls, values: dict, where: str) -> dict:
    """`values` converted to the field types of `cls`; an unknown key or a mistyped value is an RlhfError."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise RlhfError(f"{where}: unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return {k: _coerce(cls, k, v, where) for k, v in values.items()}


def from_dict(cls: type[C], values: dict, where: str = "config") -> C:
    cfg = cls(**_coerced(cls, values, where))
    _validate(cfg)
    return cfg


def load_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), None, None, "no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(str(path), mark.line + 1 if mark else None, None, f"malformed YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise InputError(str(path), None, None, "expected a mapping of config keys to values")
    return data


def parse_args(cls: type[C], argv: list[str] | None = None, description: str = "") -> C:
    """Build `cls` from defaults <- --config YAML <- --key value overrides (transformers' HfArgumentParser:
    one --option per field, its help line, types; `--help` lists them with their defaults)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(cls, description=description or cls.__doc__)
    parser.add_argument("--config", default=None, help="a YAML file of config values; command-line values override them")
    for action in parser._actions:  # choices are checked after parsing (`_validate`): one error naming field and choices
        action.choices = None
    known, _ = parser.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**_coerced(cls, load_yaml(known.config), "config"))
    cfg, _, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True, look_for_args_file=False)
    if unknown:
        raise RlhfError(f"command line: unknown option(s) {' '.join(unknown)}; see --help")
    _validate(cfg)
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def describe(cfg) -> str:
    return json.dumps(to_dict(cfg), indent=1, sort_keys=True)


def seed_everything(seed: int) -> None:
    """Same seed, same numbers on CPU: python, numpy and torch (`transformers.set_seed`)."""
    from transformers import set_seed

    set_seed(seed)
