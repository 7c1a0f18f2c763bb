"""One progress line per epoch: task, phase, epoch, loss, seconds, samples/s, replay wait, ETA."""

from __future__ import annotations

import time
from collections import defaultdict

from binplay.context import TrainContext
from binplay.tracking import Tracker


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    def __init__(self, ctx: TrainContext, num_tasks: int, plan: list[tuple[str, int]],
                 tracker: Tracker | None = None):
        self.ctx, self.num_tasks, self.plan = ctx, num_tasks, plan
        self.tracker = tracker or Tracker()
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.started = time.time()

    def _eta(self, task: int, phase: str, epoch: int) -> float:
        """Remaining epochs of this run, each at the mean time its phase has taken so far."""
        mean = {p: sum(v) / len(v) for p, v in self.seconds.items() if v}
        fallback = sum(mean.values()) / len(mean) if mean else 0.0
        pos = self.plan.index((phase, epoch))
        left = self.plan[pos + 1:] + self.plan * (self.num_tasks - task - 1)
        return sum(mean.get(p, fallback) for p, _ in left)

    def epoch(self, task: int, phase: str, epoch: int, loss: float, samples: int,
              seconds: float, replay_wait: float | None = None) -> None:
        """``replay_wait``: seconds the trainer waited for rehearsal batches this epoch
        (decoding them, inline; for the actors' results otherwise)."""
        self.seconds[phase].append(seconds)
        total = sum(1 for p, _ in self.plan if p == phase)
        rate = samples / max(seconds, 1e-9)
        # The tracker's step: the epoch's position in the run (tasks x epochs per task).
        step = task * len(self.plan) + self.plan.index((phase, epoch)) + 1
        self.tracker.epoch(step, phase, loss, rate, seconds, replay_wait)
        wait = "" if replay_wait is None else f" | replay wait {100 * replay_wait / max(seconds, 1e-9):3.0f}%"
        self.ctx.info(
            f"task {task + 1}/{self.num_tasks} | {phase:<10} | epoch {epoch + 1:>3}/{total:<3} | "
            f"loss {loss:.4f} | {seconds:7.2f} s | {rate:8.0f} samples/s{wait} | "
            f"ETA {_clock(self._eta(task, phase, epoch))}"
        )
