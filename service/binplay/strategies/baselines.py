"""Baselines in the same harness as BinPlay: joint training, experience replay, DGR.

Fine-tuning is the base ``Strategy``. Each baseline shares the stream, the classifier,
its phase, evaluation, reports and the Ray Train path; only what is kept about past
data differs, and the report says how many bytes that is:
- ``joint`` keeps every past sample (the upper bound; it stores data);
- ``er`` keeps a class-balanced buffer of raw uint8 images and their labels, sized in
  bytes like BinPlay's decoder (``er.memory_mb: auto``);
- ``dgr`` keeps a VAE whose decoder gets the same bytes (``dgr.memory_mb: auto``); past
  samples are drawn from it and labelled by the classifier frozen before the task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from binplay.data.stream import read_shards
from binplay.models.build import budget_bytes
from binplay.state import derived_seed
from binplay.strategies import vae
from binplay.strategies.base import CurrentInputs, Memory, PastBatch, Strategy, soft_target_batches

if TYPE_CHECKING:
    from binplay.engine import TaskRun


class JointStrategy(Strategy):
    """All data seen so far, trained again each task: the upper bound (stores the data)."""

    name = "joint"

    def classifier_inputs(self, run: TaskRun) -> CurrentInputs:
        parts = [run.ctx.load_task(task) for task in run.manifest.tasks[:run.t]]
        images = torch.cat([p[1].to(run.ctx.device).float() / 255.0 for p in parts] + [run.images])
        labels = torch.cat([p[2].to(run.ctx.device) for p in parts] + [run.labels])
        total = sum(task.size for task in run.manifest.tasks[:run.t + 1])
        return CurrentInputs(images, labels, total)

    def memory(self, models: dict[str, nn.Module], state: dict[str, Any],
               image_shape: tuple[int, ...]) -> Memory:
        seen = sum(t["last_index"] - t["first_index"] + 1 for t in state["ledger"]["tasks"])
        return Memory("all past data (uint8 images + labels)", seen * image_bytes(image_shape),
                      seen, stores_data=True)


def image_bytes(image_shape: tuple[int, ...]) -> int:
    """Bytes one buffered sample costs: its uint8 pixels and a one-byte label
    (metrics.equal_memory_buffer counts the same)."""
    return int(torch.tensor(image_shape).prod()) + 1


def balanced_buffer(images: torch.Tensor, labels: torch.Tensor, new_images: torch.Tensor,
                    new_labels: torch.Tensor, capacity: int,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced reservoir: every class seen keeps capacity // classes samples (the
    first classes take the remainder). Old classes keep a prefix of what they held, new
    classes a random subset of their samples."""
    classes = sorted(set(labels.tolist()) | set(new_labels.tolist()))
    share, extra = divmod(capacity, len(classes))
    keep_x, keep_y = [], []
    for k, c in enumerate(classes):
        quota = share + (1 if k < extra else 0)
        if (labels == c).any():
            pool_x = images[labels == c]
        else:
            pool_x = new_images[new_labels == c]
            pool_x = pool_x[torch.randperm(len(pool_x), generator=gen)]
        keep_x.append(pool_x[:quota])
        keep_y.append(torch.full((len(keep_x[-1]),), c, dtype=torch.int64))
    return torch.cat(keep_x), torch.cat(keep_y)


class ReplayBufferStrategy(Strategy):
    """Experience replay: real past samples from a byte-budgeted, class-balanced buffer."""

    name = "er"

    def capacity(self, image_shape: tuple[int, ...]) -> int:
        shape = tuple(int(d) for d in image_shape)
        return budget_bytes(self.cfg.er.memory_mb, self.cfg, shape) // image_bytes(shape)

    def past_batches(self, run: TaskRun, epoch: int, n: int, steps: int) -> PastBatch | None:
        buffer = run.state.get("buffer")
        if not buffer or len(buffer["labels"]) == 0:
            return None
        images = buffer["images"].to(run.ctx.device).float() / 255.0
        labels = buffer["labels"].to(run.ctx.device)
        num_classes = run.state["num_classes"]

        def batch(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            rows = torch.randint(len(labels), (n,), generator=gen).to(labels.device)
            return images[rows], F.one_hot(labels[rows], num_classes).float()

        return batch

    def end_task(self, run: TaskRun) -> None:
        # The whole task (not this worker's rows), so every rank builds the same buffer.
        _, images, labels = read_shards(run.shards.train)
        old = run.state.get("buffer") or {"images": images[:0], "labels": labels[:0]}
        gen = torch.Generator().manual_seed(derived_seed(self.cfg.seed, run.t, "buffer"))
        kept_x, kept_y = balanced_buffer(old["images"], old["labels"], images, labels,
                                         self.capacity(images.shape[1:]), gen)
        run.state["buffer"] = {"images": kept_x, "labels": kept_y}

    def memory(self, models: dict[str, nn.Module], state: dict[str, Any],
               image_shape: tuple[int, ...]) -> Memory:
        held = len(state.get("buffer", {}).get("labels", []))
        return Memory(f"raw buffer (uint8 images + labels; room for {self.capacity(image_shape)})",
                      held * image_bytes(image_shape), held, stores_data=True)


class GenerativeReplayStrategy(Strategy):
    """DGR: a VAE learns the current task and, by self-rehearsal, its own past samples."""

    name = "dgr"
    snapshot = ("generator",)
    checkpoint_after = ("generator",)

    def phases(self) -> list[tuple[str, int]]:
        return [("generator", e) for e in range(self.cfg.dgr.epochs)]

    def optimizer(self, run: TaskRun, phase: str) -> torch.optim.Optimizer:
        return torch.optim.Adam(run.models["generator"].parameters(), lr=self.cfg.dgr.lr)

    def epoch(self, run: TaskRun, phase: str, epoch: int, opt: torch.optim.Optimizer,
              gen: torch.Generator) -> tuple[dict[str, float], int]:
        batch = self.cfg.dgr.batch_size
        steps = run.steps(run.shards.size, batch)
        # Each past task weighs as much as the current one, as in the classifier phase.
        past_share = run.t / (run.t + 1)
        m = vae.vae_epoch(run.wrapped["generator"], opt, run.images, run.frozen.get("generator"),
                          past_share, gen, steps, run.local(batch))
        return m, steps * batch

    def classifier_inputs(self, run: TaskRun) -> CurrentInputs:
        return CurrentInputs(run.images, run.labels, run.shards.size)

    def past_batches(self, run: TaskRun, epoch: int, n: int, steps: int) -> PastBatch | None:
        generator = run.models["generator"]
        return soft_target_batches(lambda gen: vae.sample(generator, n, gen, run.ctx.device),
                                   run.frozen["classifier"], run.seen(include_current=False),
                                   hard=not self.cfg.classifier.soft_targets)

    def memory(self, models: dict[str, nn.Module], state: dict[str, Any],
               image_shape: tuple[int, ...]) -> Memory:
        return Memory("VAE decoder (fp32)", vae.decoder_bytes(models["generator"]))
