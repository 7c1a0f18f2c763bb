"""DER++ (Buzzega et al., "Dark Experience for General Continual Learning", NeurIPS 2020).

The buffer keeps raw uint8 images, their labels and the logits the classifier gave them
when they were stored. Each classifier step adds to the current cross-entropy
``alpha`` x MSE between the logits of one buffer batch and its stored logits, and
``beta`` x cross-entropy of a second buffer batch on its labels (Mammoth's
``models/derpp.py``). Here samples enter the buffer at the end of their task (class-balanced
as ER's buffer by default, or a reservoir over the stream as published), with the logits
of the classifier just trained on them; every rank builds the same buffer from the whole
task. Its memory
is the state's count (``binplay.memory``): images, labels and logits at their stored dtype.

The three parts of a step go through the model as one batch, so a DDP-wrapped classifier
sees one forward per backward (as the default loss does with current + replay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from binplay.config import ClassifierConfig
from binplay.memory import budget_bytes, carried_bytes
from binplay.scoring import masked_logits
from binplay.strategies.base import CurrentInputs, Memory, Strategy, classifier_with
from binplay.strategies.buffer import label_dtype, refill
from binplay.train.augment import augment
from binplay.train.steps import EpochMeans

if TYPE_CHECKING:
    from binplay.engine import TaskRun

LOGIT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class DerppStrategy(Strategy):
    name = "derpp"
    memory_field = "derpp.memory_mb"

    def sample_bytes(self, image_shape: tuple[int, ...], num_classes: int) -> int:
        """What one buffered sample costs: pixels, a label, a row of logits."""
        pixels = int(torch.tensor(image_shape).prod())
        labels = torch.empty(0, dtype=label_dtype(num_classes)).element_size()
        logits = torch.empty(0, dtype=LOGIT_DTYPES[self.cfg.derpp.logits_dtype]).element_size()
        return pixels + labels + num_classes * logits

    def capacity(self, image_shape: tuple[int, ...], num_classes: int) -> int:
        shape = tuple(int(d) for d in image_shape)
        budget = budget_bytes(self.cfg.derpp.memory_mb, self.cfg, shape)  # type: ignore[arg-type]
        return budget // self.sample_bytes(shape, num_classes)

    def classifier_config(self) -> ClassifierConfig:
        return classifier_with(self.cfg.classifier, self.cfg.derpp)

    def past_per_step(self, task_index: int) -> int:
        return 0  # DER++ replays through its own loss, not the default's targets

    def classifier_epoch(self, run: TaskRun, opt: torch.optim.Optimizer, current: CurrentInputs,
                         epoch: int, gen: torch.Generator) -> tuple[dict[str, float], int]:
        buffer = run.state.get("buffer")
        if not buffer or len(buffer["labels"]) == 0:
            return super().classifier_epoch(run, opt, current, epoch, gen)  # task 1: plain CE
        ccfg, derpp = self.classifier_config(), self.cfg.derpp
        device = run.ctx.device
        steps = run.steps(current.rows, ccfg.batch_size)
        b = min(run.local(ccfg.batch_size), len(current.images))
        m = run.local(derpp.replay_batch or ccfg.batch_size)
        x_buf = buffer["images"].to(device).float() / 255.0
        y_buf = buffer["labels"].to(device).long()
        z_buf = buffer["logits"].to(device).float()
        model, seen = run.wrapped["classifier"], run.seen(include_current=True)
        order = torch.randperm(len(current.images), generator=gen)
        sums = EpochMeans("current", "logits_mse", "buffer_ce")
        for step in range(steps):
            rows = order[(torch.arange(b) + step * b) % len(order)]
            first = torch.randint(len(y_buf), (m,), generator=gen).to(device)
            second = torch.randint(len(y_buf), (m,), generator=gen).to(device)
            raw = model(augment(torch.cat([current.images[rows], x_buf[first], x_buf[second]]),
                                ccfg.augment, gen))
            logits = masked_logits(raw, seen)
            parts = {"current": F.cross_entropy(logits[:b], current.labels[rows]),
                     "logits_mse": F.mse_loss(raw[b:b + m], z_buf[first]),
                     "buffer_ce": F.cross_entropy(logits[b + m:], y_buf[second])}
            loss = parts["current"] + derpp.alpha * parts["logits_mse"] + derpp.beta * parts["buffer_ce"]
            sums.step(opt, loss, **parts)
        return sums.means(), steps * (ccfg.batch_size + 2 * m)

    @torch.no_grad()
    def end_task(self, run: TaskRun) -> None:
        """Add the task to the buffer, each new sample with the logits the classifier just
        trained gives it (the whole task, so every rank builds the same buffer)."""
        num_classes = run.state["num_classes"]
        kept = refill(run, self.cfg.derpp.sampling,
                      self.capacity(run.manifest.image_shape, num_classes))
        old = run.state.get("buffer")
        new_rows = kept.rows[kept.rows >= 0]  # logits only for the task's samples kept
        logits = torch.zeros(len(kept.images), num_classes,
                             dtype=LOGIT_DTYPES[self.cfg.derpp.logits_dtype])
        logits[new_rows] = self._logits(run, kept.images[new_rows]).to(logits.dtype)
        run.state["buffer"] = {"images": kept.take(old, "images", kept.images), "labels": kept.labels,
                               "logits": kept.take(old, "logits", logits)}

    def _logits(self, run: TaskRun, images: torch.Tensor) -> torch.Tensor:
        model = run.models["classifier"]
        was_training = model.training
        model.eval()
        out = [model(images[s:s + 1024].to(run.ctx.device).float() / 255.0).cpu()
               for s in range(0, len(images), 1024)]
        model.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, run.state["num_classes"])

    def memory(self, state: dict[str, Any], image_shape: tuple[int, ...]) -> Memory:
        held = len(state.get("buffer", {}).get("labels", []))
        room = self.capacity(image_shape, state["num_classes"])
        return Memory(f"DER++ buffer (uint8 images + labels + {self.cfg.derpp.logits_dtype} "
                      f"logits; room for {room})", carried_bytes(state), held, stores_data=True)
