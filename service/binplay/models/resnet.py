"""Reduced ResNet-18 (BEYOND-PAPER): the classifier of the continual-learning literature's
CIFAR benchmarks, for images LeNet cannot learn.

The 18-layer residual net of He et al. (2016) with its CIFAR stem (one 3x3 conv, no
max-pool) and ``width`` filters in the first stage instead of 64: GEM (Lopez-Paz & Ranzato
2017) and ER (Chaudhry et al. 2019) use width 20, about 1.1 M weights; Mammoth's DER++
runs use 64. Normalisation is GroupNorm by default, for the reason LeNet's is
(``classifier.norm``): batch statistics learnt on regenerations would be applied to real
test images.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _norm(kind: str, channels: int) -> nn.Module:
    # Groups of the channel count's gcd with 8: widths like 20 (groups of 4) stay legal.
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(math.gcd(channels, 8), channels)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), _norm(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _norm(norm, c_out))
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                      _norm(norm, c_out))
        self.out = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.skip(x))


class ReducedResNet18(nn.Module):
    def __init__(self, shape: tuple[int, int, int], num_classes: int, width: int = 20,
                 norm: str = "group"):
        super().__init__()
        if shape[1] < 8 or shape[2] < 8:
            raise ValueError(f"classifier takes images of at least 8x8, got {shape[1]}x{shape[2]}")
        layers: list[nn.Module] = [nn.Conv2d(shape[0], width, 3, padding=1, bias=False),
                                   _norm(norm, width), nn.ReLU(inplace=True)]
        c_in = width
        for stage, stride in enumerate((1, 2, 2, 2)):
            c_out = width * 2**stage
            layers += [BasicBlock(c_in, c_out, stride, norm), BasicBlock(c_out, c_out, 1, norm)]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c_in, num_classes))  # head[-1]: the output layer, as LeNet's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
