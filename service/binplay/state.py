"""The run's saved state: what a checkpoint holds, and the checks before resuming.

At a task boundary it holds model weights, the ledger (index ranges, classes), the
accuracy/fidelity history and, for measurement only, a fixed-size fidelity probe
per task (pointers into the dataset, never used for training). Mid-task it also
holds optimizer states, the frozen copies and the current task's code mapping;
those are dropped when the task ends, so nothing per sample outlives its task.

A state is plain data only (tensors, numbers, strings, lists, dicts) and is read with
``torch.load(weights_only=True)``: a crafted state.pt is refused, never executed.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from binplay.config import BinPlayConfig

STATE_VERSION = 1
STATE_FILE = "state.pt"
TASK_SCOPED = ("optim", "snapshots", "mapping", "phase_metrics", "task_elapsed")


class StateError(ValueError):
    """A saved state this run cannot continue from."""


def derived_seed(*parts: object) -> int:
    """A stable 63-bit seed from the run seed and a position (task, phase, epoch, rank)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def fresh_state(cfg: BinPlayConfig) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "fingerprint": cfg.fingerprint(),
        "config": cfg.model_dump(mode="json"),  # lets evaluate/generate rebuild the models
        "task": 0,
        "cursor": 0,
        "models": None,
        "ledger": {"tasks": []},
        "probes": {},
        "history": {"accuracy": [], "fidelity_psnr": [], "fidelity_mse": [],
                    "sign_agreement": [], "task_seconds": [], "grids": []},
    }


def end_task(state: dict[str, Any]) -> None:
    """Drop everything task-scoped (the code mapping above all) at a task boundary."""
    for key in TASK_SCOPED:
        state.pop(key, None)
    state["cursor"] = 0
    state["task"] += 1


def check_state(state: dict[str, Any], cfg: BinPlayConfig, origin: str) -> None:
    version = state.get("version")
    if version != STATE_VERSION:
        raise StateError(f"{origin}: state version {version} was written by another BinPlay "
                         f"version (this one reads {STATE_VERSION}); start a new run name")
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
    plain_data(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def save_state(state: dict[str, Any], directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_bytes(state_bytes(state))
    tmp.replace(directory / STATE_FILE)  # never leave a half-written state behind
    return directory / STATE_FILE


def load_state(path: str | Path, cfg: BinPlayConfig | None = None) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
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
    if not isinstance(state, dict):
        raise StateError(f"{path}: not a BinPlay state")
    if cfg is not None:
        check_state(state, cfg, str(path))
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
