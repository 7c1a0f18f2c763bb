"""BinPlay (docs/ALGORITHM.md): binary latent autoencoder, codes from indices, self-rehearsal.

Per task: warm-up and greedy assignment epochs (encoder + decoder), the mapping
image -> code frozen, decoder epochs on (code, image) pairs of the current task and
(c(i), d(c(i); v')) of past indices, then the classifier on the decoder's
reconstructions of the current task and regenerations of uniformly drawn past indices
with soft targets. The mapping lives only while its task runs. With
``autoencoder.store`` int8 or bf16 the decoder is replaced by its stored values as soon
as its task's decoder epochs end (binplay.models.quantise), before the classifier phase.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from binplay.codes import stream_codes
from binplay.config import BinPlayConfig
from binplay.memory import carried_bytes
from binplay.models.build import autoencoder_for
from binplay.models.quantise import pack, store_
from binplay.replay import ReplayJob
from binplay.replay.generate import Targets
from binplay.seeding import derived_seed
from binplay.state import StateError
from binplay.strategies.base import CurrentInputs, Memory, PastBatch, Strategy
from binplay.train import autoencoder as ae
from binplay.train.classifier import reconstruction_copies

if TYPE_CHECKING:
    from binplay.engine import TaskRun


def encoder_seed(cfg: BinPlayConfig, task_index: int) -> int:
    """The seed a task's fresh encoder is drawn from (the encoder is not carried)."""
    return derived_seed(cfg.seed, task_index, "encoder")


def fresh_encoder(cfg: BinPlayConfig, shape: tuple[int, ...], task_index: int) -> nn.Module:
    """The encoder a task starts from when ``autoencoder.encoder_carry`` is off: the preset's
    initialisation, drawn from the task's seed."""
    with torch.random.fork_rng():
        torch.manual_seed(encoder_seed(cfg, task_index))
        encoder, _ = autoencoder_for(cfg, tuple(int(d) for d in shape))  # type: ignore[arg-type]
    return encoder


def _reinitialise(module: nn.Module, seed: int) -> None:
    """Fresh default initialisation of every layer (the authors' per-task decoder)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for layer in module.modules():
            if hasattr(layer, "reset_parameters") and layer is not module:
                layer.reset_parameters()


def decoder_lr_at(lr: float, epoch: int, epochs: int) -> float:
    """The cosine schedule's lr for decoder epoch ``epoch`` of ``epochs`` (0-based): ``lr`` at
    the first, falling as half a cosine; the last epoch still learns (lr * (1 - cos(pi/E))/2)."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


class BinPlayStrategy(Strategy):
    name = "binplay"
    reproduces_paper = True
    sized_by_decoder = True
    snapshot = ("decoder",)
    checkpoint_after = ("assign", "decoder")

    def own_models(self, shape: tuple[int, int, int]) -> dict[str, nn.Module]:
        torch.manual_seed(derived_seed(self.cfg.seed, "autoencoder"))
        encoder, decoder = autoencoder_for(self.cfg, shape)
        return {"encoder": encoder, "decoder": decoder}

    def phases(self) -> list[tuple[str, int]]:
        a = self.cfg.autoencoder
        counts = {"warmup": a.warmup_epochs, "assign": a.assignment_epochs,
                  "decoder": a.decoder_epochs}
        return [(p, e) for p, n in counts.items() for e in range(n)]

    def begin_task(self, run: TaskRun, fresh: bool) -> None:
        cfg, ctx = self.cfg, run.ctx
        by_class = cfg.stream.order == "class"
        codes = stream_codes(run.index, torch.full_like(run.index, run.t), cfg.codes,
                             run.labels.cpu() if cfg.codes.class_bits else None).to(ctx.device)
        # Ordered by class, a sample takes a code of its class's sub-range only.
        self.task = ae.CurrentTask(run.images, codes, run.shards.first_index,
                                   run.shards.last_index, run.labels if by_class else None)
        if fresh and run.t > 0 and cfg.autoencoder.decoder_mode == "reinit":
            _reinitialise(run.models["decoder"], derived_seed(cfg.seed, run.t, "reinit"))
        if fresh and not cfg.autoencoder.encoder_carry:
            # The paper keeps only the decoder: an encoder warm from every earlier task's
            # images would carry them (and would have to be counted as memory).
            weights = fresh_encoder(cfg, run.manifest.image_shape, run.t).state_dict()
            run.models["encoder"].load_state_dict(weights)
        self.frozen_decoder = run.frozen.get("decoder") if cfg.autoencoder.self_rehearsal else None
        self.features: nn.Module | None = None
        if cfg.autoencoder.feature_loss_weight > 0:
            # The classifier before this task's classifier phase (the decoder phase comes
            # first), frozen: its trunk, so the decoder spends its bytes on what it reads.
            self.features = copy.deepcopy(run.models["classifier"].features).eval()
            self.features.requires_grad_(False)
        self.mapping: torch.Tensor | None = None
        if "mapping" in run.state:
            if run.state.get("world_size", 1) != ctx.world_size:
                raise StateError(f"checkpoint was taken mid-task with {run.state.get('world_size')} "
                                 f"workers; resume with ray.num_workers={run.state.get('world_size')}")
            # Saved as stream indices of the assigned codes, one list per rank.
            self.mapping = torch.searchsorted(run.index, run.state["mapping"][ctx.rank]).to(ctx.device)

    def optimizer(self, run: TaskRun, phase: str) -> torch.optim.Optimizer:
        if phase in ("warmup", "assign"):
            params = list(run.models["encoder"].parameters()) + list(run.models["decoder"].parameters())
            return torch.optim.Adam(params, lr=self.cfg.autoencoder.lr)
        return torch.optim.Adam(run.models["decoder"].parameters(), lr=self.cfg.autoencoder.decoder_lr)

    def _job(self, run: TaskRun, decoder: nn.Module, targets: Targets = "none",
             classifier: nn.Module | None = None) -> Callable[[], ReplayJob]:
        return lambda: ReplayJob.bind(self.cfg, tuple(run.manifest.image_shape),
                                      run.state["num_classes"], run.ledger, decoder, classifier,
                                      targets, tuple(run.ledger.classes))

    def epoch(self, run: TaskRun, phase: str, epoch: int, opt: torch.optim.Optimizer,
              gen: torch.Generator) -> tuple[dict[str, float], int]:
        cfg = self.cfg
        batch, local = cfg.autoencoder.batch_size, run.local(cfg.autoencoder.batch_size)
        frozen = self.frozen_decoder
        if phase in ("warmup", "assign"):
            steps = run.steps(run.shards.size, batch)
            past = None if frozen is None else run.replay_feed(
                phase, epoch, steps, self._job(run, frozen),
                count=ae.encoder_past_count(self.task, local))
            m = ae.encoder_epoch(run.wrapped["encoder"], run.wrapped["decoder"], opt=opt,
                                 task=self.task, cfg=cfg.autoencoder, past=past, gen=gen,
                                 steps=steps, batch=local, assign=phase == "assign")
        else:
            if cfg.autoencoder.decoder_lr_schedule == "cosine":
                for group in opt.param_groups:  # a function of the epoch: a resume sets it too
                    group["lr"] = decoder_lr_at(cfg.autoencoder.decoder_lr, epoch,
                                                cfg.autoencoder.decoder_epochs)
            per_epoch = cfg.autoencoder.decoder_samples_per_epoch or 2 * run.shards.size
            steps = run.steps(per_epoch, batch)
            past = None if frozen is None else run.replay_feed(
                phase, epoch, steps, self._job(run, frozen), batch=local,
                share=ae.decoder_past_share(self.task, cfg.autoencoder))
            m = ae.decoder_epoch(run.wrapped["decoder"], opt=opt, task=self.task,
                                 mapping=self.mapping, past=past, gen=gen, steps=steps,
                                 batch=local, features=self.features,
                                 feature_weight=cfg.autoencoder.feature_loss_weight,
                                 bf16=cfg.autoencoder.decoder_compute == "bf16")
        return m, steps * batch

    def after_epoch(self, run: TaskRun, phase: str, epoch: int) -> None:
        if phase == "assign" and epoch + 1 == self.cfg.autoencoder.assignment_epochs:
            self._freeze(run)
        if phase == "decoder" and epoch + 1 == self.cfg.autoencoder.decoder_epochs:
            # The decoder is learnt: keep it as stored from here on, so the classifier's
            # inputs, the checkpoint after this phase and the next task's frozen copy all
            # come from the stored bytes (as in the prototype that measured lever 6).
            self._store(run)

    def end_task(self, run: TaskRun) -> None:
        self._store(run)  # no decoder epochs: the stored decoder is the one after assignment

    def _store(self, run: TaskRun) -> None:
        """Quantise the decoder in place to ``autoencoder.store``, once per task.

        Once only: re-packing dequantised weights recomputes the scales, which may move
        them by an ulp; the flag rides in the checkpoint, so a resume does not repeat it."""
        store = self.cfg.autoencoder.store
        if store == "fp32" or run.state.get("decoder_stored") == run.t:
            return
        # The packed tensors ride in the state until the task ends, where they become the
        # carried decoder: re-packing the stored values could move a scale by an ulp.
        run.state["decoder_packed"] = store_(run.models["decoder"], store)
        run.state["decoder_stored"] = run.t

    def _freeze(self, run: TaskRun) -> None:
        """Fix image -> code for the rest of the task; record the fidelity probe (rank 0)."""
        ctx = run.ctx
        gen = torch.Generator().manual_seed(derived_seed(self.cfg.seed, run.t, "freeze", ctx.rank))
        self.mapping, agreement = ae.freeze_assignment(run.models["encoder"], self.task, gen)
        agreement = ctx.mean(agreement)
        # Stream indices of the assigned codes: a permutation of K_t..N_t over all ranks.
        run.state["mapping"] = ctx.gather(run.index[self.mapping.cpu()])
        run.state["history"]["sign_agreement"].append(agreement)
        ctx.info(f"task {run.t + 1}: code mapping frozen, encoder sign agreement "
                 f"{100 * agreement:.1f}% of bits (50% = random)")
        if ctx.is_main:
            n = min(self.cfg.run.fidelity_samples, len(run.index))
            rows = torch.randperm(len(run.index), generator=gen)[:n]
            # A measurement (state["measurement"], saved apart): training never reads it.
            run.state["measurement"]["probes"][run.t] = {"code_index": run.index[self.mapping[rows]].tolist(),
                                          "stream_index": run.index[rows].tolist()}

    @torch.no_grad()
    def classifier_inputs(self, run: TaskRun) -> CurrentInputs:
        """Current images as the decoder reproduces them from their codes (Table 1), or real,
        or both."""
        c = self.cfg.classifier
        parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        reconstructed = 0  # leading rows that are reconstructions
        if c.ae_processed_inputs:
            decoder = run.models["decoder"]
            decoder.eval()
            out = torch.cat([decoder(self.task.codes[self.mapping[s:s + 1024]])
                             for s in range(0, len(self.mapping), 1024)])
            decoder.train()
            copies = reconstruction_copies(c.reconstructed_share, run.shards.size,
                                           run.shards.size + run.shards.unmemorised)
            parts += [(out, run.labels)] * copies
            reconstructed = copies * len(out)
        if not c.ae_processed_inputs or c.mix_real_inputs:
            parts.append((run.images, run.labels))
        # Global rows (every rank takes the same steps); the unmemorised part is empty unless
        # classifier.unmemorised_inputs.
        rows = len(parts) * run.shards.size + run.shards.unmemorised
        parts.append(run.unmemorised)
        return CurrentInputs(torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]), rows,
                             reconstructed, len(run.unmemorised[0]))

    def loss_inputs(self, run: TaskRun, current: CurrentInputs) -> dict[str, Any]:
        return {"reconstructed": current.reconstructed, "unmemorised": current.unmemorised,
                "teacher": run.frozen.get("classifier"), "old": run.seen(include_current=False)}

    def past_batches(self, run: TaskRun, epoch: int, n: int, steps: int) -> PastBatch | None:
        """Regenerations by the decoder just trained (frozen for this phase), labelled by the
        ledger's class ranges or by the classifier frozen before the task."""
        c = self.cfg.classifier
        targets: Targets = "ledger" if c.ledger_labels else ("soft" if c.soft_targets else "hard")
        feed = run.replay_feed("classifier", epoch, steps,
                               self._job(run, run.models["decoder"], targets,
                                         run.frozen["classifier"]), count=n)

        def batch(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            out = feed.batch(step)
            return out.images, out.targets

        return batch

    def carried_models(self, models: dict[str, nn.Module],
                       state: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
        """The classifier, the decoder as stored (``autoencoder.store``: int8/int4 weights with
        their scales, the rest fp32) and, only with ``encoder_carry``, the encoder."""
        names = ("classifier", "decoder", "encoder") if self.cfg.autoencoder.encoder_carry \
            else ("classifier", "decoder")
        out = super().carried_models({n: models[n] for n in names}, state)
        store = self.cfg.autoencoder.store
        if store != "fp32":
            decoder = models["decoder"]
            packed = state.get("decoder_packed") or pack(decoder, store)
            buffers = {k: v.detach().clone() for k, v in decoder.named_buffers()}
            # Weights as packed; buffers (norm statistics, counters) as they are now.
            out["decoder"] = {**{k: v.clone() for k, v in packed.items() if k not in buffers},
                              **buffers}
        return out

    def memory(self, state: dict[str, Any], image_shape: tuple[int, ...]) -> Memory:
        kind = f"decoder ({self.cfg.autoencoder.store})"
        if self.cfg.autoencoder.encoder_carry:
            kind += " + encoder (fp32, carried)"
        return Memory(kind, carried_bytes(state))
