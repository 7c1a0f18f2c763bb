"""Memory: what a run carries from one task into the next, read from its saved state.

A continual learner keeps no past data by promise; what it does keep is whatever its state
holds at a task boundary. So the one honest count walks that state: every tensor in
``state.pt`` at its stored size (dtype and element count, as written), wherever it sits,
except the classifier's weights, which every strategy keeps and which are reported beside
it. A tensor a strategy adds to its state later is counted without anyone remembering to.
The measurement part (``measurement.pt``: probes and sample grids) is not carried: training
never reads it. Task-scoped entries (optimizer state, frozen copies, the code mapping)
are gone at a task boundary (``state.end_task``), so they are not counted either.

The same count sizes the baselines' ``memory_mb: auto`` (``binplay_carried_bytes``: what
BinPlay would carry under a config, from models built at that config) and feeds the
reports and ``jobs.compare``.
"""

from __future__ import annotations

from typing import Any

import torch

from binplay.config import DECODER_SIZED, BinPlayConfig, MemoryBudget
from binplay.state import MEASUREMENT, TASK_SCOPED

MB = 2**20

CLASSIFIER = "models/classifier"


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _walk(value: Any, path: str, out: dict[str, int]) -> None:
    if isinstance(value, torch.Tensor):
        out[path] = tensor_bytes(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}/{key}" if path else str(key), out)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _walk(item, f"{path}/{i}", out)


def tensors(state: dict[str, Any]) -> dict[str, int]:
    """Bytes of every tensor in the state's training part, keyed by its path."""
    out: dict[str, int] = {}
    for key, value in state.items():
        if key != MEASUREMENT and key not in TASK_SCOPED:
            _walk(value, str(key), out)
    return out


def carried(state: dict[str, Any]) -> dict[str, int]:
    """Path -> bytes of every tensor carried to the next task, the classifier's aside."""
    return {p: b for p, b in tensors(state).items() if not _is_classifier(p)}


def classifier_bytes(state: dict[str, Any]) -> int:
    return sum(b for p, b in tensors(state).items() if _is_classifier(p))


def _is_classifier(path: str) -> bool:
    return path == CLASSIFIER or path.startswith(CLASSIFIER + "/")


def carried_bytes(state: dict[str, Any]) -> int:
    return sum(carried(state).values())


def by_part(breakdown: dict[str, int]) -> dict[str, int]:
    """Bytes per part (``models/decoder``, ``buffer``, ...): the per-tensor paths summed up to
    their first two levels."""
    parts: dict[str, int] = {}
    for path, size in breakdown.items():
        key = "/".join(path.split("/")[:2])
        parts[key] = parts.get(key, 0) + size
    return parts


def binplay_carried_bytes(cfg: BinPlayConfig, shape: tuple[int, int, int]) -> int:
    """What BinPlay carries between tasks under ``cfg`` (the classifier aside), counted as a
    finished run's state is: the decoder as stored and, with ``encoder_carry``, the encoder.
    Depends on the architecture only, so no run is needed."""
    from binplay.models.build import autoencoder_for
    from binplay.strategies import STRATEGIES

    as_binplay = cfg.model_copy(update={"strategy": DECODER_SIZED})
    encoder, decoder = autoencoder_for(as_binplay, shape)
    weights = STRATEGIES[DECODER_SIZED](as_binplay).carried_models(
        {"encoder": encoder, "decoder": decoder, "classifier": torch.nn.Identity()}, {})
    return carried_bytes({"models": weights})


def budget_bytes(setting: MemoryBudget, cfg: BinPlayConfig, shape: tuple[int, int, int]) -> int:
    """A baseline's byte budget: ``auto`` = what BinPlay carries under this config, else the
    megabytes given."""
    if setting == "auto":
        return binplay_carried_bytes(cfg, shape)
    return int(setting * MB)
