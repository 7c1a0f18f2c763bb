"""Reading a config: YAML files, ``--set a.b=value`` overrides, validation into one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from binplay.config.fields import ConfigError
from binplay.config.model import BinPlayConfig, for_strategy


def set_dotted(tree: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    """Set ``a.b.c`` in a config tree; ``where`` names the setting in the error."""
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: '{key}' is not a section")
        node = child
    node[keys[-1]] = value


def _one_line(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    extra = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    if not first["loc"] and first["type"] == "value_error":
        # A check across sections: its message starts with the dotted field it names.
        return f"{source}: {first['ctx']['error']}{extra}"
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{source}: {where}: {first['msg']}{extra}"


def with_overrides(tree: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of a config tree with ``a.b=value`` overrides applied (not validated)."""
    tree = json.loads(json.dumps(tree))  # a private copy: overrides never touch the caller's
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key.path=value")
        key, raw = item.split("=", 1)
        # YAML parsing gives `3` -> int, `true` -> bool, `[0,1]` -> list, `null` -> None.
        set_dotted(tree, key.strip(), yaml.safe_load(raw), f"--set {key.strip()}")
    return tree


def config_from_dict(tree: dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                     source: str = "config") -> BinPlayConfig:
    """Apply ``a.b=value`` overrides to a config tree (e.g. a saved run's) and validate it."""
    tree = with_overrides(tree, overrides)
    try:
        return BinPlayConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> BinPlayConfig:
    """Read a YAML file (or defaults when None), apply ``a.b=value`` overrides, validate."""
    return config_from_dict(read_tree(path), overrides, str(path) if path else "defaults")


def load_preset(path: str | Path | None, overrides: list[str] | tuple[str, ...],
                strategies: list[str]) -> dict[str, Any]:
    """A preset run under several strategies (``jobs.compare``): it may carry any of their
    settings; each strategy's view of it (``for_strategy``) is validated before anything
    runs. Returns the tree with the overrides applied."""
    source = str(path) if path else "defaults"
    tree = with_overrides(read_tree(path), overrides)
    for strategy in strategies:
        config_from_dict(for_strategy(tree, strategy), [f"strategy={strategy}"], source)
    return tree


def read_tree(path: str | Path | None) -> dict[str, Any]:
    """The YAML mapping of a config file ({} when None: every default), not validated."""
    source = str(path) if path else "defaults"
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config ({exc.strerror})") from None
        if not text.strip():  # an empty file is a mistake, not "train on every default"
            raise ConfigError(f"{source}: empty config file")
        try:
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{source}: malformed YAML{line}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections")
    return tree
