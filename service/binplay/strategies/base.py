"""What a continual-learning strategy plugs into the shared loop (binplay.engine).

The engine owns the stream, the classifier phase, evaluation, checkpoints and resume;
a strategy says which phases come before the classifier (BinPlay's autoencoder, DGR's
VAE), what the classifier sees of the current task, where its past samples come from,
and what it keeps between tasks. The base class is fine-tuning: current real images,
no rehearsal, nothing kept (the lower bound). Strategies are plain PyTorch; the same
object runs in-process and inside a Ray Train worker.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from binplay.config import BinPlayConfig, ClassifierConfig
from binplay.memory import carried_bytes
from binplay.scoring import soft_targets
from binplay.train import classifier as clf
from binplay.train.classifier import PastBatch, past_per_batch

if TYPE_CHECKING:
    from binplay.engine import TaskRun


def classifier_with(classifier: ClassifierConfig, section: Any) -> ClassifierConfig:
    """``classifier`` with a baseline section's own ``epochs``, ``lr`` and ``batch_size``
    where the section sets them."""
    own = {k: getattr(section, k) for k in ("epochs", "lr", "batch_size")
           if getattr(section, k) is not None}
    return classifier.model_copy(update=own)


class CurrentInputs(NamedTuple):
    """A worker's inputs for the classifier phase: the current task's images as the strategy
    shows them (with ``rows`` counted globally, so every rank takes the same steps)."""

    images: torch.Tensor
    labels: torch.Tensor
    rows: int
    reconstructed: int = 0  # the first rows are decoder reconstructions, the rest real images
    unmemorised: int = 0  # the last rows: real images beyond autoencoder.samples_per_class


@dataclass(frozen=True)
class Memory:
    """What a strategy keeps about past data between tasks, for the report (Table 3).

    ``bytes`` is the count of ``binplay.memory`` over the saved state (every carried tensor
    but the classifier's); the strategy only names it and says how many images it holds."""

    kind: str  # e.g. "decoder (int8)", "raw buffer (uint8)"
    bytes: int
    images: int | None = None  # raw images held (buffers), when it holds images
    stores_data: bool = False  # True when past samples themselves are kept


def soft_target_batches(draw: Callable[[torch.Generator], torch.Tensor],
                        frozen_classifier: nn.Module, old_seen: torch.Tensor,
                        hard: bool) -> PastBatch:
    """Generated samples labelled by the classifier frozen before the task (no labels kept)."""
    def batch(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = draw(gen)
        return images, soft_targets(frozen_classifier, images, old_seen, hard=hard)

    return batch


class Strategy:
    """Fine-tuning: the classifier learns each task from its real images only."""

    name = "finetune"
    snapshot: tuple[str, ...] = ()  # models frozen at task start, besides the classifier
    checkpoint_after: tuple[str, ...] = ()  # phases whose end is worth a checkpoint
    memory_field: str | None = None  # the config field of its byte budget (jobs.compare sets it)
    learnable = True  # False: it needs past tasks' data, which jobs.learn never keeps
    bound = False  # True: a bound to compare with (fine-tuning, joint), never the best choice
    reproduces_paper = False  # True: its report sets the paper's number beside its own
    sized_by_decoder = False  # True: jobs.compare --memory-mb sizes its decoder (BinPlay)

    def __init__(self, cfg: BinPlayConfig):
        self.cfg = cfg

    def own_models(self, shape: tuple[int, int, int]) -> dict[str, nn.Module]:
        """The models the strategy trains besides the classifier (seeded by the caller's
        ``torch`` state from here on; each seeds itself from the run seed and its name)."""
        return {}

    def phases(self) -> list[tuple[str, int]]:
        """(phase, epoch) of the strategy's own epochs, before the classifier's."""
        return []

    def begin_task(self, run: TaskRun, fresh: bool) -> None:
        """Set up the task (``fresh``: its first start, not a resume)."""

    def optimizer(self, run: TaskRun, phase: str) -> torch.optim.Optimizer:
        raise NotImplementedError(f"{self.name} has no phase '{phase}'")

    def epoch(self, run: TaskRun, phase: str, epoch: int, opt: torch.optim.Optimizer,
              gen: torch.Generator) -> tuple[dict[str, float], int]:
        """One epoch of a strategy phase: (mean metrics, samples processed)."""
        raise NotImplementedError(f"{self.name} has no phase '{phase}'")

    def after_epoch(self, run: TaskRun, phase: str, epoch: int) -> None:
        """Called after the epoch's progress line (BinPlay freezes its code mapping here)."""

    def classifier_config(self) -> ClassifierConfig:
        """The settings of the classifier phase (a strategy may have its own: ER)."""
        return self.cfg.classifier

    def past_per_step(self, task_index: int) -> int:
        """Past samples per classifier step (global): BinPlay's schedule by default, t past
        tasks : 1 current (``classifier.past_fraction`` overrides)."""
        return past_per_batch(self.classifier_config(), task_index)

    def carried_models(self, models: dict[str, nn.Module],
                       state: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
        """The weights the state carries past the task's end, as stored: by default every
        model, fp32 (``binplay.memory`` counts all but the classifier)."""
        return {name: copy.deepcopy(m.state_dict()) for name, m in models.items()}

    def classifier_inputs(self, run: TaskRun) -> CurrentInputs:
        """This worker's current inputs and labels, and the global number of rows."""
        return CurrentInputs(run.images, run.labels, run.shards.size)

    def classifier_epoch(self, run: TaskRun, opt: torch.optim.Optimizer, current: CurrentInputs,
                         epoch: int, gen: torch.Generator) -> tuple[dict[str, float], int]:
        """One epoch of the classifier phase: (mean metrics, samples processed).

        The default is cross-entropy on the current inputs plus the replay of
        ``past_batches`` (targets as probabilities), ``past_per_step`` past samples a step;
        a strategy with a loss of its own (DER++) overrides this whole epoch."""
        ccfg = self.classifier_config()
        # From the global number of rows, so every rank takes the same number of steps.
        steps = run.steps(current.rows, ccfg.batch_size)
        n_past = self.past_per_step(run.t)
        past = self.past_batches(run, epoch, run.local(n_past), steps) if n_past else None
        n_past = n_past if past is not None else 0
        m = clf.classifier_epoch(run.wrapped["classifier"], opt=opt, inputs=current.images,
                                 labels=current.labels, cfg=ccfg, seen=run.seen(include_current=True),
                                 past=past, n_past=run.local(n_past), gen=gen, steps=steps,
                                 batch=run.local(ccfg.batch_size), **self.loss_inputs(run, current))
        return m, steps * (ccfg.batch_size + n_past)

    def loss_inputs(self, run: TaskRun, current: CurrentInputs) -> dict[str, Any]:
        """What the default classifier loss reads beyond the batches (BinPlay: its
        reconstructed rows, the pre-task classifier for distillation, the old classes)."""
        return {}

    def past_batches(self, run: TaskRun, epoch: int, n: int, steps: int) -> PastBatch | None:
        """``n`` past samples per step for the classifier's epoch ``epoch`` of ``steps`` steps
        (None: nothing to rehearse)."""
        return None

    def end_task(self, run: TaskRun) -> None:
        """Update what the strategy keeps (in ``run.state``) once the task is learnt."""

    def memory(self, state: dict[str, Any], image_shape: tuple[int, ...]) -> Memory:
        """What the state carries (counted from it), named for the report."""
        return Memory("nothing besides the classifier", carried_bytes(state))
