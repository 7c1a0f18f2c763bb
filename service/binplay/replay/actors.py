"""Ray actors that decode rehearsal batches while the training worker trains.

Each training worker starts its own pool of ``replay.actors`` actors, outside its
placement group (inside a Tune trial an actor created in the group waits forever,
docs/RAY-NOTES.md). Per phase, the job's weights go to the object store once
(``ray.put``); every request names that object, and an actor rebuilds its models only
when the name changes, so a restarted actor reloads them by itself. A request whose
actor died is re-issued to the next actor; only when every attempt fails does the
run stop, with one line.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import ray
import torch
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from binplay.config import ConfigError, ReplayConfig
from binplay.errors import TrainingFailed
from binplay.replay.generate import ReplayBatch, ReplayJob, generate


class ReplayError(ConfigError):
    """The replay actors could not be started or kept alive."""


def raise_niceness(target: int) -> int:
    """Raise this process's niceness to ``target`` (never lower it: that needs privileges);
    returns the niceness it runs at. ``os.nice`` adds, so a Ray worker already at 15 would
    otherwise end at 15 + target."""
    current = os.nice(0)
    return os.nice(target - current) if target > current else current


class ReplayWorker:
    """One actor: indices in, rehearsal batches out, under the job it last loaded."""

    def __init__(self, threads: int, gpu: bool, nice: int = 0):
        torch.set_num_threads(threads)
        raise_niceness(nice)  # yield the cores to the trainer it shares them with
        # Judged here, not by the trainer: Ray shows an actor the GPU it booked, and hides
        # every GPU from a CPU-only Train worker on the same node.
        self.device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
        self.key: int | None = None
        self.job: ReplayJob | None = None

    def ready(self) -> tuple[int, str]:
        return os.getpid(), self.device

    def generate(self, key: int, payload: list[Any], indices: torch.Tensor) -> ReplayBatch:
        if key != self.key:  # a new phase, or this actor was restarted since
            self.job = ReplayJob.from_payload(ray.get(payload[0]), self.device)
            self.key = key
        return generate(self.job, indices, self.device).to("cpu")


class ActorReplay:
    """A replay source backed by Ray actors (``replay.mode: actors``)."""

    def __init__(self, cfg: ReplayConfig, log=print):
        self.cfg, self.log = cfg, log
        remote = ray.remote(ReplayWorker).options(
            num_cpus=cfg.cpus_per_actor, num_gpus=cfg.gpus_per_actor,
            max_restarts=cfg.max_restarts, max_task_retries=cfg.max_restarts,
            # Outside any placement group: a Train worker's or a Tune trial's would capture it.
            scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None))
        threads = max(1, int(cfg.cpus_per_actor))
        self.actors = [remote.remote(threads, cfg.gpus_per_actor > 0, cfg.nice)
                       for _ in range(cfg.actors)]
        started = time.time()
        try:
            ready = ray.get([a.ready.remote() for a in self.actors], timeout=cfg.start_timeout_s)
        except GetTimeoutError:
            self.close()
            free = ray.available_resources().get("CPU", 0.0)
            raise ReplayError(
                f"replay.mode=actors: {cfg.actors} actor(s) at {cfg.cpus_per_actor:g} CPU / "
                f"{cfg.gpus_per_actor:g} GPU did not start within {cfg.start_timeout_s:g} s "
                f"({free:g} CPU free): lower replay.actors or replay.cpus_per_actor, or use "
                f"replay.mode=inline") from None
        self.pids = [pid for pid, _ in ready]
        devices = sorted({device for _, device in ready})
        self.log(f"replay: {cfg.actors} actor(s) ready in {time.time() - started:.1f}s "
                 f"({cfg.cpus_per_actor:g} CPU, {cfg.gpus_per_actor:g} GPU each; decoding on "
                 f"{'/'.join(devices)}; pids {', '.join(map(str, self.pids))})")
        self.turn = itertools.cycle(range(len(self.actors)))
        self.key = 0
        self.payload: list[Any] = []

    def bind(self, job: ReplayJob) -> None:
        self.key += 1
        self.payload = [ray.put(job.to_payload())]  # in a list: actors fetch it themselves

    def submit(self, indices: torch.Tensor) -> tuple[Any, torch.Tensor, int]:
        actor = next(self.turn)
        ref = self.actors[actor].generate.remote(self.key, self.payload, indices)
        return ref, indices, actor

    def collect(self, handle: tuple[Any, torch.Tensor, int]) -> ReplayBatch:
        ref, indices, actor = handle
        attempts = len(self.actors) * (self.cfg.max_restarts + 1)
        for attempt in range(attempts):
            try:
                return ray.get(ref)
            except RayActorError as exc:
                if attempt + 1 == attempts:
                    raise TrainingFailed(f"replay actors failed {attempts} times in a row "
                                         f"(last: {type(exc).__name__})") from None
                self.log(f"replay: actor {actor} unavailable ({type(exc).__name__}); "
                         f"request re-issued")
                actor = (actor + 1) % len(self.actors)
                ref = self.actors[actor].generate.remote(self.key, self.payload, indices)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
