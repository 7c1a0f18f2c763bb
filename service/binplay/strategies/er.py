"""Experience replay (ER): real past samples from a byte-budgeted buffer of raw images.

The standard form (Mammoth's and Avalanche's ER): each classifier step rehearses as many
buffered samples as it has current ones; the buffer (``strategies.buffer``) is class-balanced
or a reservoir, sized by ``er.memory_mb`` (``auto``: what BinPlay carries under the config).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from binplay.config import ClassifierConfig
from binplay.memory import budget_bytes, carried_bytes
from binplay.strategies.base import Memory, PastBatch, Strategy, classifier_with
from binplay.strategies.buffer import image_bytes, refill

if TYPE_CHECKING:
    from binplay.engine import TaskRun


class ReplayBufferStrategy(Strategy):
    """ER, with its own classifier settings (``er.epochs``, ``er.lr``, ``er.batch_size``)."""

    name = "er"
    memory_field = "er.memory_mb"

    def capacity(self, image_shape: tuple[int, ...]) -> int:
        shape = tuple(int(d) for d in image_shape)
        return budget_bytes(self.cfg.er.memory_mb, self.cfg, shape) // image_bytes(shape)

    def classifier_config(self) -> ClassifierConfig:
        return classifier_with(self.cfg.classifier, self.cfg.er)

    def past_per_step(self, task_index: int) -> int:
        replay = self.cfg.er.replay_batch
        if task_index == 0 or replay == "balanced":
            return super().past_per_step(task_index)
        return self.classifier_config().batch_size if replay == "current" else int(replay)

    def past_batches(self, run: TaskRun, epoch: int, n: int, steps: int) -> PastBatch | None:
        buffer = run.state.get("buffer")
        if not buffer or len(buffer["labels"]) == 0:
            return None
        images = buffer["images"].to(run.ctx.device).float() / 255.0
        labels = buffer["labels"].to(run.ctx.device).long()
        num_classes = run.state["num_classes"]

        def batch(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            rows = torch.randint(len(labels), (n,), generator=gen).to(labels.device)
            return images[rows], F.one_hot(labels[rows], num_classes).float()

        return batch

    def end_task(self, run: TaskRun) -> None:
        kept = refill(run, self.cfg.er.sampling, self.capacity(run.manifest.image_shape))
        old = run.state.get("buffer")
        run.state["buffer"] = {"images": kept.take(old, "images", kept.images), "labels": kept.labels}

    def memory(self, state: dict[str, Any], image_shape: tuple[int, ...]) -> Memory:
        held = len(state.get("buffer", {}).get("labels", []))
        return Memory(f"raw buffer (uint8 images + labels; room for {self.capacity(image_shape)})",
                      carried_bytes(state), held, stores_data=True)
