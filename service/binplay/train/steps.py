"""The step every training loop ends with: one optimiser update, and the epoch's mean loss
and loss terms (what each epoch returns and its progress line prints)."""

from __future__ import annotations

import torch


class EpochMeans:
    """Running sums of ``loss`` and the named terms over an epoch's steps."""

    def __init__(self, *terms: str):
        self.totals = dict.fromkeys(("loss", *terms), 0.0)
        self.steps = 0

    def step(self, opt: torch.optim.Optimizer, loss: torch.Tensor,
             **terms: torch.Tensor | float) -> None:
        """Back-propagate ``loss``, update, and add it and each term to the sums."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        self.totals["loss"] += float(loss.detach())
        for name, value in terms.items():
            self.totals[name] += float(value.detach()) if isinstance(value, torch.Tensor) else value
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.steps) for k, v in self.totals.items()}
