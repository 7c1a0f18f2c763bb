"""Indices -> rehearsal batches: the pure core every replay source runs.

A batch is recomputed from its indices alone: the codes from the index and the
ledger's ranges (no code table exists anywhere), the images from a frozen decoder,
and, in the classifier phase, the targets from the frozen pre-task classifier (or
from the ledger's class ranges). ``ReplayJob`` binds those frozen weights for one
phase; ``generate`` is what the training process (inline) and a Ray actor both call,
so both produce the same tensors for the same indices.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from binplay.codes import stream_codes
from binplay.config import BinPlayConfig, CodesConfig
from binplay.ledger import Ledger
from binplay.scoring import class_mask, soft_targets

Targets = Literal["none", "soft", "hard", "ledger"]


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


@dataclass
class ReplayBatch:
    """Past samples of one training step, in the order of their indices."""

    indices: torch.Tensor  # (n,) stream indices
    codes: torch.Tensor  # (n, latent_dim)
    images: torch.Tensor  # (n, C, H, W) in [0, 1]
    targets: torch.Tensor | None = None  # (n, classes) probabilities (classifier phase)

    def to(self, device: torch.device | str) -> ReplayBatch:
        moved = [t if t is None else t.to(device)
                 for t in (self.indices, self.codes, self.images, self.targets)]
        return ReplayBatch(*moved)

    def split(self, sizes: list[int]) -> list[ReplayBatch]:
        """The batches of consecutive steps that one request of ``sum(sizes)`` carried."""
        parts = [t if t is None else t.split(sizes)
                 for t in (self.indices, self.codes, self.images, self.targets)]
        return [ReplayBatch(*[None if p is None else p[i] for p in parts])
                for i in range(len(sizes))]


def frozen_copy(module: nn.Module, weights: dict | None = None) -> nn.Module:
    """An eval-mode copy of ``module`` (with ``weights`` loaded, if given) that no optimiser
    step or gradient reaches: the engine's task-start snapshots and every bound job."""
    twin = copy.deepcopy(module).eval()
    if weights is not None:
        twin.load_state_dict(weights)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@dataclass
class ReplayJob:
    """What one phase's replay is bound to; its weights do not change while it is in use."""

    cfg: BinPlayConfig
    image_shape: tuple[int, ...]
    num_classes: int
    ledger: Ledger
    decoder: nn.Module
    classifier: nn.Module | None = None  # the frozen pre-task classifier (targets "soft"/"hard")
    targets: Targets = "none"
    old_classes: tuple[int, ...] = ()  # classes the frozen classifier may score

    @classmethod
    def bind(cls, cfg: BinPlayConfig, image_shape: tuple[int, ...], num_classes: int,
             ledger: Ledger, decoder: nn.Module, classifier: nn.Module | None = None,
             targets: Targets = "none", old_classes: tuple[int, ...] = ()) -> ReplayJob:
        """A job over frozen copies, so later training of the live models cannot reach it."""
        return cls(cfg, tuple(image_shape), num_classes, Ledger.from_dict(ledger.to_dict()),
                   frozen_copy(decoder), frozen_copy(classifier) if classifier is not None
                   else None, targets, tuple(old_classes))

    def to_payload(self) -> dict[str, Any]:
        """Plain data (config, ledger, CPU state dicts) to ship to another process once."""
        def cpu(module: nn.Module | None) -> dict | None:
            if module is None:
                return None
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

        return {"cfg": self.cfg.model_dump(mode="json"), "image_shape": list(self.image_shape),
                "num_classes": self.num_classes, "ledger": self.ledger.to_dict(),
                "decoder": cpu(self.decoder), "classifier": cpu(self.classifier),
                "targets": self.targets, "old_classes": list(self.old_classes)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any], device: torch.device | str = "cpu") -> ReplayJob:
        from binplay.run_models import build_models  # models import codes; keep this lazy

        cfg = BinPlayConfig.model_validate(payload["cfg"])
        shape = tuple(payload["image_shape"])
        models = build_models(cfg, shape, payload["num_classes"])
        decoder = models["decoder"]
        decoder.load_state_dict(payload["decoder"])
        classifier = None
        if payload["classifier"] is not None:
            classifier = models["classifier"]
            classifier.load_state_dict(payload["classifier"])
        return cls.bind(cfg, shape, payload["num_classes"], Ledger.from_dict(payload["ledger"]),
                        decoder.to(device), classifier.to(device) if classifier else None,
                        payload["targets"], tuple(payload["old_classes"]))


@torch.no_grad()
def generate(job: ReplayJob, indices: torch.Tensor,
             device: torch.device | str = "cpu") -> ReplayBatch:
    """The rehearsal batch of ``indices`` under ``job``'s frozen weights."""
    codes = codes_for(indices, job.ledger, job.cfg.codes, device)
    images = job.decoder(codes) if len(indices) else torch.empty(0, *job.image_shape, device=device)
    targets = None
    if job.targets == "ledger":
        classes = job.ledger.class_of(indices).to(device)
        targets = F.one_hot(classes, job.num_classes).float()
        floor = job.cfg.classifier.replay_min_confidence
        if floor > 0 and job.classifier is not None and len(indices):
            # A zero row adds nothing to the loss: the sample is dropped, the shapes stay.
            mask = class_mask(list(job.old_classes), job.num_classes, device)
            probs = soft_targets(job.classifier, images, mask)
            targets *= (probs.gather(1, classes[:, None]) >= floor).float()
    elif job.targets in ("soft", "hard") and job.classifier is not None:
        mask = class_mask(list(job.old_classes), job.num_classes, device)
        targets = soft_targets(job.classifier, images, mask, hard=job.targets == "hard")
    return ReplayBatch(indices, codes, images, targets)
