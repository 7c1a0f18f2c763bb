"""Scoring a classifier on labelled images: the one routine behind the three accuracy reports.

The evaluator after each task (``evaluation.Evaluator``), ``jobs.evaluate`` on a run
(``inference.SavedRun.evaluate``) and ``jobs.evaluate``/``jobs.learn`` on a learn state
(``versions.use.accuracy_report``) all predict with ``predict`` over the classes learnt so
far and read their numbers off one ``Scores``: accuracy per part (a task's test shards,
or the rows of a task's classes), per class, overall, and the confusion matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from binplay.metrics import confusion_matrix, most_confused


def class_mask(classes: list[int], num_classes: int, device=None) -> torch.Tensor:
    """Boolean mask of the classes seen so far: the single head only scores those."""
    mask = torch.zeros(num_classes, dtype=torch.bool, device=device)
    mask[classes] = True
    return mask


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~mask, float("-inf"))


@torch.no_grad()
def soft_targets(frozen: nn.Module, images: torch.Tensor, old_mask: torch.Tensor,
                 hard: bool = False) -> torch.Tensor:
    """Targets for regenerated samples from the frozen pre-task classifier."""
    was_training = frozen.training
    frozen.eval()
    probs = F.softmax(masked_logits(frozen(images), old_mask), dim=1)
    frozen.train(was_training)
    if hard:
        probs = F.one_hot(probs.argmax(dim=1), probs.shape[1]).to(probs.dtype)
    return probs


def _as_input(images: torch.Tensor) -> torch.Tensor:
    # uint8 images (as stored) are scaled batch by batch: a whole test set never doubles in float
    return images.float() / 255.0 if images.dtype == torch.uint8 else images


def predict(model: nn.Module, images: torch.Tensor, seen: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """Top-1 labels over the classes seen so far, in eval mode (the model's mode is kept).
    ``images``: floats in [0, 1], or uint8 as stored."""
    was_training = model.training
    model.eval()
    device = seen.device
    with torch.no_grad():
        parts = [masked_logits(model(_as_input(images[s:s + batch].to(device))), seen).argmax(dim=1)
                 for s in range(0, len(images), batch)]
    model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long, device=device)


def percent(correct: int, total: int) -> float:
    return 100.0 * correct / max(1, total)


@dataclass
class Scores:
    """Labels and predictions of every scored part (a part may be absent: no data); the
    parts are complete when it is made (``score``), so the joined tensors are kept."""

    parts: dict[Any, tuple[torch.Tensor, torch.Tensor] | None]

    def accuracy(self, key: Any) -> float | None:
        """Accuracy (percent) of one part; None where it had no data."""
        part = self.parts.get(key)
        if part is None:
            return None
        labels, predicted = part
        return percent(int((predicted == labels).sum()), len(labels))

    @cached_property
    def labels(self) -> torch.Tensor:
        return torch.cat([p[0] for p in self.parts.values() if p is not None] or [torch.empty(0)])

    @cached_property
    def predicted(self) -> torch.Tensor:
        return torch.cat([p[1] for p in self.parts.values() if p is not None] or [torch.empty(0)])

    def within(self, classes: Sequence[int]) -> float | None:
        """Accuracy (percent) over the scored images whose label is one of ``classes``."""
        labels, rows = self.labels, torch.isin(self.labels, torch.tensor(list(classes)))
        if not bool(rows.any()):
            return None
        return percent(int((self.predicted[rows] == labels[rows]).sum()), int(rows.sum()))

    def per_class(self) -> dict[int, float]:
        labels = self.labels
        return {int(c): self.within([int(c)]) for c in sorted(set(labels.long().tolist()))}

    def overall(self) -> float | None:
        labels = self.labels
        return percent(int((self.predicted == labels).sum()), len(labels)) if len(labels) else None

    def confusion(self, num_classes: int) -> list[list[int]]:
        return confusion_matrix(self.labels.long().tolist(), self.predicted.tolist(), num_classes)

    def confusion_report(self, num_classes: int) -> dict[str, Any]:
        matrix = self.confusion(num_classes)
        return {"confusion": matrix, "most_confused": most_confused(matrix)}


def score(model: nn.Module, seen: torch.Tensor,
          parts: Iterable[tuple[Any, tuple[torch.Tensor, torch.Tensor] | None]]) -> Scores:
    """Predict every part's images over the ``seen`` classes: (key, (images, labels) or None)."""
    return Scores({key: None if part is None else (part[1].cpu(), predict(model, part[0], seen).cpu())
                   for key, part in parts})
