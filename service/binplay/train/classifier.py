"""One task of the base network (docs/ALGORITHM.md, "Classifier"): current samples + soft-target replay.

Current samples come in as the autoencoder reproduces them (their decoded codes),
so that the classifier cannot tell new from old by sharpness. Past samples are
decoded from uniformly drawn past indices; their targets are the softmax outputs
of a frozen copy of the classifier taken before the task (no past labels kept).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from binplay.config import ClassifierConfig
from binplay.scoring import masked_logits
from binplay.train.augment import augment
from binplay.train.steps import EpochMeans

# step, epoch generator -> (past images, their target class probabilities) for that step
PastBatch = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def replay_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """Cross-entropy with soft targets, or the authors' MSE on softmax outputs."""
    if kind == "mse":
        return F.mse_loss(F.softmax(logits, dim=1), targets)
    logp = F.log_softmax(logits, dim=1).clamp_min(-1e4)  # -inf on masked classes x 0 target
    return -(targets * logp).sum(dim=1).mean()


def past_per_batch(cfg: ClassifierConfig, task_index: int) -> int:
    """Past samples per minibatch; default balanced per task (t past tasks : 1 current)."""
    if task_index == 0:
        return 0
    share = cfg.past_fraction if cfg.past_fraction is not None else task_index / (task_index + 1)
    return round(cfg.batch_size * share / (1 - share))


def reconstruction_copies(share: float | None, reconstructed: int, real: int) -> int:
    """Copies of the current reconstructions that make them about ``share`` of the current
    inputs beside ``real`` real images (``classifier.reconstructed_share``; at least one).

    With every real image of the task in the inputs, reconstructions are a twelfth of them
    on split-MNIST, and the classifier can learn "sharp = new" against the regenerated past."""
    if share is None or reconstructed == 0:
        return 1
    return max(1, round(share / (1 - share) * real / reconstructed))


DISTILL_TEMPERATURE = 2.0


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor,
                      old: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) over the old classes only, at temperature T, scaled by T^2
    (Hinton et al.; LwF): the gradient keeps the scale of a cross-entropy's."""
    t = DISTILL_TEMPERATURE
    cols = old.nonzero().squeeze(1)
    student = F.log_softmax(logits[:, cols] / t, dim=1)
    teacher = F.softmax(teacher_logits[:, cols] / t, dim=1)
    return F.kl_div(student, teacher, reduction="batchmean") * t * t


def asymmetric_from(cfg: ClassifierConfig, inputs: int, reconstructed: int, unmemorised: int) -> int:
    """The first input row whose cross-entropy scores the new classes only: every row
    (``new``), the real images after the leading reconstructions (``new_on_real``), or the
    trailing unmemorised images (``new_on_unmemorised``); ``inputs`` (none) for ``seen``.

    ``new_on_real`` needs reconstructions to keep every class: where the current inputs
    are all real (ER, fine-tuning, joint, BinPlay without ``ae_processed_inputs``) it
    scores every seen class, since the new classes alone on every current image is
    ``new`` (ER-ACE), which starves the newest task (docs/RESULTS.md, stop 13)."""
    if cfg.current_loss_classes == "new_on_real" and reconstructed == 0:
        return inputs
    return {"seen": inputs, "new": 0, "new_on_real": reconstructed,
            "new_on_unmemorised": inputs - unmemorised}[cfg.current_loss_classes]


def current_loss(over_seen: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor,
                 cfg: ClassifierConfig, old: torch.Tensor | None, first_asymmetric: int) -> torch.Tensor:
    """Cross-entropy of the current samples (input ``rows``; logits already masked to the
    seen classes) over every seen class, or with ``current_loss_classes`` (ER-ACE, Caccia
    et al. 2022) over the task's new classes only for the inputs from ``first_asymmetric``
    on (see ``asymmetric_from``). A sample scored on the new classes alone teaches
    new-vs-new and never pushes an old class's logit down."""
    if cfg.current_loss_classes == "seen" or old is None or not old.any():
        return F.cross_entropy(over_seen, labels)
    asymmetric = (rows >= first_asymmetric).to(over_seen.device)
    over_new = masked_logits(over_seen, ~old)
    return F.cross_entropy(torch.where(asymmetric[:, None], over_new, over_seen), labels)


def classifier_epoch(model: nn.Module, *, opt: torch.optim.Optimizer, inputs: torch.Tensor,
                     labels: torch.Tensor, cfg: ClassifierConfig, seen: torch.Tensor,
                     past: PastBatch | None, n_past: int, gen: torch.Generator,
                     steps: int, batch: int, teacher: nn.Module | None = None,
                     old: torch.Tensor | None = None, reconstructed: int = 0,
                     unmemorised: int = 0) -> dict[str, float]:
    """One epoch; ``batch`` current and ``n_past`` past samples per step (this worker).

    ``past(step, gen)`` gives the step's ``n_past`` past images and their target
    probabilities: regenerations with the frozen classifier's soft targets (BinPlay, DGR)
    or buffered images with their labels (ER). Without it the epoch is plain fine-tuning
    on the current inputs. With ``teacher`` (the classifier frozen before the task) and
    ``old`` (the mask of the classes before it), ``cfg.distill_current`` weighs a
    distillation term on the current inputs, and ``cfg.current_loss_classes`` may keep the
    current samples' cross-entropy to the classes ``seen`` has beyond ``old``
    (``reconstructed``: how many leading inputs are reconstructions, not real images;
    ``unmemorised``: how many trailing ones are real images beyond the memorised samples).
    """
    distill = cfg.distill_current if teacher is not None and old is not None and old.any() else 0.0
    first_asymmetric = asymmetric_from(cfg, len(inputs), reconstructed, unmemorised)
    if distill:
        teacher.eval()
    order = torch.randperm(len(inputs), generator=gen)
    b = min(batch, len(order))
    sums = EpochMeans("current", "past")
    for step in range(steps):
        rows = order[(torch.arange(b) + step * b) % len(order)]
        x, y = inputs[rows], labels[rows]
        past_x = None
        if n_past and past is not None:
            past_x, targets = past(step, gen)
            x = torch.cat([x, past_x.to(x.device)])
        x = augment(x, cfg.augment, gen)
        raw = model(x)
        logits = masked_logits(raw, seen)
        current = current_loss(logits[:b], y, rows, cfg, old, first_asymmetric)
        loss = current
        past_loss = torch.zeros(())
        if past_x is not None:
            past_loss = replay_loss(logits[b:], targets.to(logits.device), cfg.replay_loss)
            loss = (current * b + past_loss * len(past_x)) / (b + len(past_x))
        if distill:
            with torch.no_grad():
                teacher_logits = teacher(x[:b])
            loss = loss + distill * distillation_loss(raw[:b], teacher_logits, old)
        sums.step(opt, loss, current=current, past=past_loss)
    return sums.means()
