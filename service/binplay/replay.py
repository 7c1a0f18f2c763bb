"""Where rehearsal samples come from.

The training loop asks a ``ReplaySource`` for ``n`` past samples and does not care
whether they are decoded here (``InlineReplay``) or by Ray actors elsewhere: the
codes are a pure function of the indices, so any process with the decoder weights
and the ledger produces the same images.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from binplay.codes import stream_codes
from binplay.config import CodesConfig
from binplay.ledger import Ledger


class ReplaySource(Protocol):
    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (n,), images (n, C, H, W) in [0, 1]) of uniformly drawn past samples."""
        ...


def codes_for(indices: torch.Tensor, ledger: Ledger, codes_cfg: CodesConfig,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """Full latent codes (task prefix, class bits, index code) of past indices: all of it
    recomputed from the indices and the ledger's ranges."""
    classes = ledger.class_of(indices) if codes_cfg.class_bits else None
    return stream_codes(indices, ledger.task_of(indices), codes_cfg, classes).to(device)


@torch.no_grad()
def decode_indices(decoder: nn.Module, indices: torch.Tensor, ledger: Ledger,
                   codes_cfg: CodesConfig, device: torch.device | str = "cpu",
                   batch: int = 1024) -> torch.Tensor:
    """d(c(i)) for the given indices, decoded in eval mode (batch norm uses running stats)."""
    was_training = decoder.training
    decoder.eval()
    try:
        parts = [decoder(codes_for(indices[s:s + batch], ledger, codes_cfg, device))
                 for s in range(0, len(indices), batch)]
    finally:
        decoder.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0)


class InlineReplay:
    """Decodes past samples in the calling process with a given decoder."""

    def __init__(self, decoder: nn.Module, ledger: Ledger, codes_cfg: CodesConfig,
                 device: torch.device | str = "cpu"):
        self.decoder, self.ledger, self.codes_cfg, self.device = decoder, ledger, codes_cfg, device

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        indices = self.ledger.sample_indices(n, generator)
        return indices, decode_indices(self.decoder, indices, self.ledger, self.codes_cfg,
                                       self.device)
