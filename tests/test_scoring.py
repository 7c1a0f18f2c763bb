"""The one scoring routine behind the evaluator, jobs.evaluate on a run and on a state."""

from __future__ import annotations

import torch
from torch import nn

from binplay.scoring import class_mask, predict, score


class ReadsLabel(nn.Module):
    """Logits that put the input's first pixel (a class id) first: a classifier whose
    predictions the test controls."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = (x.flatten(1)[:, 0] * 255).round().long()
        return nn.functional.one_hot(ids, 4).float() * 10


def _images(ids: list[int]) -> torch.Tensor:
    out = torch.zeros(len(ids), 1, 2, 2, dtype=torch.uint8)
    out[:, 0, 0, 0] = torch.tensor(ids, dtype=torch.uint8)
    return out


def test_predict_masks_classes_not_seen_and_takes_uint8_or_floats():
    seen = class_mask([0, 1], 4)
    images = _images([0, 1, 3])
    assert predict(ReadsLabel(), images, seen).tolist()[:2] == [0, 1]
    assert predict(ReadsLabel(), images, seen).tolist()[2] in (0, 1)  # 3 is not seen yet
    assert predict(ReadsLabel(), images.float() / 255, seen).tolist()[:2] == [0, 1]


def test_scores_per_part_per_class_within_and_confusion():
    seen = class_mask([0, 1, 2, 3], 4)
    # task 0: classes 0, 1 (labels [0, 1, 1], predicted [0, 1, 0]); task 1: 2, 3; task 2 absent
    parts = [(0, (_images([0, 1, 0]), torch.tensor([0, 1, 1]))),
             (1, (_images([2, 3, 3, 3]), torch.tensor([2, 3, 3, 2]))), (2, None)]
    scores = score(ReadsLabel(), seen, parts)
    assert scores.accuracy(0) == 100 * 2 / 3 and scores.accuracy(1) == 75.0
    assert scores.accuracy(2) is None
    assert scores.within([1]) == 50.0 and scores.within([2, 3]) == 75.0
    assert scores.within([9]) is None
    assert scores.per_class() == {0: 100.0, 1: 50.0, 2: 50.0, 3: 100.0}
    assert scores.overall() == 100 * 5 / 7
    confusion = scores.confusion(4)
    assert confusion[1][0] == 1 and confusion[2][3] == 1 and sum(map(sum, confusion)) == 7
    assert scores.confusion_report(4)["most_confused"][0]["count"] == 1
