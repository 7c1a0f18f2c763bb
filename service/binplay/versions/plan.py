"""What one learn trains: its config (checked against the state's) and its one-task stream.

The stream of a learn is the manifest ``jobs.train`` would have built, cut to what the
state knows: the past tasks come from the ledger (index ranges and classes, no shards to
train on), the new task gets indices from ``ledger.total + 1`` and the task id
``len(ledger)``, its rows selected and ordered by the same code as ``jobs.train``
(``stream.write_task_shards``). The engine then resumes at the new task and trains
exactly one, with the seeds of that task id: three learns give what one train gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from binplay.codes import CapacityError, capacity, task_prefix
from binplay.config import BinPlayConfig, ConfigError, config_from_dict, fixed_settings, load_config
from binplay.data.stream import StreamManifest, TaskRows, select_rows, task_rows, write_task_shards
from binplay.data.types import DataError, ImageSet
from binplay.state import fresh_state
from binplay.strategies import STRATEGIES
from binplay.versions.inputs import classes_of
from binplay.versions.store import VersionLedger


def _field(tree: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        tree = tree[key]
    return tree


def learn_config(config_file: str | None, overrides: list[str],
                 saved: dict[str, Any] | None) -> BinPlayConfig:
    """The first learn's config is ``--config``/``--set`` (defaults otherwise); a later learn
    starts from the state's config, and may change only what no code or shape depends on."""
    if saved is None or config_file is not None:
        cfg = load_config(config_file, overrides)
    else:
        cfg = config_from_dict(saved["config"], overrides, source="state config")
    if not STRATEGIES[cfg.strategy].learnable:
        raise ConfigError(f"strategy: {cfg.strategy} keeps every past task's data, which a learn "
                          f"never keeps; use jobs.train for it")
    if saved is None:
        return cfg
    new = cfg.model_dump(mode="json")
    # The state's config as this version reads it (fields added since take their defaults).
    old = config_from_dict(saved["config"], source="state config").model_dump(mode="json")
    # The fields that change the codes or the models' shapes (``setting(fixed=True)``);
    # everything else (epochs, learning rates, batch sizes, replay shares, ray, run) may change.
    for dotted in fixed_settings():
        before, after = _field(old, dotted), _field(new, dotted)
        if before != after:
            raise ConfigError(f"{dotted}: {after!r} differs from the state's {before!r} (fixed at "
                              f"the first learn: it changes the codes or the models' shapes)")
    if cfg.head_classes != saved["num_classes"]:
        raise ConfigError(f"classifier.max_classes: the state's head has {saved['num_classes']} "
                          f"outputs (fixed at the first learn), this config gives {cfg.head_classes}")
    return cfg


def check_head(cfg: BinPlayConfig) -> None:
    if cfg.codes.class_bits and cfg.codes.class_bits < cfg.head_classes:
        raise ConfigError(f"codes.class_bits: {cfg.codes.class_bits} bits cannot hold "
                          f"{cfg.head_classes} classes one-hot")


def seed_state(cfg: BinPlayConfig, saved: dict[str, Any]) -> dict[str, Any]:
    """The latest version's state, ready for the engine to train one more task under ``cfg``
    (checked compatible): its config becomes this learn's, its metrics start afresh."""
    fresh = fresh_state(cfg)
    return {**saved, "fingerprint": fresh["fingerprint"], "config": fresh["config"],
            "history": fresh["history"], "measurement": fresh["measurement"]}


def plan_task(cfg: BinPlayConfig, ledger: VersionLedger, data: ImageSet) -> tuple[list[int], TaskRows]:
    """The new task's classes and rows (training, validation, unmemorised), checked against the
    codes left; nothing is written before this passes."""
    classes = classes_of(data)
    split = task_rows(data, classes, cfg)
    rows = split.train
    if len(rows) == 0:
        raise DataError(f"{data.origin}: no training samples")
    left = capacity(cfg.codes.bits_per_part) - ledger.total
    if len(rows) > left:
        raise CapacityError(f"{data.origin}: {len(rows)} samples but only {left} codes are left "
                            f"(codes.bits_per_part={cfg.codes.bits_per_part} gives "
                            f"{capacity(cfg.codes.bits_per_part)}, {ledger.total} used)")
    if cfg.codes.task_bits:
        task_prefix(len(ledger.tasks), bits=cfg.codes.task_bits, prime=cfg.codes.task_prime)
    return classes, split


def stage_task(cfg: BinPlayConfig, ledger: VersionLedger, data: ImageSet,
               planned: tuple[list[int], TaskRows], test: ImageSet | None,
               shape: tuple[int, int, int], directory: Path) -> StreamManifest:
    """Write the new task's shards (and the test rows of every learnt class) under ``directory``."""
    t = len(ledger.tasks)
    classes, rows = planned
    tasks = []
    for entry in ledger.tasks:
        # Test rows of a past task's classes, when the user passes them again: metrics only.
        test_part = None if test is None else (test, select_rows(test, entry.classes,
                                                                 cfg.stream.test_per_class))
        past = write_task_shards(directory, entry.task_id, entry.classes, entry.first_index,
                                 None, test_part, cfg.stream)
        past.last_index, past.class_ranges = entry.last_index, [list(r) for r in entry.class_ranges]
        tasks.append(past)
    test_part = None if test is None else (test, select_rows(test, classes, cfg.stream.test_per_class))
    tasks.append(write_task_shards(directory, t, classes, ledger.total + 1, (data, rows),
                                   test_part, cfg.stream))
    return StreamManifest(shape, cfg.head_classes, tasks)
