"""Joint training: every task so far, trained again each task (the upper bound).

It stores the data, and its memory says so: the images and labels it re-reads are counted as
uint8 pixels and one-byte labels, as a buffer holding them would be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from binplay.memory import carried_bytes
from binplay.strategies.base import CurrentInputs, Memory, Strategy
from binplay.strategies.buffer import image_bytes

if TYPE_CHECKING:
    from binplay.engine import TaskRun


class JointStrategy(Strategy):
    """All data seen so far, trained again each task: the upper bound (stores the data)."""

    name = "joint"
    learnable = False
    bound = True

    def classifier_inputs(self, run: TaskRun) -> CurrentInputs:
        parts = [run.ctx.load_task(task) for task in run.manifest.tasks[:run.t]]
        images = torch.cat([p[1].to(run.ctx.device).float() / 255.0 for p in parts] + [run.images])
        labels = torch.cat([p[2].to(run.ctx.device) for p in parts] + [run.labels])
        total = sum(task.size for task in run.manifest.tasks[:run.t + 1])
        return CurrentInputs(images, labels, total)

    def memory(self, state: dict[str, Any], image_shape: tuple[int, ...]) -> Memory:
        # Joint re-reads the stream's shards instead of holding them in its state: the data
        # it keeps is counted as it would be held (uint8 images + one byte per label).
        seen = sum(t["last_index"] - t["first_index"] + 1 for t in state["ledger"]["tasks"])
        return Memory("all past data (uint8 images + labels)",
                      carried_bytes(state) + seen * image_bytes(image_shape), seen, stores_data=True)
