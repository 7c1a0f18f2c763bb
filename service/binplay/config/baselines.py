"""The sections of the buffer and generative-replay baselines, each read by its strategies only
(``BinPlayConfig`` declares them with their readers).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from binplay.config.fields import MemoryBudget, _check_budget, _Strict, setting


class ErConfig(_Strict):
    """Experience replay (Chaudhry et al. 2019; Mammoth's and Avalanche's ER): a buffer of raw
    uint8 images and labels, and the classifier settings ER trains with."""

    memory_mb: MemoryBudget = setting(
        "auto", description="buffer bytes (images + one byte per label); auto = the bytes BinPlay "
        "carries between tasks under this config (binplay.memory), so the two compare at "
        "equal memory", fixed=True)
    replay_batch: int | Literal["current", "balanced"] = setting(
        "current", description="past samples per step: current = as many as the current batch "
        "(standard ER); balanced = BinPlay's schedule, t past tasks : 1 current (grows with t); "
        "or a number", neutral="balanced")
    sampling: Literal["class_balanced", "reservoir"] = setting(
        "class_balanced", description="how the buffer is filled: every class seen keeps an equal "
        "share, or reservoir sampling over the stream (Vitter's algorithm R)",
        neutral="class_balanced")
    epochs: int | None = setting(
        None, ge=0, description="classifier epochs per task; None = classifier.epochs", neutral=None)
    lr: float | None = setting(
        None, gt=0, description="classifier learning rate; None = classifier.lr", neutral=None)
    batch_size: int | None = setting(None, gt=0, description="current samples per step; None = "
                                   "classifier.batch_size", neutral=None)
    _budget = field_validator("memory_mb")(_check_budget)

    @field_validator("replay_batch")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v <= 0:
            raise ValueError("must be > 0, 'current' or 'balanced'")
        return v


class DerppConfig(_Strict):
    """DER++ (Buzzega et al., NeurIPS 2020; Mammoth's ``models/derpp.py``): a buffer of raw
    images, labels and the logits the classifier gave them when they were stored."""

    memory_mb: MemoryBudget = setting(
        "auto", description="buffer bytes (uint8 images, one-byte labels and the logits at "
        "logits_dtype); auto = what BinPlay carries under this config", fixed=True)
    alpha: float = Field(0.1, ge=0, description="weight of the MSE between the logits of "
                         "buffered samples and their stored logits (dark knowledge)")
    beta: float = Field(0.5, ge=0, description="weight of the cross-entropy of buffered samples "
                        "on their labels (the '++')")
    replay_batch: int | None = Field(None, gt=0, description="buffered samples in each of the "
                                     "two replay terms per step; None = the current batch size")
    sampling: Literal["reservoir", "class_balanced"] = Field(
        "class_balanced", description="how the buffer is filled at each task's end: every class "
        "seen keeps an equal share (as ER's default here, so the two differ only in the loss), "
        "or reservoir sampling over the stream (as published, where samples enter while "
        "training; at task ends it measured 84.5 against 91.7, docs/RESULTS.md)")
    logits_dtype: Literal["float32", "float16"] = setting(
        "float32", description="precision the stored logits are kept (and counted) in", fixed=True)
    epochs: int | None = Field(None, ge=0, description="classifier epochs per task; None = classifier.epochs")
    lr: float | None = Field(None, gt=0, description="classifier learning rate; None = classifier.lr")
    batch_size: int | None = Field(None, gt=0, description="current samples per step; None = "
                                   "classifier.batch_size")
    _budget = field_validator("memory_mb")(_check_budget)


class DgrConfig(_Strict):
    """Deep generative replay (Shin et al. 2017): a VAE with self-rehearsal, soft targets."""

    memory_mb: MemoryBudget = setting(
        "auto", description="bytes of the whole VAE as carried between tasks (encoder and "
        "decoder: both keep training across tasks); auto = what BinPlay carries under this "
        "config (binplay.memory)", fixed=True)
    latent_dim: int = setting(32, gt=0, fixed=True)
    epochs: int = Field(
        10, ge=0, description="VAE epochs per task; published DGR trains its generator about "
        "5,000 iterations a task (van de Ven et al. 2020): on split-MNIST (~12,000 images a task, "
        "batch 128) that is ~50 epochs")
    batch_size: int = Field(128, gt=0)
    lr: float = Field(1e-3, gt=0)

    _budget = field_validator("memory_mb")(_check_budget)
