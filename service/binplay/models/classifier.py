"""The base network: LeNet-style classifier of the paper's appendix.

Three 4x4 convs with 32/64/128 filters and batch norm (stride 2: 28 -> 14 -> 7 -> 3,
so 128*3*3 = 1152 features as the paper states; 2048 for 32x32), dropout, FC 84,
then a single head over every class of the stream (class-incremental). Other sizes
(user images at ``stream.image_shape``) get the same layers with the FC input computed
from the size: floor(H/8) x floor(W/8) maps of 128; at least 8x8.
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
        # Each conv floors the side by 2 (k4, s2, p1): three of them give floor(side / 8).
        rows, cols = shape[1] // 8, shape[2] // 8
        if rows < 1 or cols < 1:
            raise ValueError(f"classifier takes images of at least 8x8, got {shape[1]}x{shape[2]}")
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(128 * rows * cols, 84),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout),
                                  nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_classifier(arch: str, shape: tuple[int, int, int], num_classes: int, dropout: float = 0.25,
                     norm: str = "batch", width: int = 20) -> nn.Module:
    """The classifier ``classifier.arch`` names: LeNet (the paper's) or the reduced ResNet-18."""
    if arch == "resnet18":
        from binplay.models.resnet import ReducedResNet18

        return ReducedResNet18(shape, num_classes, width, norm)
    return LeNet(shape, num_classes, dropout, norm)
