"""Random crops and flips of a classifier batch (``classifier.augment``), on the device the
batch lives on, drawn from the epoch's generator so that a run stays reproducible.

Published ER and DER++ on split-CIFAR-10 (Mammoth) train with ``RandomCrop(32, padding=4)``
and ``RandomHorizontalFlip`` on current and buffered images alike; here the same two
transforms apply to every image a classifier step sees (current, reconstructed, regenerated
or buffered), for every strategy, so the comparison stays like for like.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from binplay.config.sections import Augment

PAD = 4  # pixels of zero padding a crop may shift by, each way (Mammoth's CIFAR crop)


def augment(images: torch.Tensor, kind: Augment, gen: torch.Generator) -> torch.Tensor:
    """``images`` (N, C, H, W) shifted by up to ``PAD`` pixels each way into zero padding
    (``crop``), and half of them mirrored left-right (``crop_flip``); ``none`` returns them
    as they are and draws nothing from ``gen``."""
    if kind == "none" or len(images) == 0:
        return images
    n, _, h, w = images.shape
    dy = torch.randint(0, 2 * PAD + 1, (n,), generator=gen).to(images.device)
    dx = torch.randint(0, 2 * PAD + 1, (n,), generator=gen).to(images.device)
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    out = padded[batch, channel, rows, cols]
    if kind == "crop_flip":
        flip = (torch.rand(n, generator=gen) < 0.5).to(images.device)
        out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out
