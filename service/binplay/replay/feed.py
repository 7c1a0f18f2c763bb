"""Replay sources and the per-epoch feed that keeps requests in flight.

A source turns indices into batches under the job it is bound to; it does not draw
anything. ``InlineReplay`` decodes in the calling process when a batch is collected;
``binplay.replay.actors.ActorReplay`` hands requests to Ray actors as soon as they are
submitted. ``ReplayFeed`` walks one epoch's steps, keeping ``in_flight`` requests
submitted ahead of the step being trained, and counts the time the trainer waits.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Protocol

import torch

from binplay.replay.generate import ReplayBatch, ReplayJob, generate
from binplay.replay.plan import ReplayPlan


class ReplaySource(Protocol):
    def bind(self, job: ReplayJob) -> None:
        """Use ``job``'s frozen weights for every request from now on (once per phase)."""

    def submit(self, indices: torch.Tensor) -> Any:
        """Start producing the batch of ``indices``; returns a handle for ``collect``."""

    def collect(self, handle: Any) -> ReplayBatch:
        """The batch of a submitted request (blocks until it is ready)."""

    def close(self) -> None:
        """Release what the source holds (actors)."""


class InlineReplay:
    """Decodes in the training process, at collect time (nothing is held in advance)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = device
        self.job: ReplayJob | None = None

    def bind(self, job: ReplayJob) -> None:
        self.job = job

    def submit(self, indices: torch.Tensor) -> torch.Tensor:
        return indices

    def collect(self, handle: torch.Tensor) -> ReplayBatch:
        if self.job is None:
            raise RuntimeError("replay source used before a job was bound")
        return generate(self.job, handle, self.device)

    def close(self) -> None:
        self.job = None


class ReplayFeed:
    """One epoch of rehearsal batches: ``batch(step)`` for steps 0, 1, ... in order.

    A request carries the indices of ``steps_per_request`` consecutive steps, decoded as one
    batch and split again: fewer, larger requests where each one's overhead (a Ray call, a
    small GPU kernel) outweighs its work. Both sources see the same requests, so inline and
    actors still compute the same tensors."""

    def __init__(self, source: ReplaySource, plan: ReplayPlan, steps: int, in_flight: int,
                 device: torch.device | str = "cpu", steps_per_request: int = 1):
        self.source, self.plan, self.steps = source, plan, steps
        self.in_flight, self.device = max(1, in_flight), device
        self.per_request = max(1, steps_per_request)
        # Submitted requests, oldest first: (first step, handle or None, indices per step).
        self.pending: deque[tuple[int, Any, list[int]]] = deque()
        self.ready: dict[int, ReplayBatch | None] = {}  # collected, not yet trained on
        self.next_step = 0  # the first step not yet submitted
        self.wait_s = 0.0  # time the trainer spent blocked on replay
        self.samples = 0

    def _fill(self, through: int) -> None:
        """Submit requests until every step up to ``through`` has been asked for."""
        while self.next_step < min(self.steps, through + 1):
            first = self.next_step
            parts = [self.plan.indices(s)
                     for s in range(first, min(self.steps, first + self.per_request))]
            indices = torch.cat(parts)
            handle = self.source.submit(indices) if len(indices) else None
            self.pending.append((first, handle, [len(p) for p in parts]))
            self.next_step = first + len(parts)

    def _collect(self, first: int, handle: Any, sizes: list[int]) -> None:
        out = self.source.collect(handle).split(sizes) if handle is not None else []
        for i, size in enumerate(sizes):
            self.ready[first + i] = out[i] if size else None

    def batch(self, step: int) -> ReplayBatch | None:
        """Step ``step``'s past samples (None when it rehearses none); steps come in order."""
        tick = time.perf_counter()
        self._fill(step)
        for skipped in [s for s in self.ready if s < step]:  # steps the trainer skipped
            del self.ready[skipped]
        while step not in self.ready:
            if not self.pending or self.pending[0][0] > step:
                raise RuntimeError(f"replay feed asked for step {step} out of order")
            first, handle, sizes = self.pending.popleft()
            if first + len(sizes) > step:  # else every step of it was skipped
                self._collect(first, handle, sizes)
        out = self.ready.pop(step)
        if out is not None:
            out = out.to(self.device)
            self.samples += len(out.indices)
        # Keep k requests outstanding beyond this step's while it trains.
        self._fill(step + self.in_flight * self.per_request)
        self.wait_s += time.perf_counter() - tick
        return out

    def metrics(self) -> dict[str, float]:
        return {"replay_wait_s": self.wait_s, "replay_samples": float(self.samples)}
