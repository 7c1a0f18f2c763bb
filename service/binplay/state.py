"""The run's saved state: what a checkpoint holds, and the checks before resuming.

At a task boundary it holds what the strategy carries into the next task (model weights
at their stored precision, ER's buffer, ...: ``binplay.memory`` counts it), the ledger
(index ranges, classes) and the accuracy/fidelity history. Mid-task it also holds
optimizer states, the frozen copies and the current task's code mapping; those are
dropped when the task ends, so nothing per sample outlives its task.

Measurement data (each task's fidelity probe: sample-to-code pairs, and the sample grids
with the original images beside their regenerations) is not training state: it lives
under ``state["measurement"]`` in memory and in its own file, ``measurement.pt``, beside
``state.pt``. Training never reads it; the evaluator and the report do.

A state is plain data only (tensors, numbers, strings, lists, dicts) and is read with
``torch.load(weights_only=True)``: a crafted state.pt is refused, never executed.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Annotated, Any, TypedDict, get_type_hints

import numpy as np
import torch

from binplay.config import BinPlayConfig, for_strategy

STATE_VERSION = 2  # 2: measurement apart, decoder carried at its stored precision
READABLE_VERSIONS = (1, 2)  # 1 is migrated on load (migrate_state)
STATE_FILE = "state.pt"
MEASUREMENT_FILE = "measurement.pt"
MEASUREMENT = "measurement"


class _TaskScoped:
    """Marks a state entry that lives within its task: dropped at the task's end, so nothing
    per sample (the code mapping above all) outlives it, and never counted as memory."""


TASK = _TaskScoped()


class RunState(TypedDict, total=False):
    """Every entry a state may hold, declared in one place; saving refuses any other.

    Entries marked ``TASK`` are task-scoped (``end_task`` drops them); the rest is what the
    run carries from one task to the next (``binplay.memory`` counts its tensors)."""

    version: int
    fingerprint: str
    config: dict[str, Any]  # lets evaluate/generate rebuild the models
    task: int  # tasks finished
    cursor: int  # epochs of the current task done (its phases in order)
    models: dict[str, dict[str, Any]] | None  # weights carried, at their stored precision
    ledger: dict[str, Any]  # index ranges and classes of every task
    history: dict[str, list]  # per-task metrics: numbers, never samples
    image_shape: list[int]
    num_classes: int
    world_size: int  # workers of the latest mid-task checkpoint
    buffer: dict[str, Any]  # a rehearsal buffer's images, labels (and DER++'s logits)
    decoder_stored: int  # the task whose end stored the decoder at its precision
    measurement: dict[str, Any]  # probes and grids: saved apart (measurement.pt), never trained on
    optim: Annotated[dict[str, Any], TASK]  # the phase's optimizer state
    snapshots: Annotated[dict[str, Any], TASK]  # models frozen at the task's start
    mapping: Annotated[Any, TASK]  # the task's sample-to-code mapping
    phase_metrics: Annotated[list, TASK]
    task_elapsed: Annotated[float, TASK]
    decoder_packed: Annotated[dict[str, Any], TASK]  # the decoder as stored (int8/int4 packing)


STATE_KEYS = tuple(RunState.__annotations__)
TASK_SCOPED = tuple(name for name, hint in get_type_hints(RunState, include_extras=True).items()
                    if TASK in getattr(hint, "__metadata__", ()))


class StateError(ValueError):
    """A saved state this run cannot continue from."""


def fresh_state(cfg: BinPlayConfig) -> RunState:
    return {
        "version": STATE_VERSION,
        "fingerprint": cfg.fingerprint(),
        "config": cfg.model_dump(mode="json"),  # lets evaluate/generate rebuild the models
        "task": 0,
        "cursor": 0,
        "models": None,
        "ledger": {"tasks": []},
        "history": fresh_history(),
        MEASUREMENT: {"probes": {}, "grids": []},
    }


def fresh_history() -> dict[str, list]:
    """Per-task metrics (one entry a task: numbers, never samples)."""
    return {"accuracy": [], "val_accuracy": [], "fidelity_psnr": [], "fidelity_mse": [],
            "regeneration_accuracy": [], "sign_agreement": [], "task_seconds": [],
            "phase_seconds": []}


def migrate_state(state: dict[str, Any]) -> dict[str, Any]:
    """A version-1 state as version 2: its probes and grids move to the measurement part, and
    its config, written before ``autoencoder.encoder_carry``, says what it did (carry the
    encoder), so its fingerprint and behaviour stay what they were."""
    if state.get("version") != 1:
        return state
    history = state.get("history", {})
    state[MEASUREMENT] = {"probes": state.pop("probes", {}), "grids": history.pop("grids", [])}
    history.setdefault("val_accuracy", [[None] * len(row) for row in history.get("accuracy", [])])
    autoencoder = state.get("config", {}).get("autoencoder")
    if isinstance(autoencoder, dict):
        autoencoder.setdefault("encoder_carry", True)
    stream = state.get("config", {}).get("stream")
    if isinstance(stream, dict):
        stream.setdefault("val_fraction", 0.0)
    er = state.get("config", {}).get("er")
    if isinstance(er, dict):
        er.setdefault("replay_batch", "balanced")
    if isinstance(state.get("config"), dict) and "strategy" in state["config"]:
        # Only what its strategy reads: another strategy's setting would now be refused.
        state["config"] = for_strategy(state["config"], state["config"]["strategy"])
    state["version"] = STATE_VERSION
    return state


def end_task(state: RunState) -> None:
    """Drop everything task-scoped (the code mapping above all) at a task boundary."""
    for key in TASK_SCOPED:
        state.pop(key, None)
    state["cursor"] = 0
    state["task"] += 1


def check_state(state: dict[str, Any], cfg: BinPlayConfig, origin: str) -> None:
    version = state.get("version")
    if version not in READABLE_VERSIONS:
        raise StateError(f"{origin}: state version {version} was written by another BinPlay "
                         f"version (this one reads {', '.join(map(str, READABLE_VERSIONS))}); "
                         f"start a new run name")
    if state.get("fingerprint") != cfg.fingerprint():
        raise StateError(f"{origin}: checkpoint was written by a different config "
                         f"(fingerprint {state.get('fingerprint')} != {cfg.fingerprint()}); "
                         f"use the same config or a new run name")


# What ``torch.load(weights_only=True)`` rebuilds; a state holds nothing else, so loading
# one never runs code from the file.
_LEAVES = (str, int, float, bool, bytes, complex, type(None), torch.Size, torch.dtype, torch.device)
_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set, frozenset)


def plain_data(value: Any, where: str = "state") -> Any:
    """``value`` as plain data: numpy scalars and arrays become numbers and tensors.

    Dicts and lists are converted in place (a state dict keeps its ``_metadata``);
    anything else that ``weights_only`` loading would refuse raises TypeError naming
    where it sits, so that a bad value fails when saved, not when a run resumes.
    """
    if isinstance(value, np.generic):  # before the leaves: np.float64 is a float
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor) or type(value) in _LEAVES:
        return value
    if type(value) not in _CONTAINERS:
        raise TypeError(f"{where} holds a {type(value).__module__}.{type(value).__qualname__}, "
                        f"which a state cannot save (plain data only)")
    if isinstance(value, dict):
        for key in list(value):
            new_key = plain_data(key, f"{where} key {key!r}")
            item = plain_data(value[key], f"{where}/{key}")
            if new_key is not key:
                del value[key]
            value[new_key] = item
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = plain_data(item, f"{where}[{i}]")
        return value
    return type(value)(plain_data(item, f"{where}[{i}]") for i, item in enumerate(value))


def state_bytes(state: dict[str, Any]) -> bytes:
    """The bytes ``state.pt`` holds for ``state`` (its training part)."""
    state = training_part(state)
    plain_data(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def training_part(state: dict[str, Any]) -> dict[str, Any]:
    """The state without its measurement part: what ``state.pt`` holds."""
    return {k: v for k, v in state.items() if k != MEASUREMENT}


def save_state(state: RunState, directory: str | Path) -> Path:
    """``state.pt`` (the training state) and, beside it, ``measurement.pt`` (probes, grids);
    the measurement first, so a state.pt never names measurements that are not there."""
    undeclared = sorted(set(state) - set(STATE_KEYS))
    if undeclared:  # a bug of the code, not of the user's input: fail before writing anything
        raise TypeError(f"state entries {undeclared} are not declared in state.RunState")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = [(MEASUREMENT_FILE, state.get(MEASUREMENT)), (STATE_FILE, training_part(state))]
    for name, part in files:
        if part is None:
            continue
        tmp = directory / (name + ".tmp")
        tmp.write_bytes(state_bytes(part))
        tmp.replace(directory / name)  # never leave a half-written file behind
    return directory / STATE_FILE


def load_state(path: str | Path, cfg: BinPlayConfig | None = None) -> RunState:
    """A saved state (``state.pt``, or a directory holding it) with its measurement part when
    ``measurement.pt`` lies beside it; a version-1 state is migrated."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    state = _load_plain(path)
    if not isinstance(state, dict):
        raise StateError(f"{path}: not a BinPlay state")
    if state.get("version") not in READABLE_VERSIONS:  # before a migration guesses at it
        raise StateError(f"{path}: state version {state.get('version')} was written by another "
                         f"BinPlay version (this one reads {', '.join(map(str, READABLE_VERSIONS))})")
    measurement = path.with_name(MEASUREMENT_FILE)
    if MEASUREMENT not in state and measurement.is_file():
        part = _load_plain(measurement)
        if isinstance(part, dict):
            state[MEASUREMENT] = part
    migrate_state(state)
    state.setdefault(MEASUREMENT, {"probes": {}, "grids": []})
    if cfg is not None:
        check_state(state, cfg, str(path))
    return state


def _load_plain(path: Path) -> Any:
    try:
        # Only tensors and plain Python data: a crafted file cannot run code here.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StateError(f"{path}: no saved state") from None
    except pickle.UnpicklingError as exc:
        # A torch zip file the weights-only reader refuses, or any pickle naming a global.
        if zipfile.is_zipfile(path) or "GLOBAL" in str(exc):
            raise StateError(f"{path}: holds objects other than plain data (tensors, numbers, "
                             f"strings, lists, dicts) and was not loaded") from None
        raise StateError(f"{path}: unreadable state (UnpicklingError)") from None
    except Exception as exc:  # pickle/zip errors come in many types
        raise StateError(f"{path}: unreadable state ({type(exc).__name__})") from None
    return state


def check_resume_workers(state: dict[str, Any], world_size: int, origin: str) -> None:
    """A change of worker count is allowed at a task boundary only.

    Worker r owns the samples whose index is r mod N and assigns their codes, so the
    number of workers decides which code each sample gets within a task. Between tasks
    nothing per sample survives, and any count may continue; a mid-task checkpoint
    resumes only with the count that wrote it.
    """
    saved = state.get("world_size", world_size)
    if state.get("cursor", 0) > 0 and saved != world_size:
        raise StateError(f"{origin}: checkpoint was taken mid-task with {saved} worker(s); resume "
                         f"with ray.num_workers={saved} (a task boundary allows any count)")
