"""Types shared by every data module: the error for unusable data and a labelled image set.

They live here so that ``sources`` (built-in datasets) and ``user`` (user files) can
both use them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class DataError(ValueError):
    """Data that cannot be used: missing, corrupt, the wrong shape or an unknown label."""


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    origin: str  # file or directory it came from, for error messages and reports
    skipped: tuple[str, ...] = ()  # unreadable files or rows left out (stream.on_bad_image: skip)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"{self.origin}: images must be uint8 (N, C, H, W)")
        if len(self.images) != len(self.labels):
            raise DataError(
                f"{self.origin}: {len(self.images)} images but {len(self.labels)} labels"
            )
