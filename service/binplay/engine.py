"""The class-incremental loop: every task, every phase, in one process or one Ray worker.

A task is a fixed list of epochs: the strategy's own phases (BinPlay: warm-up,
assignment, decoder; DGR: its VAE), then the classifier's. The state's ``cursor``
counts the epochs done, so a resumed run redoes only the epoch in flight. Randomness
is derived from (seed, task, phase, epoch, rank), so a resumed epoch draws what the
interrupted one drew.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from binplay.config import BinPlayConfig
from binplay.context import TrainContext
from binplay.data.stream import StreamManifest, TaskShards
from binplay.errors import TrainingFailed
from binplay.evaluation import Evaluator
from binplay.ledger import Ledger, TaskRecord
from binplay.memory import classifier_bytes
from binplay.models.build import load_weights
from binplay.progress import Progress
from binplay.replay import InlineReplay, ReplayFeed, ReplayJob, ReplayPlan, ReplaySource
from binplay.replay.generate import frozen_copy
from binplay.run_models import build_models
from binplay.scoring import class_mask
from binplay.seeding import derived_seed
from binplay.state import check_resume_workers, check_state, end_task, fresh_state
from binplay.strategies import Strategy, make_strategy
from binplay.tracking import open_tracker


def phase_plan(cfg: BinPlayConfig, strategy: Strategy | None = None) -> list[tuple[str, int]]:
    """(phase, epoch-in-phase) for every epoch of one task, in order."""
    strategy = strategy or make_strategy(cfg)
    return strategy.phases() + [("classifier", e) for e in range(strategy.classifier_config().epochs)]


class TaskRun:
    """Working state of one task on one worker (dropped when the task ends)."""

    def __init__(self, cfg: BinPlayConfig, ctx: TrainContext, manifest: StreamManifest,
                 models: dict[str, nn.Module], wrapped: dict[str, nn.Module],
                 state: dict[str, Any], ledger: Ledger, snapshot: tuple[str, ...],
                 source: ReplaySource):
        self.cfg, self.ctx, self.manifest = cfg, ctx, manifest
        self.source, self.bound_phase = source, None
        self.feeds: list[ReplayFeed] = []
        self.models, self.wrapped, self.state, self.ledger = models, wrapped, state, ledger
        self.shards: TaskShards = manifest.tasks[state["task"]]
        self.t = self.shards.task_id
        index, images, labels = ctx.load_task(self.shards)
        # Negative indices: samples the classifier reads beyond the memorised ones
        # (classifier.unmemorised_inputs); they take no code and no part in the ledger.
        indexed = index > 0
        self.index, self.labels = index[indexed], labels[indexed].to(ctx.device)
        self.images = images[indexed].to(ctx.device).float() / 255.0
        self.unmemorised = (images[~indexed].to(ctx.device).float() / 255.0,
                            labels[~indexed].to(ctx.device))
        self.fresh = state.get("snapshots") is None
        if self.fresh:  # task start: the pre-task classifier (and generator), frozen
            state["snapshots"] = {name: copy.deepcopy(models[name].state_dict())
                                  for name in ("classifier", *snapshot)}
        self.frozen: dict[str, nn.Module] = {} if self.t == 0 else {
            name: frozen_copy(models[name], weights) for name, weights in state["snapshots"].items()}
        # Seconds already spent on this task before a resume count towards its time.
        self.started = time.time() - state.get("task_elapsed", 0.0)

    def steps(self, per_epoch: int, batch: int) -> int:
        """Steps per epoch, the same on every rank (DDP needs it): epoch size / global batch."""
        return max(1, -(-per_epoch // batch))

    def local(self, global_batch: int) -> int:
        """This worker's share of a global batch: N workers take the steps one process would."""
        return -(-global_batch // self.ctx.world_size)

    def replay_feed(self, phase: str, epoch: int, steps: int, job: Callable[[], ReplayJob],
                    count: int = 0, batch: int = 0, share: float | None = None) -> ReplayFeed:
        """This epoch's rehearsal batches (see binplay.replay.ReplayPlan for count/batch/share).

        The source is bound to ``job()`` once per phase: the frozen weights a phase rehearses
        from do not change while it runs."""
        if self.bound_phase != phase:
            self.source.bind(job())
            self.bound_phase = phase
        plan = ReplayPlan(self.ledger, (self.cfg.seed, self.t, phase, epoch, self.ctx.rank),
                          count=count, batch=batch, share=share)
        feed = ReplayFeed(self.source, plan, steps, self.cfg.replay.in_flight, self.ctx.device,
                          self.cfg.replay.steps_per_request)
        self.feeds.append(feed)
        return feed

    def replay_metrics(self) -> dict[str, float]:
        """Seconds waited for replay and samples rehearsed since the last call."""
        feeds, self.feeds = self.feeds, []
        if not feeds:
            return {}
        return {k: sum(f.metrics()[k] for f in feeds) for k in feeds[0].metrics()}

    def seen(self, include_current: bool) -> torch.Tensor:
        """Classes the single head may score: those learnt before (and this task's)."""
        classes = list(self.ledger.classes)
        if include_current:
            classes += list(self.shards.classes)
        n = self.models["classifier"].head[-1].out_features
        return class_mask(classes, n, self.ctx.device)


def run_stream(cfg: BinPlayConfig, manifest: StreamManifest, ctx: TrainContext) -> dict[str, Any]:
    """Train on every task of the stream; returns the final state (rank 0's is complete)."""
    if ctx.resume_state is not None:
        state = ctx.resume_state
        check_state(state, cfg, "resume checkpoint")
        check_resume_workers(state, ctx.world_size, "resume checkpoint")
    else:
        state = fresh_state(cfg)
    state["image_shape"], state["num_classes"] = list(manifest.image_shape), manifest.num_classes
    strategy = make_strategy(cfg)
    models = build_models(cfg, manifest.image_shape, manifest.num_classes)
    if state["models"] is not None:
        load_weights(models, state["models"])
    for module in models.values():
        module.to(ctx.device)
    wrapped = {name: ctx.wrap_model(module) for name, module in models.items()}
    source = ctx.replay or InlineReplay(ctx.device)
    ledger = Ledger.from_dict(state["ledger"])
    evaluator = Evaluator(cfg, manifest, ctx)
    tracker = open_tracker(cfg, ctx.is_main, ctx.track_root)
    progress = Progress(ctx, len(manifest.tasks), phase_plan(cfg, strategy), tracker)
    if state["task"] == len(manifest.tasks):
        ctx.info(f"run already complete ({len(ledger.tasks)} tasks): nothing to train")
    elif state["cursor"] > 0:
        ctx.info(f"resuming task {state['task'] + 1}/{len(manifest.tasks)} at epoch "
                 f"{state['cursor'] + 1} of the task ({len(ledger.tasks)} tasks done)")
    elif state["task"] > 0:
        ctx.info(f"continuing after {len(ledger.tasks)} learnt task(s): task "
                 f"{state['task'] + 1}/{len(manifest.tasks)} is next")
    while state["task"] < len(manifest.tasks):
        run = TaskRun(cfg, ctx, manifest, models, wrapped, state, ledger, strategy.snapshot,
                      source)
        strategy.begin_task(run, run.fresh)
        ctx.info(f"task {run.t + 1}/{len(manifest.tasks)} starts ({strategy.name}): classes "
                 f"{run.shards.classes}, indices {run.shards.first_index}..{run.shards.last_index}, "
                 f"{len(run.index)} samples on this worker, {ctx.world_size} worker(s)")
        _train_task(run, strategy, progress)
        strategy.end_task(run)
        ledger.add(TaskRecord(run.t, run.shards.first_index, run.shards.last_index,
                              tuple(run.shards.classes),
                              tuple(tuple(r) for r in run.shards.class_ranges)))
        state["ledger"] = ledger.to_dict()
        evaluated = time.time()
        metrics = evaluator.after_task(run.t, models, ledger, state)
        state["history"]["task_seconds"].append(time.time() - run.started)
        state["history"].setdefault("phase_seconds", []).append(
            {**phase_seconds(state.get("phase_metrics", [])), "evaluate": time.time() - evaluated})
        # What crosses into the next task, as stored (binplay.memory counts exactly this).
        state["models"] = strategy.carried_models(models, state)
        end_task(state)
        # Tracked (and handed to Tune with the task's report); read only, nothing changes.
        metrics = {**metrics, **tracker.task_end(
            run.t, metrics, strategy.memory(state, manifest.image_shape).bytes,
            classifier_bytes(state))}
        ctx.save(state if ctx.is_main else None, metrics)
    tracker.close()
    return state


def _train_task(run: TaskRun, strategy: Strategy, progress: Progress) -> None:
    cfg, ctx, state = run.cfg, run.ctx, run.state
    ccfg = strategy.classifier_config()
    plan = phase_plan(cfg, strategy)
    opt, opt_phase = None, None
    current = None
    for position in range(state["cursor"], len(plan)):
        phase, epoch = plan[position]
        if phase != opt_phase:
            opt = (torch.optim.Adam(run.models["classifier"].parameters(), lr=ccfg.lr)
                   if phase == "classifier" else strategy.optimizer(run, phase))
            if state.get("optim", {}).get("phase") == phase:
                opt.load_state_dict(state["optim"]["state"])
            opt_phase = phase
        gen = torch.Generator().manual_seed(derived_seed(cfg.seed, run.t, phase, epoch, ctx.rank))
        torch.manual_seed(derived_seed(cfg.seed, run.t, phase, epoch, ctx.rank, "torch"))
        tick = time.time()
        if phase == "classifier":
            if current is None:
                current = strategy.classifier_inputs(run)
            m, samples = strategy.classifier_epoch(run, opt, current, epoch, gen)
        else:
            m, samples = strategy.epoch(run, phase, epoch, opt, gen)
        m = {**m, **run.replay_metrics()}
        loss = ctx.mean(m["loss"])
        if not math.isfinite(loss):  # every rank sees the same mean: all stop together
            raise TrainingFailed(f"task {run.t + 1}, {phase} phase, epoch {epoch + 1}: the loss is "
                                 f"{loss} (training diverged; the usual cause is a learning rate "
                                 f"too high for this phase)")
        progress.epoch(run.t, phase, epoch, loss, samples, time.time() - tick,
                       m.get("replay_wait_s"))
        strategy.after_epoch(run, phase, epoch)
        state["cursor"] = position + 1
        state.setdefault("phase_metrics", []).append({"phase": phase, "epoch": epoch, **m,
                                                      "seconds": time.time() - tick})
        if _checkpoint_due(cfg, plan, position, strategy.checkpoint_after):
            _save_mid_task(run, opt, phase)


def phase_seconds(epochs: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds of each phase of a task, summed over its epochs (resumed epochs included)."""
    out: dict[str, float] = {}
    for m in epochs:
        out[m["phase"]] = out.get(m["phase"], 0.0) + float(m.get("seconds", 0.0))
    return out


def _checkpoint_due(cfg: BinPlayConfig, plan: list[tuple[str, int]], position: int,
                    after: tuple[str, ...]) -> bool:
    """Every k epochs, and where losing work costs most (BinPlay: after the mapping is
    frozen and after the decoder phase). The task's last epoch is covered by the task-end
    checkpoint."""
    if position + 1 == len(plan):
        return False
    phase, nxt = plan[position][0], plan[position + 1][0]
    phase_end = phase != nxt and phase in after
    return phase_end or (position + 1) % cfg.ray.checkpoint_every_epochs == 0


def _save_mid_task(run: TaskRun, opt, phase: str) -> None:
    state = run.state
    state["models"] = {n: copy.deepcopy(m.state_dict()) for n, m in run.models.items()}
    state["optim"] = {"phase": phase, "state": copy.deepcopy(opt.state_dict())}
    state["world_size"] = run.ctx.world_size
    state["task_elapsed"] = time.time() - run.started
    run.ctx.save(state if run.ctx.is_main else None,
                 {"task": run.t, "cursor": state["cursor"], "phase": phase, "checkpoint": "mid"})
