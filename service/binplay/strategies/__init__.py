"""Continual-learning strategies, selected by the config's ``strategy`` field."""

from __future__ import annotations

from binplay.config import BinPlayConfig
from binplay.strategies.base import Memory, PastBatch, Strategy
from binplay.strategies.binplay import BinPlayStrategy
from binplay.strategies.derpp import DerppStrategy
from binplay.strategies.dgr import GenerativeReplayStrategy
from binplay.strategies.er import ReplayBufferStrategy
from binplay.strategies.er_ace import ErAceStrategy
from binplay.strategies.finetune import FinetuneStrategy
from binplay.strategies.joint import JointStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    "binplay": BinPlayStrategy,
    "finetune": FinetuneStrategy,
    "joint": JointStrategy,
    "er": ReplayBufferStrategy,
    "dgr": GenerativeReplayStrategy,
    "derpp": DerppStrategy,
    "er_ace": ErAceStrategy,
}


def make_strategy(cfg: BinPlayConfig) -> Strategy:
    return STRATEGIES[cfg.strategy](cfg)


__all__ = ["STRATEGIES", "Memory", "PastBatch", "Strategy", "make_strategy"]
