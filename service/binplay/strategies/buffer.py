"""What a buffer of raw samples keeps, shared by the methods that store data (er, er_ace, derpp).

A buffer holds uint8 images and small-integer labels, sized in bytes like BinPlay's decoder;
after each task it is refilled class-balanced or by reservoir over the stream, from the whole
task so that every Ray Train rank builds the same buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from binplay.data.shards import read_shards
from binplay.seeding import derived_seed

if TYPE_CHECKING:
    from binplay.engine import TaskRun


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
