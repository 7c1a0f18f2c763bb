"""Which past indices each training step rehearses: drawn by the trainer, ahead of time.

Every step's draw comes from its own generator, derived from (seed, task, phase,
epoch, rank, step). A step's indices therefore do not depend on what was drawn
before it, so a prefetcher can ask for step s + k while step s trains, and inline
replay, actors and a resumed run all rehearse the same indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from binplay.ledger import Ledger
from binplay.seeding import derived_seed


@dataclass(frozen=True)
class ReplayPlan:
    """Past indices per step: ``count`` of them, or Binomial(``batch``, ``share``) when a
    share is given (the decoder phase's uniform draw over 1..N_t)."""

    ledger: Ledger
    seed_parts: tuple[object, ...]  # (seed, task, phase, epoch, rank)
    count: int = 0
    batch: int = 0
    share: float | None = None

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(derived_seed(*self.seed_parts, "replay", step))

    def size(self, step: int, gen: torch.Generator | None = None) -> int:
        if self.share is None:
            return self.count
        gen = gen or self.generator(step)
        return int(torch.binomial(torch.tensor(float(self.batch)), torch.tensor(self.share),
                                  generator=gen))

    def indices(self, step: int) -> torch.Tensor:
        """Stream indices of step ``step``, uniform over every past sample (1..N of the ledger)."""
        gen = self.generator(step)
        n = self.size(step, gen)
        if n == 0 or self.ledger.total == 0:
            return torch.empty(0, dtype=torch.long)
        return self.ledger.sample_indices(n, gen)
