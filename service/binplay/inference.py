"""Use a saved run: find its latest state, rebuild its models, regenerate and evaluate.

A state is found from any of: a ``state.pt`` file, a directory holding one, an
in-process run directory (``<out>/checkpoint``) or a Ray Train run directory
(``<storage>/<name>/checkpoint_*``, the newest wins).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from binplay.config import BinPlayConfig, ConfigError, config_from_dict
from binplay.errors import first_line
from binplay.ledger import Ledger
from binplay.models.build import load_weights
from binplay.replay import decode_indices
from binplay.run_models import build_models
from binplay.scoring import class_mask, masked_logits, score
from binplay.state import STATE_FILE, StateError, load_state
from binplay.validation import builtin_shape, check_image_shape

FIXED_STREAM_FIELDS = ("tasks", "order")


def resolve_state_path(path: str | Path) -> Path:
    from binplay.validation import check_run_path

    path = Path(path)
    check_run_path(path)
    candidates = [path, path / STATE_FILE, path / "checkpoint" / STATE_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    ray_dirs = sorted(p for p in path.glob("checkpoint_*") if (p / STATE_FILE).is_file())
    if ray_dirs:
        return ray_dirs[-1] / STATE_FILE  # names carry a timestamp: the last is the newest
    raise StateError(f"{path}: no saved state (looked for state.pt, checkpoint/, checkpoint_*/)")


class SavedRun:
    """A finished (or interrupted) run's models, ledger and config, ready to use."""

    def __init__(self, path: str | Path, device: str = "cpu", origin: str | None = None):
        """``origin`` names the state in errors when ``path`` is a local copy of it."""
        self.path = resolve_state_path(path)
        where = origin or str(self.path)
        try:
            state: dict[str, Any] = load_state(self.path)
        except StateError as exc:
            raise StateError(str(exc).replace(str(self.path), where)) from None
        if not isinstance(state.get("config"), dict) or state.get("models") is None:
            raise StateError(f"{where}: state holds no finished task to use")
        try:  # a state.pt of plain data that is not a BinPlay run's: one line, not a traceback
            self.cfg = BinPlayConfig.model_validate(state["config"])
            self.ledger = Ledger.from_dict(state["ledger"])
            self.models: dict[str, nn.Module] = build_models(
                self.cfg, tuple(state["image_shape"]), state["num_classes"])
            load_weights(self.models, state["models"])
        except ValidationError as exc:
            first = exc.errors()[0]
            raise StateError(f"{where}: not a state this BinPlay can use (its config: "
                             f"{'.'.join(map(str, first['loc']))}: {first['msg']})") from None
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise StateError(f"{where}: not a state this BinPlay can use "
                             f"({type(exc).__name__}: {first_line(exc)})") from None
        self.state = state
        for module in self.models.values():
            module.to(device).eval()
        self.device = device

    def indices(self, task_id: int | None, start: int | None, stop: int | None,
                count: int, seed: int = 0) -> torch.Tensor:
        """An explicit range start..stop (inclusive), or ``count`` indices drawn from a task."""
        if start is not None:
            stop = stop if stop is not None else start + count - 1
            if start < 1 or stop > self.ledger.total or stop < start:
                raise StateError(f"indices {start}..{stop} outside the ledger's 1..{self.ledger.total}")
            return torch.arange(start, stop + 1)
        if task_id is not None and task_id not in [t.task_id for t in self.ledger.tasks]:
            raise StateError(f"task {task_id} is not in this run's ledger "
                             f"(tasks {[t.task_id for t in self.ledger.tasks]})")
        gen = torch.Generator().manual_seed(seed)
        return self.ledger.sample_indices(count, gen, task_id=task_id).sort().values

    @torch.no_grad()
    def regenerate(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images in [0, 1], the classifier's predicted labels) for past indices."""
        images = decode_indices(self.models["decoder"], indices, self.ledger, self.cfg.codes,
                                self.device)
        seen = class_mask(self.ledger.classes, self.state["num_classes"], self.device)
        labels = masked_logits(self.models["classifier"](images), seen).argmax(dim=1)
        return images.cpu(), labels.cpu()

    def evaluate(self, stream_overrides: list[str], workdir: str | Path) -> dict[str, Any]:
        """Accuracy on the test split of every learnt task, with the test stream rebuilt from
        the run's own config (``stream.*`` overrides only: another data_root, the full split)."""
        from binplay.data.shards import read_shards
        from binplay.data.stream import build_stream

        if any(not item.startswith("stream.") for item in stream_overrides):
            raise ConfigError("--set: evaluate only overrides stream.* fields")
        cfg = config_from_dict(self.state["config"], stream_overrides, source=str(self.path))
        for name in FIXED_STREAM_FIELDS:  # they define the ledger's tasks and index ranges
            if getattr(cfg.stream, name) != getattr(self.cfg.stream, name):
                raise ConfigError(f"--set stream.{name}: fixed by the run (its ledger's tasks are "
                                  f"{getattr(self.cfg.stream, name)})")
        shape = tuple(int(d) for d in self.state["image_shape"])
        known = builtin_shape(cfg.stream)  # before reading a whole dataset of another shape
        if known is not None:
            check_image_shape(known, shape, f"stream {cfg.stream.dataset}")
        manifest = build_stream(cfg, Path(workdir) / "stream")  # a scratch copy: nothing kept
        check_image_shape(manifest.image_shape, shape, f"stream {cfg.stream.test_path or cfg.stream.dataset}")
        num_classes = self.state["num_classes"]
        seen = class_mask(self.ledger.classes, num_classes, self.device)
        scores = score(self.models["classifier"], seen,
                       ((rec.task_id, read_shards(manifest.tasks[rec.task_id].test)[1:])
                        for rec in self.ledger.tasks))
        rows = {rec.task_id: scores.accuracy(rec.task_id) for rec in self.ledger.tasks}
        return {"checkpoint": str(self.path), "accuracy_per_task": rows,
                "average_accuracy": sum(rows.values()) / len(rows), "tasks_learnt": len(rows),
                **scores.confusion_report(num_classes)}
