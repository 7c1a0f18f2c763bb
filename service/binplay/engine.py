"""The class-incremental loop: every task, every phase, in one process or one Ray worker.

A task is a fixed list of epochs (warm-up, assignment, decoder, classifier); the
state's ``cursor`` counts those done, so a resumed run redoes only the epoch in
flight. Randomness is derived from (seed, task, phase, epoch, rank), so a resumed
epoch draws what the interrupted one drew.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from binplay.codes import stream_codes
from binplay.config import BinPlayConfig
from binplay.context import TrainContext
from binplay.data.stream import StreamManifest, TaskShards
from binplay.evaluation import Evaluator
from binplay.ledger import Ledger, TaskRecord
from binplay.models.autoencoder import build_autoencoder
from binplay.models.classifier import LeNet
from binplay.progress import Progress
from binplay.replay import InlineReplay, ReplaySource
from binplay.state import StateError, check_state, derived_seed, end_task, fresh_state
from binplay.train import autoencoder as ae
from binplay.train import classifier as clf

PHASES = ("warmup", "assign", "decoder", "classifier")


def phase_plan(cfg: BinPlayConfig) -> list[tuple[str, int]]:
    """(phase, epoch-in-phase) for every epoch of one task, in order."""
    counts = {"warmup": cfg.autoencoder.warmup_epochs, "assign": cfg.autoencoder.assignment_epochs,
              "decoder": cfg.autoencoder.decoder_epochs, "classifier": cfg.classifier.epochs}
    return [(p, e) for p in PHASES for e in range(counts[p])]


def build_models(cfg: BinPlayConfig, manifest: StreamManifest) -> dict[str, nn.Module]:
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    shape = tuple(manifest.image_shape)
    encoder, decoder = build_autoencoder(cfg.autoencoder.preset, shape, cfg.codes.latent_dim,
                                         cfg.autoencoder.width)
    classifier = LeNet(shape, manifest.num_classes, cfg.classifier.dropout)
    return {"encoder": encoder, "decoder": decoder, "classifier": classifier}


def _frozen(module: nn.Module) -> nn.Module:
    twin = copy.deepcopy(module).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


class TaskRun:
    """Working state of one task on one worker (dropped when the task ends)."""

    def __init__(self, cfg: BinPlayConfig, ctx: TrainContext, models: dict[str, nn.Module],
                 wrapped: dict[str, nn.Module], state: dict[str, Any], shards: TaskShards,
                 ledger: Ledger, replay_factory):
        self.cfg, self.ctx, self.models, self.wrapped, self.state = cfg, ctx, models, wrapped, state
        self.t, self.shards, self.ledger = shards.task_id, shards, ledger
        index, images, labels = ctx.load_task(shards)
        self.index, self.labels = index, labels.to(ctx.device)
        codes = stream_codes(index, torch.full_like(index, self.t), cfg.codes).to(ctx.device)
        self.task = ae.CurrentTask(images.to(ctx.device).float() / 255.0, codes,
                                   shards.first_index, shards.last_index)
        self.replay_factory = replay_factory
        snaps = state.get("snapshots")
        if snaps is None:  # task start: v' and the pre-task classifier, frozen
            snaps = {"decoder": copy.deepcopy(models["decoder"].state_dict()),
                     "classifier": copy.deepcopy(models["classifier"].state_dict())}
            if self.t > 0 and cfg.autoencoder.decoder_mode == "reinit":
                _reinitialise(models["decoder"], derived_seed(cfg.seed, self.t, "reinit"))
            state["snapshots"] = snaps
        self.frozen_decoder = (self._frozen_from(models["decoder"], snaps["decoder"])
                               if cfg.autoencoder.self_rehearsal else None)
        self.frozen_classifier = self._frozen_from(models["classifier"], snaps["classifier"])
        self.mapping = None
        # Seconds already spent on this task before a resume count towards its time.
        self.started = time.time() - state.get("task_elapsed", 0.0)
        if "mapping" in state:
            if state.get("world_size", 1) != ctx.world_size:
                raise StateError(f"checkpoint was taken mid-task with {state.get('world_size')} "
                                 f"workers; resume with ray.num_workers={state.get('world_size')}")
            # Saved as stream indices of the assigned codes, one list per rank.
            self.mapping = torch.searchsorted(index, state["mapping"][ctx.rank]).to(ctx.device)

    def _frozen_from(self, module: nn.Module, weights: dict) -> nn.Module | None:
        if self.t == 0:
            return None
        twin = _frozen(module)
        twin.load_state_dict(weights)
        return twin

    def steps(self, per_epoch: int, batch: int) -> int:
        """Steps per epoch, the same on every rank (DDP needs it): epoch size / global batch."""
        return max(1, -(-per_epoch // batch))

    def local(self, global_batch: int) -> int:
        """This worker's share of a global batch: N workers take the steps one process would."""
        return -(-global_batch // self.ctx.world_size)


def _reinitialise(module: nn.Module, seed: int) -> None:
    """Fresh default initialisation of every layer (the authors' per-task decoder)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for layer in module.modules():
            if hasattr(layer, "reset_parameters") and layer is not module:
                layer.reset_parameters()


def run_stream(cfg: BinPlayConfig, manifest: StreamManifest, ctx: TrainContext,
               replay_factory=None) -> dict[str, Any]:
    """Train on every task of the stream; returns the final state (rank 0's is complete)."""
    if ctx.resume_state is not None:
        state = ctx.resume_state
        check_state(state, cfg, "resume checkpoint")
    else:
        state = fresh_state(cfg)
    state["image_shape"], state["num_classes"] = list(manifest.image_shape), manifest.num_classes
    models = build_models(cfg, manifest)
    if state["models"] is not None:
        for name, module in models.items():
            module.load_state_dict(state["models"][name])
    for module in models.values():
        module.to(ctx.device)
    wrapped = {name: ctx.wrap_model(module) for name, module in models.items()}
    ledger = Ledger.from_dict(state["ledger"])
    evaluator = Evaluator(cfg, manifest, ctx)
    progress = Progress(ctx, len(manifest.tasks), phase_plan(cfg))
    factory = replay_factory or (lambda dec, led: InlineReplay(dec, led, cfg.codes, ctx.device))
    if state["task"] == len(manifest.tasks):
        ctx.info(f"run already complete ({len(ledger.tasks)} tasks): nothing to train")
    elif state["task"] > 0 or state["cursor"] > 0:
        ctx.info(f"resuming at task {state['task'] + 1}/{len(manifest.tasks)}, "
                 f"epoch {state['cursor'] + 1} of the task ({len(ledger.tasks)} tasks done)")
    while state["task"] < len(manifest.tasks):
        run = TaskRun(cfg, ctx, models, wrapped, state, manifest.tasks[state["task"]], ledger,
                      factory)
        ctx.info(f"task {run.t + 1}/{len(manifest.tasks)} starts: classes {run.shards.classes}, "
                 f"indices {run.shards.first_index}..{run.shards.last_index}, "
                 f"{len(run.index)} samples on this worker, {ctx.world_size} worker(s)")
        _train_task(run, progress)
        ledger.add(TaskRecord(run.t, run.shards.first_index, run.shards.last_index,
                              tuple(run.shards.classes)))
        state["ledger"] = ledger.to_dict()
        metrics = evaluator.after_task(run.t, models, ledger, state)
        state["history"]["task_seconds"].append(time.time() - run.started)
        end_task(state)
        state["models"] = {n: copy.deepcopy(m.state_dict()) for n, m in models.items()}
        ctx.save(state if ctx.is_main else None, metrics)
    return state


def _train_task(run: TaskRun, progress: Progress) -> None:
    cfg, ctx, state, models, wrapped = run.cfg, run.ctx, run.state, run.models, run.wrapped
    plan = phase_plan(cfg)
    n_assign_end = cfg.autoencoder.warmup_epochs + cfg.autoencoder.assignment_epochs
    opt, opt_phase = None, None
    inputs = labels = None
    for position in range(state["cursor"], len(plan)):
        phase, epoch = plan[position]
        if phase != opt_phase:
            opt = _optimizer(cfg, phase, models)
            if state.get("optim", {}).get("phase") == phase:
                opt.load_state_dict(state["optim"]["state"])
            opt_phase = phase
        gen = torch.Generator().manual_seed(derived_seed(cfg.seed, run.t, phase, epoch, ctx.rank))
        torch.manual_seed(derived_seed(cfg.seed, run.t, phase, epoch, ctx.rank, "torch"))
        tick = time.time()
        if phase in ("warmup", "assign"):
            batch = cfg.autoencoder.batch_size
            steps = run.steps(run.shards.size, batch)
            m = ae.encoder_epoch(wrapped["encoder"], wrapped["decoder"], opt, run.task,
                                 cfg.autoencoder, cfg.codes, run.ledger, run.frozen_decoder, gen,
                                 steps, run.local(batch), assign=phase == "assign")
        elif phase == "decoder":
            batch = cfg.autoencoder.batch_size
            per_epoch = cfg.autoencoder.decoder_samples_per_epoch or 2 * run.shards.size
            steps = run.steps(per_epoch, batch)
            m = ae.decoder_epoch(wrapped["decoder"], opt, run.task, run.mapping, cfg.autoencoder,
                                 cfg.codes, run.ledger, run.frozen_decoder, gen, steps,
                                 run.local(batch))
        else:
            if inputs is None:
                inputs, labels = _classifier_inputs(run)
            n_past = clf.past_per_batch(cfg.classifier, run.t)
            batch = cfg.classifier.batch_size + n_past
            # From the global task size, so every rank takes the same number of steps.
            copies = 2 if cfg.classifier.mix_real_inputs and cfg.classifier.ae_processed_inputs else 1
            steps = run.steps(run.shards.size * copies, cfg.classifier.batch_size)
            replay: ReplaySource | None = (run.replay_factory(models["decoder"], run.ledger)
                                           if run.t > 0 else None)
            m = clf.classifier_epoch(wrapped["classifier"], opt, inputs, labels,
                                     cfg.classifier, seen_mask(run, True), seen_mask(run, False),
                                     run.frozen_classifier, replay, run.local(n_past), gen, steps,
                                     run.local(cfg.classifier.batch_size))
        samples = steps * batch
        loss = ctx.mean(m["loss"])
        progress.epoch(run.t, phase, epoch, loss, samples, time.time() - tick)
        if position + 1 == n_assign_end:
            _freeze(run)
        state["cursor"] = position + 1
        state.setdefault("phase_metrics", []).append({"phase": phase, "epoch": epoch, **m})
        if _checkpoint_due(cfg, plan, position):
            _save_mid_task(run, opt, phase)


def seen_mask(run: TaskRun, include_current: bool) -> torch.Tensor:
    """Classes the single head may score: those learnt before (and this task's)."""
    classes = list(run.ledger.classes)
    if include_current:
        classes += list(run.shards.classes)
    n = run.models["classifier"].head[-1].out_features
    return clf.class_mask(classes, n, run.ctx.device)


def _optimizer(cfg: BinPlayConfig, phase: str, models: dict[str, nn.Module]):
    if phase in ("warmup", "assign"):
        params = list(models["encoder"].parameters()) + list(models["decoder"].parameters())
        return torch.optim.Adam(params, lr=cfg.autoencoder.lr)
    if phase == "decoder":
        return torch.optim.Adam(models["decoder"].parameters(), lr=cfg.autoencoder.decoder_lr)
    return torch.optim.Adam(models["classifier"].parameters(), lr=cfg.classifier.lr)


def _freeze(run: TaskRun) -> None:
    """Fix image -> code for the rest of the task; record the fidelity probe (rank 0)."""
    gen = torch.Generator().manual_seed(derived_seed(run.cfg.seed, run.t, "freeze", run.ctx.rank))
    run.mapping, agreement = ae.freeze_assignment(run.models["encoder"], run.task, gen)
    agreement = run.ctx.mean(agreement)
    # Stream indices of the assigned codes: a permutation of K_t..N_t over all ranks.
    run.state["mapping"] = run.ctx.gather(run.index[run.mapping.cpu()])
    run.state["history"]["sign_agreement"].append(agreement)
    run.ctx.info(f"task {run.t + 1}: code mapping frozen, encoder sign agreement "
                 f"{100 * agreement:.1f}% of bits (50% = random)")
    if run.ctx.is_main:
        n = min(run.cfg.run.fidelity_samples, len(run.index))
        rows = torch.randperm(len(run.index), generator=gen)[:n]
        run.state["probes"][run.t] = {"code_index": run.index[run.mapping[rows]].tolist(),
                                      "stream_index": run.index[rows].tolist()}


@torch.no_grad()
def _classifier_inputs(run: TaskRun) -> tuple[torch.Tensor, torch.Tensor]:
    """Current images as the classifier sees them: decoded from their codes (default),
    real, or both; with their labels."""
    if not run.cfg.classifier.ae_processed_inputs:
        return run.task.images, run.labels
    decoder = run.models["decoder"]
    decoder.eval()
    out = torch.cat([decoder(run.task.codes[run.mapping[s:s + 1024]])
                     for s in range(0, len(run.mapping), 1024)])
    decoder.train()
    if run.cfg.classifier.mix_real_inputs:
        return torch.cat([out, run.task.images]), torch.cat([run.labels, run.labels])
    return out, run.labels


def _checkpoint_due(cfg: BinPlayConfig, plan: list[tuple[str, int]], position: int) -> bool:
    """Every k epochs, and where losing work costs most: after the mapping is frozen and
    after the decoder phase. The task's last epoch is covered by the task-end checkpoint."""
    if position + 1 == len(plan):
        return False
    phase, nxt = plan[position][0], plan[position + 1][0]
    phase_end = phase != nxt and phase in ("assign", "decoder")
    return phase_end or (position + 1) % cfg.ray.checkpoint_every_epochs == 0


def _save_mid_task(run: TaskRun, opt, phase: str) -> None:
    state = run.state
    state["models"] = {n: copy.deepcopy(m.state_dict()) for n, m in run.models.items()}
    state["optim"] = {"phase": phase, "state": copy.deepcopy(opt.state_dict())}
    state["world_size"] = run.ctx.world_size
    state["task_elapsed"] = time.time() - run.started
    run.ctx.save(state if run.ctx.is_main else None,
                 {"task": run.t, "cursor": state["cursor"], "phase": phase, "checkpoint": "mid"})
