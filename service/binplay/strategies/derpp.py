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
from binplay.data.stream import read_shards
from binplay.memory import budget_bytes, carried_bytes
from binplay.seeding import derived_seed
from binplay.strategies.base import CurrentInputs, Memory, Strategy
from binplay.strategies.baselines import balanced_buffer, label_dtype, reservoir_buffer
from binplay.train.classifier import masked_logits

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
        own = {k: getattr(self.cfg.derpp, k) for k in ("epochs", "lr", "batch_size")
               if getattr(self.cfg.derpp, k) is not None}
        return self.cfg.classifier.model_copy(update=own)

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
        totals = {"loss": 0.0, "current": 0.0, "logits_mse": 0.0, "buffer_ce": 0.0}
        for step in range(steps):
            rows = order[(torch.arange(b) + step * b) % len(order)]
            first = torch.randint(len(y_buf), (m,), generator=gen).to(device)
            second = torch.randint(len(y_buf), (m,), generator=gen).to(device)
            raw = model(torch.cat([current.images[rows], x_buf[first], x_buf[second]]))
            logits = masked_logits(raw, seen)
            parts = {"current": F.cross_entropy(logits[:b], current.labels[rows]),
                     "logits_mse": F.mse_loss(raw[b:b + m], z_buf[first]),
                     "buffer_ce": F.cross_entropy(logits[b + m:], y_buf[second])}
            loss = parts["current"] + derpp.alpha * parts["logits_mse"] + derpp.beta * parts["buffer_ce"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            totals["loss"] += float(loss.detach())
            for key, value in parts.items():
                totals[key] += float(value.detach())
        return {k: v / max(1, steps) for k, v in totals.items()}, steps * (ccfg.batch_size + 2 * m)

    @torch.no_grad()
    def end_task(self, run: TaskRun) -> None:
        """Add the task to the buffer, each new sample with the logits the classifier just
        trained gives it (the whole task, so every rank builds the same buffer)."""
        _, images, labels = read_shards(run.shards.train)
        num_classes = run.state["num_classes"]
        labels = labels.to(label_dtype(num_classes))
        old = run.state.get("buffer")
        # Rows stand in for samples: old slots as -1, -2, ...; new rows as 0, 1, ...
        old_rows = -torch.arange(1, len(old["labels"]) + 1) if old else torch.zeros(0, dtype=torch.int64)
        old_labels = old["labels"] if old else labels[:0]
        new_rows = torch.arange(len(labels))
        gen = torch.Generator().manual_seed(derived_seed(self.cfg.seed, run.t, "buffer"))
        capacity = self.capacity(images.shape[1:], num_classes)
        if self.cfg.derpp.sampling == "reservoir":
            kept, kept_y = reservoir_buffer(old_rows, old_labels, run.shards.first_index - 1,
                                            new_rows, labels, capacity, gen)
        else:
            kept, kept_y = balanced_buffer(old_rows, old_labels, new_rows, labels, capacity, gen)
        fresh = kept >= 0
        dtype = LOGIT_DTYPES[self.cfg.derpp.logits_dtype]
        out_x = torch.empty(len(kept), *images.shape[1:], dtype=torch.uint8)
        out_z = torch.empty(len(kept), num_classes, dtype=dtype)
        if old:
            slots = -kept[~fresh] - 1
            out_x[~fresh], out_z[~fresh] = old["images"][slots], old["logits"][slots]
        out_x[fresh] = images[kept[fresh]]
        out_z[fresh] = self._logits(run, images[kept[fresh]]).to(dtype)
        run.state["buffer"] = {"images": out_x, "labels": kept_y.to(labels.dtype), "logits": out_z}

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
