"""One task of the binary latent autoencoder (docs/ALGORITHM.md, "Autoencoder"), as epoch functions.

Encoder phase (warm-up, then greedy assignment): encoder + decoder learn to
reconstruct the current images; with assignment on, ``||z - c||^2`` pulls each
embedding to its greedily chosen code. Past tasks are rehearsed meanwhile with
pairs (c(i), d(c(i); v')) so that feeding the decoder continuous embeddings does
not wash out what it knows. Decoder phase: the mapping is frozen and the decoder
learns code -> image on indices drawn uniformly from 1..N_t (past ones target the
frozen copy v', current ones their assigned image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from binplay.assignment import GroupedCodeBook, sign_agreement
from binplay.config import AutoencoderConfig
from binplay.replay import ReplayFeed
from binplay.train.steps import EpochMeans


@dataclass
class CurrentTask:
    """This worker's part of the task being learnt; lives only while the task runs."""

    images: torch.Tensor  # float (n, C, H, W) in [0, 1]
    codes: torch.Tensor  # (n, latent_dim): codes of this worker's stream indices
    first_index: int  # K_t
    total: int  # N_t over all workers
    groups: torch.Tensor | None = None  # class of each row when codes are taken within a class

    def book(self) -> GroupedCodeBook:
        groups = self.groups if self.groups is not None else torch.zeros(
            len(self.codes), dtype=torch.long, device=self.codes.device)
        return GroupedCodeBook(self.codes, groups)

    def groups_of(self, rows: torch.Tensor) -> torch.Tensor:
        if self.groups is None:
            return torch.zeros(len(rows), dtype=torch.long, device=self.codes.device)
        return self.groups[rows]


def past_fraction(task: CurrentTask) -> float:
    """Share of past indices among 1..N_t: uniform index sampling, as the paper draws."""
    return (task.first_index - 1) / task.total


def decoder_past_share(task: CurrentTask, cfg: AutoencoderConfig) -> float:
    """Expected share of past indices in a decoder batch.

    The paper draws indices uniformly over 1..N_t, so the newest task gets 1/t of the
    batches by the t-th equal-sized task and is regenerated ever more blurrily;
    ``decoder_current_share`` fixes its share instead (docs/RESULTS.md measures both).
    """
    pf = past_fraction(task)
    if cfg.decoder_current_share is None or pf == 0:
        return pf
    return 1.0 - cfg.decoder_current_share


def encoder_past_count(task: CurrentTask, batch: int) -> int:
    """Past pairs per encoder-phase step: as many as uniform sampling over 1..N_t gives."""
    pf = past_fraction(task)
    return min(batch, round(batch * pf / max(1e-9, 1 - pf)))


def encoder_epoch(encoder: nn.Module, decoder: nn.Module, *, opt: torch.optim.Optimizer,
                  task: CurrentTask, cfg: AutoencoderConfig, past: ReplayFeed | None,
                  gen: torch.Generator, steps: int, batch: int, assign: bool) -> dict[str, float]:
    """One epoch of warm-up (``assign=False``) or greedy assignment (Alg. 1).

    ``batch`` is this worker's share of the configured (global) batch size; ``past`` gives
    each step's rehearsal pairs (c(i), d(c(i); v')) (None: nothing to rehearse).
    """
    book = task.book()
    order = torch.randperm(len(task.images), generator=gen)
    sums = EpochMeans("recon", "code")
    b = min(batch, len(order))  # a batch never holds one sample twice
    for step in range(steps):
        rows = order[(torch.arange(b) + step * b) % len(order)]
        x = task.images[rows]
        z = encoder(x)
        pairs = past.batch(step) if past is not None else None
        dec_in = z if pairs is None else torch.cat([z, pairs.codes])
        out = decoder(dec_in)
        recon = F.mse_loss(out[: len(x)], x)
        loss = recon
        if pairs is not None:
            loss = loss + F.mse_loss(out[len(x):], pairs.images) * len(pairs.images) / len(x)
        code_loss = torch.zeros(())
        if assign:
            groups = task.groups_of(rows)
            if not book.fits(groups):
                book.reset()  # this worker's shard wrapped around: a new pass over its codes
            chosen = book.assign(z, groups)
            code_loss = ((z - task.codes[chosen]) ** 2).sum(dim=1).mean()
            loss = loss + cfg.code_loss_weight * code_loss
        sums.step(opt, loss, recon=recon, code=code_loss)
    return sums.means()


@torch.no_grad()
def freeze_assignment(encoder: nn.Module, task: CurrentTask, gen: torch.Generator,
                      batch: int = 512) -> tuple[torch.Tensor, float]:
    """Final greedy pass with the converged encoder: sample row -> code row, and sign agreement."""
    was_training = encoder.training
    encoder.eval()
    book = task.book()
    order = torch.randperm(len(task.images), generator=gen)
    mapping = torch.empty(len(order), dtype=torch.long)
    agree, seen = 0.0, 0
    for s in range(0, len(order), batch):
        rows = order[s:s + batch]
        z = encoder(task.images[rows])
        chosen = book.assign(z, task.groups_of(rows))
        mapping[rows] = chosen.cpu()
        agree += sign_agreement(z, task.codes[chosen]) * len(rows)
        seen += len(rows)
    encoder.train(was_training)
    return mapping, agree / max(1, seen)


def decoder_epoch(decoder: nn.Module, *, opt: torch.optim.Optimizer, task: CurrentTask,
                  mapping: torch.Tensor, past: ReplayFeed | None, gen: torch.Generator,
                  steps: int, batch: int, features: nn.Module | None = None,
                  feature_weight: float = 0.0, bf16: bool = False) -> dict[str, float]:
    """Self-rehearsal: past indices -> d(c(i); v'), current codes -> their images.

    ``past`` draws each step's past share of the batch (Binomial(batch, past share), see
    ``decoder_past_share``); the rest of the batch is current samples. With ``features``
    (a frozen network) each sample's loss adds ``feature_weight`` x the mean squared
    distance of its features from its target's. ``bf16``: the decoder's (and the features')
    forward runs under bf16 autocast; the loss is taken in fp32."""
    device = task.images.device.type
    sums = EpochMeans("current", "past")
    for step in range(steps):
        pairs = past.batch(step) if past is not None else None
        n_past = len(pairs.indices) if pairs is not None else 0
        rows = torch.randint(len(task.images), (batch - n_past,), generator=gen)
        codes = task.codes[mapping[rows]]
        targets = task.images[rows]
        if pairs is not None:
            codes, targets = torch.cat([codes, pairs.codes]), torch.cat([targets, pairs.images])
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = decoder(codes)
            if features is not None:
                with torch.no_grad():
                    aim = features(targets)
                seen = features(out)
        per_sample = ((out.float() - targets) ** 2).flatten(1).mean(dim=1)
        if features is not None:
            per_sample = per_sample + feature_weight * (
                (seen.float() - aim.float()) ** 2).flatten(1).mean(dim=1)
        loss = per_sample.mean()
        n_cur = batch - n_past
        sums.step(opt, loss, current=per_sample[:n_cur].mean() if n_cur else 0.0,
                  past=per_sample[n_cur:].mean() if n_past else 0.0)
    return sums.means()
