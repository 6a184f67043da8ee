"""Typed, validated experiment configuration.

One YAML file per experiment in ``configs/`` (found by name or path), with at most one
level of inheritance (``_base_: other.yaml``). Every key is a field of the dataclasses
below; unknown keys and badly typed values are rejected with the key, the allowed values
and the closest valid key. Command-line overrides use dotted keys::

    cfg = load_config("voc_mnv2_os16", ["train.lr=0.01", "model.output_stride=8"])
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from segkit.config.checks import validate_config
from segkit.config.schema import SECTIONS, Config, ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # shipped in the package (configs/ links here)


def _closest(name: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.4)
    return f" Did you mean '{match[0]}'?" if match else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Return ``value`` checked (and widened int -> float) against the annotation ``tp``."""

    def bad() -> ConfigError:
        return ConfigError(f"{key}: got {value!r} ({type(value).__name__}); expected {_type_name(tp)}.")

    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and type(value) is type(allowed[allowed.index(value)]):
            return value
        raise ConfigError(f"{key}: got {value!r}; allowed values are {', '.join(repr(a) for a in allowed)}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                pass
        raise bad()
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise bad()
        return [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e-3' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # internal: config schema


def _build_section(section: str, values: dict[str, Any]) -> Any:
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(
                f"Unknown config key '{section}.{key}'.{_closest(key, names)} "
                f"Valid keys in '{section}': {', '.join(names)}."
            )
        kwargs[key] = _coerce(f"{section}.{key}", value, hints[key])
    return cls(**kwargs)


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a :class:`Config` from a plain (YAML-loaded) dict."""
    if not isinstance(raw, dict):
        raise ConfigError(f"A config must be a mapping of sections, got {type(raw).__name__}.")
    valid = ["name", *SECTIONS]
    for key in raw:
        if key not in valid:
            raise ConfigError(f"Unknown config section '{key}'.{_closest(key, valid)} Valid: {', '.join(valid)}.")
    sections = {}
    for section in SECTIONS:
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"Config section '{section}' must be a mapping of keys, got {values!r}.")
        sections[section] = _build_section(section, values)
    name = raw.get("name", "unnamed")
    if not isinstance(name, str):
        raise ConfigError(f"name: expected a string, got {name!r}.")
    cfg = Config(name=name, **sections)
    validate_config(cfg)
    return cfg


def available_configs() -> list[str]:
    """Names of the shipped configs (``configs/*.yaml``), sorted: what ``--config NAME`` accepts besides a path."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """Find a config by path, or by name in ``configs/`` (``voc_mnv2_os16`` -> ``configs/voc_mnv2_os16.yaml``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    if len(path.parts) > 1:  # an explicit path (has a folder): never fall back to configs/
        raise ConfigError(
            f"Config file '{name_or_path}' not found. Pass an existing YAML file, or a config name "
            f"from {CONFIG_DIR} such as voc_mnv2_os16."
        )
    candidate = CONFIG_DIR / f"{path.name}.yaml" if path.suffix == "" else CONFIG_DIR / path.name
    if candidate.is_file():
        return candidate
    known = available_configs()
    raise ConfigError(
        f"Config '{name_or_path}' not found (looked for the file itself and for {candidate}).{_closest(path.stem, known)} "
        f"Available configs: {', '.join(known)}."
    )


def yaml_error(path: Path | str, exc: yaml.YAMLError) -> ConfigError:
    """One line for a YAML syntax error: ``file:line:column: not valid YAML: the problem (its context)``.

    PyYAML's own message spans several lines (each mark quotes the line with a caret under the column).
    """

    def flat(text: Any) -> str:
        return " ".join(str(text).split())

    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return ConfigError(f"{path}: not valid YAML: {lines[0] if lines else type(exc).__name__}.")
    where = f"{path}:{mark.line + 1}:{mark.column + 1}"
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    detail = flat(problem)
    if context:
        at = f" at line {start.line + 1}, column {start.column + 1}" if start else ""
        detail += f" ({flat(context)}{at})"
    return ConfigError(
        f"{where}: not valid YAML: {detail}. Fix the file there (indentation by spaces, 'key: value', "
        "closed brackets and quotes)."
    )


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.start}); a config is a YAML text file saved as UTF-8."
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of sections.")
    return raw


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``section.key=value``; the value is parsed as YAML (``0.01``, ``true``, ``[6,12,18]``, ``null``)."""
    if "=" not in item:
        raise ConfigError(f"Override '{item}' must look like section.key=value, e.g. train.lr=0.01.")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return ``raw`` with dotted-key overrides applied (validated later with the whole config)."""
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    raw = _merge(raw, {})
    for key, value in items:
        parts = key.split(".")
        if parts == ["name"]:
            raw["name"] = value
            continue
        if len(parts) != 2 or parts[0] not in SECTIONS:
            raise ConfigError(
                f"Override key '{key}' must be 'section.key' with section one of {', '.join(SECTIONS)}"
                f" (e.g. train.lr=0.01).{_closest(parts[0], list(SECTIONS))}"
            )
        section, name = parts
        valid = [f.name for f in dataclasses.fields(SECTIONS[section])]
        if name not in valid:
            raise ConfigError(
                f"Unknown config key '{key}'.{_closest(name, valid)} Valid keys in '{section}': {', '.join(valid)}."
            )
        raw.setdefault(section, {})[name] = value
    return raw


def load_config(name_or_path: str | Path, overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Load, merge (one ``_base_`` level), override and validate an experiment config.

    Args:
        name_or_path: a config name from ``configs/`` (``voc_mnv2_os16``) or a YAML path.
        overrides: ``["train.lr=0.01", ...]`` or ``{"train.lr": 0.01}``.
    """
    path = resolve_config_path(name_or_path)
    raw = _load_yaml(path)
    base_name = raw.pop("_base_", None)
    if base_name is not None:
        base_path = (path.parent / base_name) if not Path(base_name).is_absolute() else Path(base_name)
        if not base_path.is_file():
            raise ConfigError(f"{path}: _base_ '{base_name}' not found at {base_path}.")
        base = _load_yaml(base_path)
        if "_base_" in base:
            raise ConfigError(f"{base_path}: a base config cannot have its own _base_ (one level of inheritance only).")
        raw = _merge(base, raw)
    raw.setdefault("name", path.stem)
    if overrides:
        raw = apply_overrides(raw, overrides)
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        source = f"{path} with your overrides" if overrides else str(path)
        raise ConfigError(f"{source}: {exc}") from None
