"""After each task: validation and test accuracy on every task so far, regeneration fidelity,
sample grids.

Validation accuracy (each task's held-out share of its training data) is what every choice
reads: Tune's metric, jobs.compare's best, the presets. Test accuracy is reported beside it
and never chosen on.

Runs on rank 0. Fidelity compares d(c(i)) with the image that was assigned code
c(i); that image is read back from the dataset through the task's probe, for the
measurement only (training never sees it again). The sample grids set the first
probes of every task beside the originals they stand for, with their classes.
Fidelity and grids exist for BinPlay (the only strategy whose samples have indices).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from binplay import metrics
from binplay.config import BinPlayConfig
from binplay.context import TrainContext
from binplay.data.shards import read_shards
from binplay.data.stream import StreamManifest
from binplay.ledger import Ledger
from binplay.replay import decode_indices
from binplay.scoring import class_mask, percent, predict, score

GRID_PER_TASK = 8


def _row_text(values: list[float | None]) -> str:
    return " ".join("  -  " if v is None else f"{v:5.1f}" for v in values)


class Evaluator:
    def __init__(self, cfg: BinPlayConfig, manifest: StreamManifest, ctx: TrainContext):
        self.cfg, self.manifest, self.ctx = cfg, manifest, ctx
        self._sets: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._originals: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def labelled_set(self, split: str, task_id: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A task's ``test`` or ``val`` images in [0, 1] and labels (None: the task has none)."""
        paths = getattr(self.manifest.tasks[task_id], split)
        if not paths:  # jobs.learn: no test data given, or no validation split
            return None
        if (split, task_id) not in self._sets:
            _, images, labels = read_shards(paths)
            self._sets[split, task_id] = (images.float() / 255.0, labels)
        return self._sets[split, task_id]

    def accuracy_row(self, split: str, t: int, classifier: nn.Module,
                     seen: torch.Tensor) -> list[float | None]:
        """Accuracy on each task 0..t's ``split`` (None where it has none)."""
        scores = score(classifier, seen, ((j, self.labelled_set(split, j)) for j in range(t + 1)))
        return [scores.accuracy(j) for j in range(t + 1)]

    def originals(self, task_id: int, stream_index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The probed samples of a task, read back from its shards: (images in [0, 1], labels)."""
        if task_id not in self._originals:
            index, images, labels = read_shards(self.manifest.tasks[task_id].train)
            indexed = index > 0  # not the unmemorised rows (classifier.unmemorised_inputs)
            index, images, labels = index[indexed], images[indexed], labels[indexed]
            pos = torch.searchsorted(index, torch.tensor(stream_index))
            self._originals[task_id] = images[pos].float() / 255.0, labels[pos]
        return self._originals[task_id]

    @torch.no_grad()
    def after_task(self, t: int, models: dict[str, nn.Module], ledger: Ledger,
                   state: dict[str, Any]) -> dict[str, Any]:
        if not self.ctx.is_main:
            return {"task": t}
        seen = class_mask(ledger.classes, self.manifest.num_classes, self.ctx.device)
        row = self.accuracy_row("test", t, models["classifier"], seen)
        val_row = self.accuracy_row("val", t, models["classifier"], seen)
        average, val_average = metrics.mean_known(row), metrics.mean_known(val_row)
        history = state["history"]
        history["accuracy"].append(row)
        history.setdefault("val_accuracy", []).append(val_row)
        psnrs: list[float | None] = [None] * (t + 1)
        identity: list[float | None] = [None] * (t + 1)
        measurement = state.setdefault("measurement", {"probes": {}, "grids": []})
        if "decoder" in models:
            psnrs, identity = self.fidelity(models["decoder"], ledger, measurement["probes"],
                                            models["classifier"], seen)
            measurement["grids"].append(self.grid(models["decoder"], ledger, measurement["probes"]))
        history["fidelity_psnr"].append(psnrs)
        history.setdefault("regeneration_accuracy", []).append(identity)
        history["fidelity_mse"].append([None if p is None else 10 ** (-p / 10) for p in psnrs])
        acc_text, psnr_text = _row_text(row), _row_text(psnrs)
        self.ctx.info(f"task {t + 1}/{len(self.manifest.tasks)} done | test accuracy per task: "
                      f"{acc_text} | average "
                      + ("-" if average is None else f"{average:.2f}%")
                      + ("" if val_average is None else f" | validation {val_average:.2f}%")
                      + (f" | PSNR dB: {psnr_text}" if "decoder" in models else "")
                      + (f" | regenerations classified right %: {_row_text(identity)}"
                         if "decoder" in models else ""))
        out = {"task": t, "accuracy_row": row, "val_accuracy_row": val_row,
               "fidelity_psnr_row": psnrs, "regeneration_accuracy_row": identity}
        if val_average is not None:
            out["val_average_accuracy"] = val_average
        return out if average is None else {**out, "average_accuracy": average}

    def _decode_probe(self, decoder: nn.Module, ledger: Ledger, code_index: list[int]) -> torch.Tensor:
        return decode_indices(decoder, torch.tensor(code_index), ledger, self.cfg.codes,
                              self.ctx.device).cpu()

    def fidelity(self, decoder: nn.Module, ledger: Ledger, probes: dict[int, Any],
                 classifier: nn.Module, seen: torch.Tensor
                 ) -> tuple[list[float | None], list[float | None]]:
        """Per learnt task's probe: PSNR (dB) of d(c(i)) against the image given c(i), and the
        share (%) of the d(c(i)) that ``classifier`` files under that image's class: how much
        class identity the regenerations still carry (the classifier after the task, which
        also trained on them; None where a task has no probe)."""
        psnrs: list[float | None] = []
        identity: list[float | None] = []
        for rec in ledger.tasks:
            probe = probes.get(rec.task_id)
            if not probe:
                psnrs.append(None)
                identity.append(None)
                continue
            decoded = self._decode_probe(decoder, ledger, probe["code_index"])
            original, labels = self.originals(rec.task_id, probe["stream_index"])
            psnrs.append(metrics.psnr(float(((decoded - original) ** 2).mean())))
            right = predict(classifier, decoded, seen).cpu() == labels
            identity.append(percent(int(right.sum()), len(labels)))
        return psnrs, identity

    def grid(self, decoder: nn.Module, ledger: Ledger, probes: dict[int, Any]) -> dict[str, Any]:
        """The first probes of every task: regenerated and original (uint8), and their classes."""
        regenerated, original, labels = [], [], []
        for rec in ledger.tasks:
            probe = probes.get(rec.task_id)
            if not probe:
                continue
            k = min(GRID_PER_TASK, len(probe["code_index"]))
            images, classes = self.originals(rec.task_id, probe["stream_index"])
            decoded = self._decode_probe(decoder, ledger, probe["code_index"][:k])
            regenerated.append((decoded * 255).round().to(torch.uint8))
            original.append((images[:k] * 255).round().to(torch.uint8))
            labels.append([rec.task_id, classes[:k].tolist()])
        return {"regenerated": regenerated, "original": original, "labels": labels}
