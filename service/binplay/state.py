"""The run's saved state: what a checkpoint holds, and the checks before resuming.

At a task boundary it holds model weights, the ledger (index ranges, classes), the
accuracy/fidelity history and, for measurement only, a fixed-size fidelity probe
per task (pointers into the dataset, never used for training). Mid-task it also
holds optimizer states, the frozen copies and the current task's code mapping;
those are dropped when the task ends, so nothing per sample outlives its task.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

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
                    "sign_agreement": [], "task_seconds": [], "grids": [], "losses": []},
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


def state_bytes(state: dict[str, Any]) -> bytes:
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
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise StateError(f"{path}: no saved state") from None
    except Exception as exc:  # pickle/zip errors come in many types
        raise StateError(f"{path}: unreadable state ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise StateError(f"{path}: not a BinPlay state")
    if cfg is not None:
        check_state(state, cfg, str(path))
    return state
