"""The DGR generator's training (``binplay.models.vae``): the negative ELBO and one epoch of
self-rehearsing VAE training."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from binplay.models import vae as vae_model
from binplay.models.vae import VAE
from binplay.train.steps import EpochMeans


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor,
             logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Negative ELBO per sample: Bernoulli BCE summed over pixels + KL(q(z|x) || N(0, I)).

    Both terms are summed within a sample and averaged over the batch, so their balance
    does not depend on the image or batch size. Returns (loss, recon_term, kl_term).
    """
    n = len(x)
    recon_term = F.binary_cross_entropy(recon, x, reduction="sum") / n
    kl_term = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
    return recon_term + kl_term, recon_term, kl_term


def vae_epoch(vae: VAE, opt: torch.optim.Optimizer, images: torch.Tensor, frozen: VAE | None,
              past_share: float, generator: torch.Generator, steps: int,
              batch: int) -> dict[str, float]:
    """One epoch of self-rehearsing VAE training (DGR's generator update).

    Each batch holds ``round(batch * past_share)`` samples of ``frozen`` (the generator
    from before the task) when given, and current rows of ``images`` visited in a random
    permutation from ``generator``; the VAE learns both, so it keeps generating the past.
    Returns the mean loss, reconstruction and KL terms over the steps.
    """
    device = images.device
    n_past = round(batch * past_share) if frozen is not None and past_share > 0 else 0
    n_past = min(batch, n_past)
    n_cur = min(batch - n_past, len(images))  # a batch never holds one row twice
    order = torch.randperm(len(images), generator=generator)
    vae.train()
    sums = EpochMeans("recon", "kl")
    for step in range(steps):
        parts = []
        if n_cur:
            rows = order[(torch.arange(n_cur) + step * n_cur) % len(order)]
            parts.append(images[rows.to(device)])
        if n_past:
            parts.append(vae_model.sample(frozen, n_past, generator, device))
        x = torch.cat(parts)
        recon, mu, logvar = vae(x)
        loss, recon_term, kl_term = vae_loss(recon, x, mu, logvar)
        sums.step(opt, loss, recon=recon_term, kl=kl_term)
    return sums.means()
