"""The search's YAML: a base training config, overrides, a search space and how to search.

Every field of the space and of the overrides is a dotted training-config field, and
every value the space can take is validated by the training config's own pydantic
models when the file is loaded, so a misspelt field fails in one line before Ray starts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from binplay.config import BinPlayConfig, ConfigError, config_from_dict, set_dotted

# Validation accuracy over the tasks seen so far, %, reported after every task: a search
# chooses on it (and ASHA stops on it); test accuracy rides along, never chosen on.
METRIC = "val_average_accuracy"
TEST_METRIC = "average_accuracy"
TIME_ATTR = "tasks_done"  # ASHA's clock: the number of the task just finished (1-based)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dimension(_Strict):
    """One axis of the space: exactly one of grid / choice / uniform / loguniform."""

    grid: list[Any] | None = Field(None, description="every value, in order (grid search)")
    choice: list[Any] | None = Field(None, description="one value drawn per sample")
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one(self) -> Dimension:
        given = [k for k in ("grid", "choice", "uniform", "loguniform") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of grid, choice, uniform, loguniform")
        if given[0] in ("grid", "choice") and not getattr(self, given[0]):
            raise ValueError(f"{given[0]}: needs at least one value")
        bounds = self.uniform or self.loguniform
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError("bounds must be [low, high] with low < high")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform: bounds must be > 0")
        return self

    def values_to_check(self) -> list[Any]:
        """Values that validate the axis: every listed one, or both ends of a range."""
        return list(self.grid or self.choice or self.uniform or self.loguniform or [])

    def to_tune(self) -> Any:
        from ray import tune

        if self.grid is not None:
            return tune.grid_search(self.grid)
        if self.choice is not None:
            return tune.choice(self.choice)
        if self.uniform is not None:
            return tune.uniform(*self.uniform)
        return tune.loguniform(*self.loguniform)  # type: ignore[misc]


class AshaConfig(_Strict):
    grace_period: int = Field(1, ge=1, description="tasks every trial trains before it can be stopped")
    reduction_factor: float = Field(2, gt=1, description="keep the top 1/factor at each rung")


class TrialResources(_Strict):
    cpus: float = Field(1.0, gt=0, description="CPUs of a trial's own process: all of an "
                        "in-process trial (ray.num_workers 0); beside its Train workers otherwise")


class SearchConfig(_Strict):
    name: str = Field("search", pattern=r"^[A-Za-z0-9_.-]+$")
    base: str = Field(description="training config (YAML) the trials start from")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted field: value")
    trial_overrides: dict[str, Any] = Field(
        default_factory=dict, description="dotted field: value for the trials only (a reduced "
        "stream: fewer images a class, a smaller test set); best.yaml and the final run keep "
        "the base's, so the winner is trained and scored on the whole data")
    space: dict[str, Dimension] = Field(min_length=1, description="dotted field: dimension")
    search: Literal["grid", "random"] = "grid"
    num_samples: int = Field(1, ge=1, description="random: draws from the space; grid: 1")
    random_seed: int | None = Field(0, description="seed of the random search (reproducible)")
    seeds: list[int] | None = Field(
        None, min_length=1, description="training seeds run for every configuration")
    scheduler: AshaConfig = Field(default_factory=AshaConfig)
    resources: TrialResources = Field(default_factory=TrialResources)
    max_concurrent_trials: int = Field(1, ge=1)
    tune_tasks: int | None = Field(
        None, ge=1, description="tune on the first k tasks only (the future is unknown)")
    final: bool = Field(False, description="then train the whole stream with the winner")
    storage: str | None = Field(None, description="the search's directory (--output wins); "
                                "default runs/tune-<name>")

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if self.search == "grid":
            loose = [k for k, d in self.space.items() if d.grid is None]
            if loose:
                raise ValueError(f"space.{loose[0]}: search grid takes grid values only "
                                 f"(use search: random for choice/uniform/loguniform)")
            if self.num_samples != 1:
                raise ValueError("num_samples: a grid search runs every point once (use seeds)")
        if self.seeds is not None and "seed" in self.space:
            raise ValueError("seeds: the space already varies seed")
        for key in self.space:
            if key in ("name", "run.storage_path") or key.startswith("ray.address"):
                raise ValueError(f"space.{key}: where a trial runs is set by the search")
        both = sorted(set(self.overrides) & set(self.trial_overrides))
        if both:
            raise ValueError(f"trial_overrides.{both[0]}: also in overrides; give it once")
        return self

    def fingerprint(self) -> str:
        # What the trials run: a field moved between overrides and trial_overrides leaves the
        # trials, and so a resumable search, the same.
        dump = self.model_dump(mode="json", exclude={"storage", "final", "trial_overrides"})
        dump["overrides"] = {**self.overrides, **self.trial_overrides}
        return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:16]


def _resolve_base(base: str, tune_file: Path) -> Path:
    # Relative to the working directory like every job's --config, else beside the tune file.
    path = Path(base)
    if path.is_absolute() or path.exists():
        return path
    return tune_file.parent / path


def load_search(path: str | Path) -> tuple[SearchConfig, dict[str, Any]]:
    """The search config and its base training tree; every value the space or the
    overrides can produce is validated here (ConfigError, one line)."""
    source = str(path)
    try:
        tree = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read tune config ({exc.strerror})") from None
    except yaml.YAMLError:
        raise ConfigError(f"{source}: malformed YAML") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    try:
        search = SearchConfig.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{source}: {where}: {first['msg']}") from None
    base_path = _resolve_base(search.base, Path(path))
    try:
        base = yaml.safe_load(base_path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        raise ConfigError(f"{source}: base: cannot read training config {base_path}") from None
    check_search(search, base, source)
    return search, base


def trial_config(search: SearchConfig, base: dict[str, Any], params: dict[str, Any],
                 name: str = "trial", storage: str | None = None, whole_stream: bool = False,
                 source: str = "trial") -> BinPlayConfig:
    """The training config of one point of the space: base + overrides + params, and, unless
    ``whole_stream``, the trial_overrides and the stream cut to the first ``tune_tasks`` tasks."""
    tree = json.loads(json.dumps(base))
    reduced = {} if whole_stream else search.trial_overrides
    for key, value in {**search.overrides, **reduced, **params}.items():
        set_dotted(tree, key, value, f"{source}: {key}")  # native YAML values, not re-parsed
    cfg = config_from_dict(tree, source=source)
    updates: dict[str, Any] = {"name": name}
    if search.tune_tasks is not None and not whole_stream:
        if search.tune_tasks > len(cfg.stream.tasks):
            raise ConfigError(f"{source}: tune_tasks: {search.tune_tasks} > the stream's "
                              f"{len(cfg.stream.tasks)} tasks")
        tree = cfg.model_dump(mode="json")
        tree["stream"]["tasks"] = tree["stream"]["tasks"][:search.tune_tasks]
        cfg = config_from_dict(tree, source=source)
    if storage is not None:
        tree = cfg.model_dump(mode="json")
        tree["run"]["storage_path"] = storage
        cfg = config_from_dict(tree, source=source)
    return cfg.model_copy(update=updates)


def check_search(search: SearchConfig, base: dict[str, Any], source: str) -> BinPlayConfig:
    """Validate the base + overrides, then every value of every axis; returns the config
    of the first point (its resources are every trial's unless the space changes ray.*)."""
    first = {k: d.values_to_check()[0] for k, d in search.space.items()}
    cfg = trial_config(search, base, first, source=f"{source}: overrides")
    trial_config(search, base, first, whole_stream=True, source=f"{source}: the whole stream")
    if cfg.stream.val_fraction == 0:
        raise ConfigError(f"{source}: stream.val_fraction: a search chooses on validation data; "
                          f"set it above 0 (test accuracy is never chosen on)")
    for key, dim in search.space.items():
        for value in dim.values_to_check():
            trial_config(search, base, {**first, key: value}, source=f"{source}: space.{key}={value}")
    for seed in search.seeds or []:
        trial_config(search, base, {**first, "seed": seed}, source=f"{source}: seeds")
    return cfg


def param_space(search: SearchConfig) -> dict[str, Any]:
    """Tune's flat param space: dotted training fields as keys (Tune keeps them as given)."""
    from ray import tune

    space = {key: dim.to_tune() for key, dim in search.space.items()}
    if search.seeds:
        space["seed"] = tune.grid_search(search.seeds)
    return space


def trial_count(search: SearchConfig) -> int:
    grid = 1
    for dim in search.space.values():
        grid *= len(dim.grid) if dim.grid is not None else 1
    return grid * len(search.seeds or [0]) * search.num_samples
