"""What a training loop needs from where it runs, as plain callables.

In-process runs and unit tests use ``TrainContext()`` with its defaults; the Ray
Train worker fills it with ``prepare_model``, ``ray.train.report`` and its dataset
shard. The loop itself never imports Ray.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from binplay.data.shards import read_shards
from binplay.data.stream import TaskShards
from binplay.replay import ReplaySource

TaskData = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # stream index, uint8 images, labels


def _identity(module: nn.Module) -> nn.Module:
    return module


def _read_all(task: TaskShards) -> TaskData:
    return read_shards(task.train)


def _print(line: str) -> None:
    print(line, flush=True, file=sys.stdout)


@dataclass
class TrainContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    wrap_model: Callable[[nn.Module], nn.Module] = _identity
    load_task: Callable[[TaskShards], TaskData] = _read_all
    # save(state, metrics): called by every rank at the same points (a barrier under Ray);
    # ``state`` is only given on rank 0 and means "checkpoint this".
    save: Callable[[dict[str, Any] | None, dict[str, Any]], None] = lambda state, metrics: None
    resume_state: dict[str, Any] | None = None
    log: Callable[[str], None] = _print
    # Where rehearsal batches are decoded (binplay.replay.make_source); None: inline here.
    replay: ReplaySource | None = None
    # Where the run's tracker writes instead of the run's place (binplay.tracking; a learn's
    # state, whose staging run is deleted once published); resolved by the driver.
    track_root: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def info(self, line: str) -> None:
        if self.is_main:
            self.log(line)

    def mean(self, value: float) -> float:
        """Average a scalar over workers (identity in a single process)."""
        if self.world_size == 1 or not dist.is_initialized():
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world_size

    def gather(self, obj: Any) -> list[Any]:
        if self.world_size == 1 or not dist.is_initialized():
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out
