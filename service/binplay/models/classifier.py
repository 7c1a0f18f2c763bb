"""The base network: LeNet-style classifier of the paper's appendix.

Three 4x4 convs with 32/64/128 filters and batch norm (stride 2: 28 -> 14 -> 7 -> 3,
so 128*3*3 = 1152 features as the paper states; 2048 for 32x32), dropout, FC 84,
then a single head over every class of the stream (class-incremental).
"""

from __future__ import annotations

import torch
from torch import nn


class LeNet(nn.Module):
    def __init__(self, shape: tuple[int, int, int], num_classes: int, dropout: float = 0.25,
                 norm: str = "batch"):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in zip([shape[0], 32, 64], [32, 64, 128]):
            # GroupNorm normalises each sample by itself: no statistics learnt on
            # regenerations and then applied to real test images.
            normalise = nn.BatchNorm2d(c_out) if norm == "batch" else nn.GroupNorm(8, c_out)
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), normalise,
                       nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        side = {28: 3, 32: 4}.get(shape[1])
        if side is None or shape[1] != shape[2]:
            raise ValueError(f"classifier supports 28x28 and 32x32 images, got {shape}")
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(128 * side * side, 84),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout),
                                  nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
