"""Continual-learning metrics as pure functions of an accuracy matrix.

``A[t][j]`` is the accuracy (percent) on task j's test set after training task t,
defined for j <= t (rows may be ragged or padded with None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Matrix = Sequence[Sequence[float | None]]


def _final_row(acc: Matrix) -> list[float]:
    if not acc:
        raise ValueError("empty accuracy matrix")
    return [v for v in acc[-1] if v is not None]


def average_accuracy(acc: Matrix) -> float:
    """Mean accuracy over all tasks after the last one (the paper's headline number)."""
    row = _final_row(acc)
    return sum(row) / len(row)


def mean_known(row: Sequence[float | None]) -> float | None:
    """Mean of a row's known entries (None: a task without that split); None if none known."""
    known = [a for a in row if a is not None]
    return sum(known) / len(known) if known else None


def forgetting(acc: Matrix) -> float:
    """Mean over past tasks of (best earlier accuracy - final accuracy); 0 with one task."""
    T = len(acc)
    if T < 2:
        return 0.0
    drops = []
    for j in range(T - 1):
        best = max(acc[t][j] for t in range(j, T - 1))
        drops.append(best - acc[T - 1][j])
    return sum(drops) / len(drops)


def backward_transfer(acc: Matrix) -> float:
    """BWT (Lopez-Paz & Ranzato): mean of A[T-1][j] - A[j][j] over j < T-1; negative = forgetting."""
    T = len(acc)
    if T < 2:
        return 0.0
    return sum(acc[T - 1][j] - acc[j][j] for j in range(T - 1)) / (T - 1)


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, peak]."""
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def equal_memory_buffer(decoder_mb: float, image_shape: Sequence[int]) -> int:
    """How many raw uint8 images, each with a one-byte label, a replay buffer of the
    decoder's size could hold (what the `er` strategy holds at equal memory)."""
    per_image = 1
    for d in image_shape:
        per_image *= int(d)
    return int(decoder_mb * 2**20 // (per_image + 1))


def confusion_matrix(labels: Sequence[int], predicted: Sequence[int], num_classes: int) -> list[list[int]]:
    """``C[i][j]``: how many images of class i were predicted as class j."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for true, pred in zip(labels, predicted, strict=True):
        matrix[true][pred] += 1
    return matrix


def most_confused(matrix: Sequence[Sequence[int]], top: int = 5) -> list[dict[str, float | int]]:
    """The ``top`` largest off-diagonal cells: which class is taken for which, how often,
    and as a percent of that class's images (where a classifier loses its accuracy)."""
    cells = [(count, true, pred) for true, row in enumerate(matrix) for pred, count in enumerate(row)
             if true != pred and count > 0]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [{"true": true, "predicted": pred, "count": count,
             "percent_of_class": round(100.0 * count / sum(matrix[true]), 2)}
            for count, true, pred in cells[:top]]
