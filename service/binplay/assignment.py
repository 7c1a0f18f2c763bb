"""Greedy binary-code assignment (paper Alg. 1), vectorised.

Samples are visited in a given order; each takes the nearest code not yet taken in
this epoch. All codes of a task share one norm (+-1 entries, same task prefix), so
the nearest code in L2 is the one with the largest dot product: one matrix product
per minibatch replaces the per-sample distance loop.

Exact equivalence with the sequential loop: each row keeps its ``candidates`` best
free codes (best first); walking the rows in order, a row takes its first candidate
not taken yet, which is its nearest free code because every better code is ahead of
it in the list and taken. Only when all of a row's candidates are gone is it scored
again against every free code. The matrix product runs against a cached block of the
free codes, rebuilt once a quarter of it has been taken, so late batches of an epoch
score fewer codes (the assignment is O(n^2 d) per epoch, and this halves it).
"""

from __future__ import annotations

import torch


class CodeBook:
    """The codes of one task (or one worker's slice of it) and which are taken this epoch."""

    def __init__(self, codes: torch.Tensor, candidates: int = 16):
        """``candidates``: best free codes kept per row (a speed knob; the result is the same)."""
        if codes.dim() != 2:
            raise ValueError(f"codes must be (n_codes, dim), got {tuple(codes.shape)}")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        self.codes = codes
        self.candidates = candidates
        self.taken = torch.zeros(len(codes), dtype=torch.bool, device=codes.device)
        self._view: tuple[torch.Tensor, torch.Tensor] | None = None  # (code rows, their codes)

    def __len__(self) -> int:
        return len(self.codes)

    def reset(self) -> None:
        self.taken.zero_()
        self._view = None

    @property
    def free(self) -> int:
        return int((~self.taken).sum())

    def _free_view(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Free codes as of the last rebuild; some may have been taken since (masked later)."""
        if self._view is None or len(self._view[0]) - self.free > len(self._view[0]) // 4:
            rows = (~self.taken).nonzero().squeeze(1)
            self._view = rows, self.codes[rows]
        return self._view

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Give each row of ``z`` (in row order) the nearest free code; returns code rows."""
        n = len(z)
        if n > self.free:
            raise ValueError(f"{n} samples but only {self.free} free codes left this epoch")
        rows, codes = self._free_view()
        scores = z.detach().to(codes.dtype) @ codes.T  # (n, len(rows))
        stale = self.taken[rows]  # taken by earlier batches since the view was built
        scores.masked_fill_(stale, float("-inf"))
        k = min(self.candidates, len(rows) - int(stale.sum()))  # never a stale code among them
        top = rows[scores.topk(k, dim=1).indices].tolist()
        taken_now: set[int] = set()
        chosen = []
        for r, candidates in enumerate(top):
            pick = next((c for c in candidates if c not in taken_now), None)
            if pick is None:  # all candidates taken by earlier rows: score every free code
                mask = stale | torch.isin(rows, torch.tensor(sorted(taken_now), device=rows.device))
                pick = int(rows[scores[r].masked_fill(mask, float("-inf")).argmax()])
            taken_now.add(pick)
            chosen.append(pick)
        out = torch.tensor(chosen, dtype=torch.long, device=self.codes.device)
        self.taken[out] = True
        return out


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


class GroupedCodeBook:
    """Alg. 1 within groups: a sample takes the nearest free code of its own group.

    With a stream ordered by class, a class's samples own its index sub-range, so a sample
    must take one of its class's codes: the ledger then tells the class of every index. One
    group (all zeros) is the plain Alg. 1 over the whole task.
    """

    def __init__(self, codes: torch.Tensor, groups: torch.Tensor, candidates: int = 16):
        self.rows = {int(g): (groups == g).nonzero().squeeze(1) for g in groups.unique()}
        self.books = {g: CodeBook(codes[r], candidates) for g, r in self.rows.items()}

    def reset(self) -> None:
        for book in self.books.values():
            book.reset()

    def fits(self, groups: torch.Tensor) -> bool:
        """Whether every group of this batch still has a free code for each of its samples."""
        wanted = torch.bincount(groups.cpu())
        return all(int(n) <= self.books[g].free for g, n in enumerate(wanted.tolist()) if n)

    def assign(self, z: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Code rows (of the whole task) for the rows of ``z``, each within its group."""
        out = torch.empty(len(z), dtype=torch.long, device=z.device)
        for g in groups.unique().tolist():
            mask = groups == g
            out[mask] = self.rows[g].to(z.device)[self.books[g].assign(z[mask])]
        return out
