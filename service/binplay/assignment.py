"""Greedy binary-code assignment (paper Alg. 1), vectorised.

Samples are visited in a given order; each takes the nearest code not yet taken in
this epoch. All codes of a task share one norm (+-1 entries, same task prefix), so
the nearest code in L2 is the one with the largest dot product: one matrix product
per minibatch replaces the per-sample distance loop.

Exact equivalence with the sequential loop: in each round every pending sample
picks its best free code; the longest prefix (in visiting order) with no repeated
pick is accepted, because nothing earlier can take those codes any more. The first
sample of a clash is retried with the accepted codes removed. Rounds = clashes + 1.
"""

from __future__ import annotations

import torch


class CodeBook:
    """The codes of one task (or one worker's slice of it) and which are taken this epoch."""

    def __init__(self, codes: torch.Tensor):
        if codes.dim() != 2:
            raise ValueError(f"codes must be (n_codes, dim), got {tuple(codes.shape)}")
        self.codes = codes
        self.taken = torch.zeros(len(codes), dtype=torch.bool, device=codes.device)

    def __len__(self) -> int:
        return len(self.codes)

    def reset(self) -> None:
        self.taken.zero_()

    @property
    def free(self) -> int:
        return int((~self.taken).sum())

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Give each row of ``z`` (in row order) the nearest free code; returns code rows."""
        n = len(z)
        if n > self.free:
            raise ValueError(f"{n} samples but only {self.free} free codes left this epoch")
        scores = z.detach().to(self.codes.dtype) @ self.codes.T  # (n, n_codes)
        chosen = torch.empty(n, dtype=torch.long, device=z.device)
        pending = torch.arange(n, device=z.device)
        while len(pending):
            sub = scores[pending].masked_fill_(self.taken, float("-inf"))
            picks = sub.argmax(dim=1)
            accept = _clash_free_prefix(picks)
            chosen[pending[:accept]] = picks[:accept]
            self.taken[picks[:accept]] = True
            pending = pending[accept:]
        return chosen


def _clash_free_prefix(picks: torch.Tensor) -> int:
    """Length of the longest prefix of ``picks`` without a repeated value."""
    n = len(picks)
    _, inverse = torch.unique(picks, return_inverse=True)
    first = torch.full((n,), n, dtype=torch.long, device=picks.device)
    first.scatter_reduce_(0, inverse, torch.arange(n, device=picks.device), reduce="amin")
    repeats = (first[inverse] != torch.arange(n, device=picks.device)).nonzero()
    return int(repeats[0]) if len(repeats) else n


def greedy_reference(z: torch.Tensor, codes: torch.Tensor) -> list[int]:
    """Alg. 1 written literally (one sample at a time, true L2 distance); for tests."""
    free = list(range(len(codes)))
    out = []
    for row in z:
        dist = ((codes[free] - row) ** 2).sum(dim=1)
        best = free[int(dist.argmin())]
        out.append(best)
        free.remove(best)
    return out


def sign_agreement(z: torch.Tensor, codes: torch.Tensor) -> float:
    """Fraction of latent bits whose sign matches the assigned code (0.5 = random)."""
    return float((torch.sign(z) == codes).float().mean())
