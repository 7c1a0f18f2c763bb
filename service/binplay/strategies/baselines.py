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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from binplay.config import ClassifierConfig
from binplay.data.shards import read_shards
from binplay.memory import budget_bytes, carried_bytes
from binplay.models import vae
from binplay.seeding import derived_seed
from binplay.strategies.base import CurrentInputs, Memory, PastBatch, Strategy, soft_target_batches
from binplay.train.vae import vae_epoch

if TYPE_CHECKING:
    from binplay.engine import TaskRun


class FinetuneStrategy(Strategy):
    """Fine-tuning (the base class's behaviour): the lower bound."""

    bound = True


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


def image_bytes(image_shape: tuple[int, ...]) -> int:
    """Bytes one buffered sample costs: its uint8 pixels and a one-byte label
    (metrics.equal_memory_buffer counts the same)."""
    return int(torch.tensor(image_shape).prod()) + 1


def label_dtype(num_classes: int) -> torch.dtype:
    """The smallest integer type of a buffer's labels (one byte up to 256 classes)."""
    return torch.uint8 if num_classes <= 256 else torch.int16


def reservoir_buffer(images: torch.Tensor, labels: torch.Tensor, seen: int,
                     new_images: torch.Tensor, new_labels: torch.Tensor, capacity: int,
                     gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Reservoir sampling (Vitter's algorithm R) over the stream: after ``seen`` earlier
    samples, each new one takes a slot with probability capacity / (its position)."""
    images, labels = images.clone(), labels.clone()
    position = seen
    for x, y in zip(new_images, new_labels, strict=True):
        if len(labels) < capacity:
            images = torch.cat([images, x[None]])
            labels = torch.cat([labels, y[None].to(labels.dtype)])
        else:
            slot = int(torch.randint(position + 1, (1,), generator=gen))
            if slot < capacity:
                images[slot], labels[slot] = x, y
        position += 1
    return images, labels


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


@dataclass
class Refill:
    """Which samples a buffer keeps once a task is learnt: ``rows`` are old slots as -1, -2,
    ... and rows of the task's ``images`` as 0, 1, ...; ``labels`` theirs, at the buffer's
    label dtype."""

    images: torch.Tensor
    rows: torch.Tensor
    labels: torch.Tensor

    def take(self, old: dict[str, torch.Tensor] | None, key: str, new: torch.Tensor) -> torch.Tensor:
        """The kept samples' ``key`` values: old slots from the ``old`` buffer, task rows from
        ``new``."""
        fresh = self.rows >= 0
        out = torch.empty(len(self.rows), *new.shape[1:], dtype=new.dtype)
        if old is not None:
            out[~fresh] = old[key][-self.rows[~fresh] - 1].to(new.dtype)
        out[fresh] = new[self.rows[fresh]]
        return out


def refill(run: TaskRun, sampling: str, capacity: int) -> Refill:
    """The buffer's samples after task ``run.t``, class-balanced or by reservoir over the
    stream, from the whole task (not this worker's rows), so every rank builds the same."""
    _, images, labels = read_shards(run.shards.train)
    labels = labels.to(label_dtype(run.state["num_classes"]))
    old = run.state.get("buffer")
    old_labels = old["labels"] if old else labels[:0]
    old_rows, new_rows = -torch.arange(1, len(old_labels) + 1), torch.arange(len(labels))
    gen = torch.Generator().manual_seed(derived_seed(run.cfg.seed, run.t, "buffer"))
    if sampling == "reservoir":
        seen = run.shards.first_index - 1  # samples of the stream before this task
        rows, kept = reservoir_buffer(old_rows, old_labels, seen, new_rows, labels, capacity, gen)
    else:
        rows, kept = balanced_buffer(old_rows, old_labels, new_rows, labels, capacity, gen)
    return Refill(images, rows, kept.to(labels.dtype))


def classifier_with(classifier: ClassifierConfig, section: Any) -> ClassifierConfig:
    """``classifier`` with a baseline section's own ``epochs``, ``lr`` and ``batch_size``
    where the section sets them."""
    own = {k: getattr(section, k) for k in ("epochs", "lr", "batch_size")
           if getattr(section, k) is not None}
    return classifier.model_copy(update=own)


class ReplayBufferStrategy(Strategy):
    """Experience replay: real past samples from a byte-budgeted buffer. Standard form
    (Mammoth's and Avalanche's ER): each step rehearses as many buffered samples as it has
    current ones; the buffer is class-balanced or a reservoir; ER has its own classifier
    settings (``er.epochs``, ``er.lr``, ``er.batch_size``)."""

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


class GenerativeReplayStrategy(Strategy):
    """DGR: a VAE learns the current task and, by self-rehearsal, its own past samples."""

    name = "dgr"
    memory_field = "dgr.memory_mb"
    snapshot = ("generator",)
    checkpoint_after = ("generator",)

    def own_models(self, shape: tuple[int, int, int]) -> dict[str, nn.Module]:
        torch.manual_seed(derived_seed(self.cfg.seed, "generator"))
        budget = budget_bytes(self.cfg.dgr.memory_mb, self.cfg, shape)
        return {"generator": vae.build_vae(shape, budget, self.cfg.dgr.latent_dim)}

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
        m = vae_epoch(run.wrapped["generator"], opt, run.images, run.frozen.get("generator"),
                          past_share, gen, steps, run.local(batch))
        return m, steps * batch

    def classifier_inputs(self, run: TaskRun) -> CurrentInputs:
        return CurrentInputs(run.images, run.labels, run.shards.size)

    def past_batches(self, run: TaskRun, epoch: int, n: int, steps: int) -> PastBatch | None:
        # The generator from before the task (the previous scholar), never the one learning
        # the current task: its samples would be new classes labelled as old ones.
        generator = run.frozen["generator"]
        return soft_target_batches(lambda gen: vae.sample(generator, n, gen, run.ctx.device),
                                   run.frozen["classifier"], run.seen(include_current=False),
                                   hard=not self.cfg.classifier.soft_targets)

    def memory(self, state: dict[str, Any], image_shape: tuple[int, ...]) -> Memory:
        return Memory("VAE, encoder and decoder (fp32)", carried_bytes(state))
