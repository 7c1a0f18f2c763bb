"""After each task: test accuracy on every task so far, regeneration fidelity, sample grids.

Runs on rank 0. Fidelity compares d(c(i)) with the image that was assigned code
c(i); that image is read back from the dataset through the task's probe, for the
measurement only (training never sees it again).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from binplay import metrics
from binplay.config import BinPlayConfig
from binplay.context import TrainContext
from binplay.data.stream import StreamManifest, read_shards
from binplay.ledger import Ledger
from binplay.replay import decode_indices
from binplay.state import derived_seed
from binplay.train.classifier import accuracy, class_mask

GRID_PER_TASK = 8


class Evaluator:
    def __init__(self, cfg: BinPlayConfig, manifest: StreamManifest, ctx: TrainContext):
        self.cfg, self.manifest, self.ctx = cfg, manifest, ctx
        self._test: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._originals: dict[int, torch.Tensor] = {}

    def test_set(self, task_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        if task_id not in self._test:
            _, images, labels = read_shards(self.manifest.tasks[task_id].test)
            self._test[task_id] = (images.float() / 255.0, labels)
        return self._test[task_id]

    def originals(self, task_id: int, stream_index: list[int]) -> torch.Tensor:
        if task_id not in self._originals:
            index, images, _ = read_shards(self.manifest.tasks[task_id].train)
            pos = torch.searchsorted(index, torch.tensor(stream_index))
            self._originals[task_id] = images[pos].float() / 255.0
        return self._originals[task_id]

    @torch.no_grad()
    def after_task(self, t: int, models: dict[str, nn.Module], ledger: Ledger,
                   state: dict[str, Any]) -> dict[str, Any]:
        if not self.ctx.is_main:
            return {"task": t}
        device = self.ctx.device
        seen = class_mask(ledger.classes, self.manifest.num_classes, device)
        row = []
        for j in range(t + 1):
            images, labels = self.test_set(j)
            row.append(accuracy(models["classifier"], images.to(device), labels.to(device), seen))
        psnrs, mses = [], []
        for j in range(t + 1):
            probe = state["probes"].get(j)
            if not probe:
                psnrs.append(None)
                mses.append(None)
                continue
            decoded = decode_indices(models["decoder"], torch.tensor(probe["code_index"]), ledger,
                                     self.cfg.codes, device).cpu()
            mse = float(((decoded - self.originals(j, probe["stream_index"])) ** 2).mean())
            mses.append(mse)
            psnrs.append(metrics.psnr(mse))
        history = state["history"]
        history["accuracy"].append(row)
        history["fidelity_psnr"].append(psnrs)
        history["fidelity_mse"].append(mses)
        history["grids"].append(self.grid(models["decoder"], ledger))
        history["losses"].append(state.get("phase_metrics", []))
        acc_text = " ".join(f"{a:5.1f}" for a in row)
        psnr_text = " ".join("  -  " if p is None else f"{p:5.1f}" for p in psnrs)
        self.ctx.info(f"task {t + 1}/{len(self.manifest.tasks)} done | accuracy per task: "
                      f"{acc_text} | average {sum(row) / len(row):.2f}% | PSNR dB: {psnr_text}")
        return {"task": t, "average_accuracy": sum(row) / len(row), "accuracy_row": row,
                "fidelity_psnr_row": psnrs}

    def grid(self, decoder: nn.Module, ledger: Ledger) -> torch.Tensor:
        """uint8 (tasks, GRID_PER_TASK, C, H, W): fixed indices of every task, regenerated."""
        rows = []
        for rec in ledger.tasks:
            gen = torch.Generator().manual_seed(derived_seed(self.cfg.seed, "grid", rec.task_id))
            idx = ledger.sample_indices(GRID_PER_TASK, gen, task_id=rec.task_id)
            img = decode_indices(decoder, idx, ledger, self.cfg.codes, self.ctx.device).cpu()
            rows.append((img * 255).round().to(torch.uint8))
        return torch.stack(rows)
