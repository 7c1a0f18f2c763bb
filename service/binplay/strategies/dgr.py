"""Deep generative replay (DGR, Shin et al. 2017): a VAE learns the current task and, by
self-rehearsal, its own past samples.

The whole VAE crosses tasks and is counted (``dgr.memory_mb``; ``auto`` = BinPlay's bytes under
the config). Past samples are drawn from the generator frozen before the task and labelled by
the classifier frozen with it (soft targets: DGR+distill; hard labels with
``classifier.soft_targets: false``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from binplay.memory import budget_bytes, carried_bytes
from binplay.models import vae
from binplay.seeding import derived_seed
from binplay.strategies.base import CurrentInputs, Memory, PastBatch, Strategy, soft_target_batches
from binplay.train.vae import vae_epoch

if TYPE_CHECKING:
    from binplay.engine import TaskRun


class GenerativeReplayStrategy(Strategy):
    """DGR; the VAE is the ``generator`` model, snapshotted before each task."""

    name = "dgr"
    memory_field = "dgr.memory_mb"
    snapshot = ("generator",)
    checkpoint_after = ("generator",)

    def own_models(self, shape: tuple[int, int, int]) -> dict[str, nn.Module]:
        torch.manual_seed(derived_seed(self.cfg.seed, "generator"))
        budget = budget_bytes(self.cfg.dgr.memory_mb, self.cfg, shape)
        return {"generator": vae.build_vae(shape, budget, self.cfg.dgr.latent_dim)}

    def phases(self) -> list[tuple[str, int]]:
        return [("generator", e) for e in range(self.cfg.dgr.epochs)]

    def optimizer(self, run: TaskRun, phase: str) -> torch.optim.Optimizer:
        return torch.optim.Adam(run.models["generator"].parameters(), lr=self.cfg.dgr.lr)

    def epoch(self, run: TaskRun, phase: str, epoch: int, opt: torch.optim.Optimizer,
              gen: torch.Generator) -> tuple[dict[str, float], int]:
        batch = self.cfg.dgr.batch_size
        steps = run.steps(run.shards.size, batch)
        # Each past task weighs as much as the current one, as in the classifier phase.
        past_share = run.t / (run.t + 1)
        m = vae_epoch(run.wrapped["generator"], opt, run.images, run.frozen.get("generator"),
                      past_share, gen, steps, run.local(batch))
        return m, steps * batch

    def classifier_inputs(self, run: TaskRun) -> CurrentInputs:
        return CurrentInputs(run.images, run.labels, run.shards.size)

    def past_batches(self, run: TaskRun, epoch: int, n: int, steps: int) -> PastBatch | None:
        # The generator from before the task (the previous scholar), never the one learning
        # the current task: its samples would be new classes labelled as old ones.
        generator = run.frozen["generator"]
        return soft_target_batches(lambda gen: vae.sample(generator, n, gen, run.ctx.device),
                                   run.frozen["classifier"], run.seen(include_current=False),
                                   hard=not self.cfg.classifier.soft_targets)

    def memory(self, state: dict[str, Any], image_shape: tuple[int, ...]) -> Memory:
        return Memory("VAE, encoder and decoder (fp32)", carried_bytes(state))
