"""What every config section is built from: strict models, one-line errors, the union on
``strategy`` and the metadata a setting carries (``setting``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the field."""


_UNSET: Any = object()

# The union on ``strategy``: every strategy, and the parts of the config that belong to some
# of them. This block and the strategies' registry are the only places that name strategies.
StrategyName = Literal["binplay", "finetune", "joint", "er", "dgr", "derpp", "er_ace"]
BINPLAY_ONLY = ("binplay",)  # reads reconstructions, the ledger or a memorised subset
DECODER_SIZED: StrategyName = "binplay"  # its carried bytes size the baselines' `auto` budgets
ER_READERS = ("er", "er_ace")
DERPP_READERS = ("derpp",)
DGR_READERS = ("dgr",)


def setting(default: Any = PydanticUndefined, description: str | None = None, *,
            neutral: Any = _UNSET, fixed: bool = False, readers: tuple[str, ...] | None = None,
            applies_when: dict[str, Any] | None = None, **constraints: Any) -> Any:
    """A config field and what the service reads off it (metadata, not parallel lists):

    - ``neutral``: the value that computes what runs did before the field existed. The
      fingerprint leaves the field out at that value, so older checkpoints stay valid.
    - ``fixed``: fixed by the first ``jobs.learn`` (it changes the codes or a model's shape).
    - ``readers``: the strategies that read it (None: every one). Set under another
      strategy it is refused, never applied in some other sense; a section read by some
      strategies only enters their fingerprints only.
    - ``applies_when``: sibling values under which it is read (``hidden``: the mlp preset);
      elsewhere it stays out of the fingerprint.
    """
    extra: dict[str, Any] = {}
    if neutral is not _UNSET:
        extra["neutral"] = neutral
    if fixed:
        extra["fixed"] = True
    if readers is not None:
        extra["readers"] = tuple(readers)
    if applies_when:
        extra["applies_when"] = dict(applies_when)
    return Field(default, description=description, json_schema_extra=extra or None, **constraints)


def field_meta(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The metadata ``setting`` gave a field ({} for a plain one)."""
    extra = model.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


MemoryBudget = float | Literal["auto"]


def _check_budget(v: MemoryBudget) -> MemoryBudget:
    if v != "auto" and v <= 0:
        raise ValueError("must be > 0 or 'auto'")
    return v
