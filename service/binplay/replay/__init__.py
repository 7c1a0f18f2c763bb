"""Rehearsal: past samples regenerated from their indices (docs/ALGORITHM.md, "Replay").

The trainer draws which past indices each step rehearses (``ReplayPlan``); a source
turns indices into batches under one phase's frozen weights (``ReplayJob``), in the
training process (``InlineReplay``) or in Ray actors (``replay.actors``, imported only
when ``replay.mode: actors``); ``ReplayFeed`` keeps requests in flight. The codes are a
pure function of the indices, so every source produces the same batches.
"""

from __future__ import annotations

import torch

from binplay.config import BinPlayConfig
from binplay.replay.feed import InlineReplay, ReplayFeed, ReplaySource
from binplay.replay.generate import ReplayBatch, ReplayJob, codes_for, decode_indices, generate
from binplay.replay.plan import ReplayPlan

__all__ = ["InlineReplay", "ReplayBatch", "ReplayFeed", "ReplayJob", "ReplayPlan", "ReplaySource",
           "codes_for", "decode_indices", "generate", "make_source"]


def make_source(cfg: BinPlayConfig, device: torch.device | str = "cpu", log=print) -> ReplaySource:
    """The source ``replay.mode`` names; the in-process loop and the Ray worker both call
    this, so they pick it the same way. Actors need a connected Ray: the caller connects it
    (``ray_train.cluster.ensure_ray``), so replay stays below the Ray Train layer."""
    if not cfg.uses_replay_actors:
        return InlineReplay(device)
    import ray

    from binplay.replay.actors import ActorReplay

    if not ray.is_initialized():
        raise RuntimeError("replay.mode: actors needs a connected Ray (ensure_ray first)")
    return ActorReplay(cfg.replay, log=log)
