"""Run configuration: pydantic models validated before anything runs.

Every model forbids unknown keys, so a typo in a YAML file or a ``--set``
override fails at load time with the dotted name of the offending field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticUndefined

from binplay.codes import check_primes


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the field."""


_UNSET: Any = object()

# The union on ``strategy``: every strategy, and the parts of the config that belong to some
# of them. This block and the strategies' registry are the only places that name strategies.
StrategyName = Literal["binplay", "finetune", "joint", "er", "dgr", "derpp", "er_ace"]
BINPLAY_ONLY = ("binplay",)  # reads reconstructions, the ledger or a memorised subset
DECODER_SIZED: StrategyName = "binplay"  # its carried bytes size the baselines' `auto` budgets
ER_READERS = ("er", "er_ace")
DERPP_READERS = ("derpp",)
DGR_READERS = ("dgr",)


def setting(default: Any = PydanticUndefined, description: str | None = None, *,
            neutral: Any = _UNSET, fixed: bool = False, readers: tuple[str, ...] | None = None,
            applies_when: dict[str, Any] | None = None, **constraints: Any) -> Any:
    """A config field and what the service reads off it (metadata, not parallel lists):

    - ``neutral``: the value that computes what runs did before the field existed. The
      fingerprint leaves the field out at that value, so older checkpoints stay valid.
    - ``fixed``: fixed by the first ``jobs.learn`` (it changes the codes or a model's shape).
    - ``readers``: the strategies that read it (None: every one). Set under another
      strategy it is refused, never applied in some other sense; a section read by some
      strategies only enters their fingerprints only.
    - ``applies_when``: sibling values under which it is read (``hidden``: the mlp preset);
      elsewhere it stays out of the fingerprint.
    """
    extra: dict[str, Any] = {}
    if neutral is not _UNSET:
        extra["neutral"] = neutral
    if fixed:
        extra["fixed"] = True
    if readers is not None:
        extra["readers"] = tuple(readers)
    if applies_when:
        extra["applies_when"] = dict(applies_when)
    return Field(default, description=description, json_schema_extra=extra or None, **constraints)


def field_meta(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The metadata ``setting`` gave a field ({} for a plain one)."""
    extra = model.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


DatasetName = Literal["mnist", "fashion_mnist", "cifar10", "parquet", "image_folder"]


class StreamConfig(_Strict):
    dataset: DatasetName = "fashion_mnist"
    data_root: str | None = Field(None, description="explicit data directory (first source tried)")
    path: str | None = Field(None, description="user data: a Parquet file or an image folder")
    test_path: str | None = Field(None, description="user data: the test split (optional)")
    tasks: list[list[int]] = Field(
        default_factory=lambda: [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]],
        description="classes of each task, in stream order",
    )
    train_per_class: int | None = Field(None, gt=0, description="subset for smoke runs")
    test_per_class: int | None = Field(None, gt=0)
    image_shape: tuple[int, int, int] | None = setting(
        None, description="(C, H, W) expected of user data; built-in datasets know theirs",
        fixed=True)
    resize: Literal["none", "crop", "pad"] = setting(
        "none", description="how user images are brought to image_shape (needed unless none): "
        "none = each must already be image_shape's H x W, else it is refused in one line; crop "
        "= scaled (aspect kept, Pillow bicubic, antialiased) to cover H x W, then the centre "
        "cut; pad = scaled to fit inside H x W, centred on black. With crop or pad, EXIF "
        "orientation is applied and image_shape's C decides the colour: 1 converts RGB to "
        "grayscale (PIL 'L'), 3 grayscale to RGB; with none, jobs.learn refuses another channel "
        "count. Deterministic: the same file gives the same pixels. The models are built for "
        "H x W: the compact and mlp autoencoders, the classifier and DGR's VAE take any H and W "
        "that are multiples of 4, the paper preset only 28x28 and 32x32", neutral="none")
    on_bad_image: Literal["error", "skip"] = setting(
        "error", description="a user image file (or Parquet row) that cannot be read or decoded: "
        "error = the job fails in one line naming it (exit 2, nothing written); skip = it is "
        "left out and the count printed (files are never changed)", neutral="error")
    shard_rows: int = Field(4096, gt=0, description="rows per Parquet shard")
    val_fraction: float = setting(
        0.1, ge=0, lt=1, description="share of each class's training samples held out as the "
        "task's validation split: stratified by class, drawn from the run seed, never trained on. "
        "Every choice (Tune, jobs.compare's best, presets) is made on it; test accuracy is only "
        "reported. 0 = no validation split", neutral=0.0)
    order: Literal["dataset", "class"] = setting(
        "dataset", description="order of a task's samples, hence of its indices: dataset order, "
        "or class after class (each class a contiguous index sub-range kept in the ledger)", fixed=True)

    @model_validator(mode="after")
    def _check(self) -> StreamConfig:
        flat = [c for task in self.tasks for c in task]
        if not self.tasks or any(not task for task in self.tasks):
            raise ValueError("tasks: every task needs at least one class")
        if len(set(flat)) != len(flat):
            raise ValueError("tasks: a class appears in two tasks (class-incremental streams)")
        if any(c < 0 for c in flat):
            raise ValueError("tasks: class ids must be >= 0")
        if self.dataset in ("parquet", "image_folder") and not self.path:
            raise ValueError(f"path: required for dataset '{self.dataset}'")
        return self

    @model_validator(mode="after")
    def _check_resize(self) -> StreamConfig:
        if self.resize != "none" and self.image_shape is None:
            raise ValueError("resize: needs image_shape, the (C, H, W) to resize user images to")
        if self.resize != "none" and self.image_shape and self.image_shape[0] not in (1, 3):
            raise ValueError(f"image_shape: {self.image_shape[0]} channels; resizing converts "
                             f"to 1 (grayscale) or 3 (RGB)")
        return self

    @property
    def num_classes(self) -> int:
        return max(c for task in self.tasks for c in task) + 1


class CodesConfig(_Strict):
    bits_per_part: int = setting(16, ge=2, le=62, description="m; capacity is 2**m samples", fixed=True)
    primes: list[int] = setting(default_factory=lambda: [3, 5, 7, 11, 13, 17, 19, 23], fixed=True)
    task_bits: int = setting(10, ge=0, le=62, description="bits of the task-id prefix (0: none)", fixed=True)
    task_prime: int = setting(29, description="prime of the task-id prefix", fixed=True)
    class_bits: int = setting(
        0, ge=0, description="one +-1 bit per class (one-hot), read from the ledger's class "
        "sub-ranges: the decoder knows each code's class (needs stream.order: class); 0 = none", fixed=True)

    @field_validator("primes")
    @classmethod
    def _odd_distinct_primes(cls, primes: list[int]) -> list[int]:
        return check_primes(primes)

    @field_validator("task_prime")
    @classmethod
    def _odd_prime(cls, prime: int) -> int:
        check_primes([prime])
        return prime

    @model_validator(mode="after")
    def _check(self) -> CodesConfig:
        if self.task_bits and self.task_prime in self.primes:
            raise ValueError("task_prime must differ from the sub-vector primes")
        return self

    @property
    def code_dim(self) -> int:
        return self.bits_per_part * len(self.primes)

    @property
    def latent_dim(self) -> int:
        return self.code_dim + self.task_bits + self.class_bits


class AutoencoderConfig(_Strict):
    preset: Literal["compact", "paper", "mlp"] = setting("compact", fixed=True)
    width: int = setting(64, gt=0, description="compact and mlp presets: base channel count",
                         fixed=True)
    hidden: int = setting(
        512, gt=0, description="mlp preset: width of the decoder's hidden FC layer",
        fixed=True, applies_when={"preset": "mlp"})
    channels: int = setting(
        128, gt=0, description="mlp preset: channels of the decoder's (H/4, W/4) feature map",
        fixed=True, applies_when={"preset": "mlp"})
    store: Literal["fp32", "bf16", "int8", "int4"] = setting(
        "fp32", description="precision the decoder is kept in between tasks. Its weights are "
        "quantised in place once the task's decoder training ends, so the frozen copy that "
        "regenerates the past IS what is stored; int8: symmetric per output channel, fp32 "
        "scales; int4: symmetric per output channel and group of 64 inputs, fp16 scales, two "
        "values a byte; biases and norm parameters stay fp32. Memory and `memory_mb: auto` count "
        "these stored bytes", neutral="fp32")
    warmup_epochs: int = Field(2, ge=0)
    assignment_epochs: int = Field(4, ge=1)
    decoder_epochs: int = Field(20, ge=0)
    decoder_samples_per_epoch: int | None = Field(
        None, gt=0,
        description="draws per decoder epoch; None = twice the current task size (cost stays "
                    "flat in N)",
    )
    decoder_current_share: float | None = Field(
        None, gt=0, le=1,
        description="share of current-task samples per decoder batch; None = indices drawn "
                    "uniformly over 1..N_t (paper), so the newest task's share falls as N grows",
    )
    samples_per_class: int | None = setting(
        None, gt=0, description="BinPlay learns (and its decoder memorises) at most this many "
        "samples per class of each task; the rest of the task is not read. None = all", readers=BINPLAY_ONLY)
    code_loss_weight: float = Field(1.0, ge=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(1e-3, gt=0)
    decoder_lr: float = Field(1e-3, gt=0)
    self_rehearsal: bool = Field(
        True, description="rehearse past codes with the frozen decoder copy (off: ablation only)"
    )
    encoder_carry: bool = setting(
        False, description="BEYOND-PAPER: keep the encoder from one task to the next (it has seen "
        "every earlier task's images, so it is counted as memory). False (the paper): the "
        "encoder is re-initialised at each task from a seed of the task and not saved past it", neutral=True)
    decoder_mode: Literal["continue", "reinit"] = Field(
        "continue", description="paper: continue training v; authors' code: reinit each task"
    )


class ClassifierConfig(_Strict):
    epochs: int = Field(6, ge=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(1e-3, gt=0)
    dropout: float = Field(0.25, ge=0, lt=1)
    ae_processed_inputs: bool = setting(True, description="pass new samples through the AE",
        readers=BINPLAY_ONLY)
    mix_real_inputs: bool = setting(
        False, description="also train on the real current images, besides their reconstructions",
        readers=BINPLAY_ONLY)
    soft_targets: bool = Field(True, description="past samples: frozen-copy softmax vs argmax")
    ledger_labels: bool = setting(
        False, description="past samples take the class of the ledger sub-range their index "
        "falls in, instead of the frozen copy's prediction (needs stream.order: class)", readers=BINPLAY_ONLY)
    unmemorised_inputs: bool = setting(
        False, description="with autoencoder.samples_per_class: also train on the current "
        "task's samples beyond that limit, as real images. They get no index, the decoder never "
        "sees them, and nothing of them outlives the task; False = they are not read",
        neutral=False, readers=BINPLAY_ONLY)
    reconstructed_share: float | None = setting(
        None, gt=0, lt=1, description="with mix_real_inputs: repeat the current reconstructions "
        "(whole copies) until they are about this share of the current inputs, so real images "
        "(the memorised and, with unmemorised_inputs, the rest) do not outnumber them and "
        "sharpness stops telling new classes from regenerated old ones; None = each once",
        neutral=None, readers=BINPLAY_ONLY)
    distill_current: float = setting(
        0.0, ge=0, description="weight of a distillation term on the current inputs: the "
        "classifier frozen before the task gives its old-class distribution (temperature 2) "
        "for each current image, and the classifier keeps it (LwF on the new data, beside "
        "the replay); 0 = off", neutral=0.0, readers=BINPLAY_ONLY)
    current_loss_classes: Literal["seen", "new", "new_on_real", "new_on_unmemorised"] = setting(
        "seen", description="classes the current samples' cross-entropy is taken over: every "
        "class seen so far; only the task's new ones (new: ER-ACE's asymmetric cross-entropy, "
        "new images never push old logits down and the replay alone draws the old/new "
        "boundary); or only the new ones for real images while reconstructions keep every "
        "class (new_on_real: sharp images stop teaching 'sharp = new', the decoded ones, like "
        "the regenerated past, still set the old/new boundary; with no reconstructions among "
        "the current inputs, as for er/finetune/joint, every seen class); or only the new ones for the "
        "unmemorised images (new_on_unmemorised, with classifier.unmemorised_inputs: the task's "
        "images beyond samples_per_class teach the new classes apart, not old from new)",
        neutral="seen", readers=BINPLAY_ONLY)
    replay_min_confidence: float = setting(
        0.0, ge=0, lt=1, description="with ledger_labels: a regenerated sample is rehearsed only "
        "if the classifier frozen before the task gives its ledger class at least this "
        "probability (regenerations that lost their class identity teach the wrong boundary); "
        "0 keeps every sample", neutral=0.0, readers=BINPLAY_ONLY)
    norm: Literal["batch", "group"] = setting(
        "batch", description="normalisation of the conv layers: batch statistics (learnt on "
        "regenerations, used on real test images) or GroupNorm (per sample, no statistics)", fixed=True)
    replay_loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    max_classes: int | None = setting(
        None, gt=0, description="outputs of the single head; None = the classes stream.tasks "
        "declares. jobs.learn fixes the head at the first learn, so later tasks may bring any "
        "class below this without reshaping it", neutral=None)
    past_fraction: float | None = Field(
        None, ge=0, lt=1,
        description="share of past samples per minibatch; None = (t)/(t+1) balanced per task",
    )


MemoryBudget = float | Literal["auto"]


def _check_budget(v: MemoryBudget) -> MemoryBudget:
    if v != "auto" and v <= 0:
        raise ValueError("must be > 0 or 'auto'")
    return v


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


class RayConfig(_Strict):
    num_workers: int = Field(1, ge=0, description="0 runs in-process without Ray")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(
        1.0, gt=0, description="GPUs each worker books with use_gpu; a fraction leaves room "
        "on the same GPU for replay actors (replay.gpus_per_actor)")
    max_failures: int = Field(2, ge=0)
    checkpoint_every_epochs: int = Field(5, ge=1)
    address: str | None = Field(None, description="cluster to join; default RAY_ADDRESS or local")


class ReplayConfig(_Strict):
    """Where rehearsal batches are decoded: in the training process, or by Ray actors.

    Both draw the same indices and produce the same batches (codes are a pure function of
    the index), so the mode is left out of the config fingerprint."""

    mode: Literal["inline", "actors"] = setting(
        "inline", description="inline: decode in the training process; actors: Ray actors decode "
        "while the worker trains (each worker keeps `in_flight` requests outstanding); only a "
        "strategy that regenerates from codes has anything to decode", readers=BINPLAY_ONLY)
    actors: int = Field(1, ge=1, description="replay actors per training worker")
    cpus_per_actor: float = Field(0.25, ge=0, description="CPUs each actor books (fractional)")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs each actor books (fractional)")
    in_flight: int = Field(2, ge=1, description="requests kept outstanding per worker (prefetch)")
    steps_per_request: int = Field(
        1, ge=1, description="training steps whose past samples one request carries (decoded "
        "as one batch): fewer, larger requests where a request's overhead outweighs its work")
    max_restarts: int = Field(3, ge=0, description="restarts of a dead actor before the run fails")
    start_timeout_s: float = Field(
        120.0, gt=0, description="seconds the actors may take to start before the job says so")
    nice: int = Field(
        0, ge=0, le=19, description="scheduling niceness of the actor processes: 19 lets them "
        "decode only on cycles the trainer leaves idle, where they share its cores")


class RunConfig(_Strict):
    storage_path: str = Field(
        "runs", description="runs live in <storage_path>/<name>: checkpoints, stream, report; "
        "a local path, a shared volume or a URI (s3://, gs://)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, gt=0, description="torch threads per process")
    fidelity_samples: int = Field(256, gt=0)
    ray_logs: bool = Field(
        False, description="show Ray's own INFO lines (each report, checkpoint and prepared "
        "model); off: only the run's progress, summaries, warnings and errors")
    keep_checkpoints: int | None = Field(
        2, ge=1, description="Ray Train checkpoints kept (the latest ones; the newest is never "
        "deleted, so resume and the jobs always find it); null keeps every one")
    tracker: Literal["tensorboard", "mlflow", "none"] = Field(
        "tensorboard", description="where a run's metrics go (binplay.tracking): TensorBoard "
        "event files (offline), an MLflow store or server (needs the mlflow package), or none")
    tracking_uri: str | None = Field(
        None, description="tensorboard: a log directory shared by runs (events go to "
        "<tracking_uri>/<name>; default <run>/tensorboard, a learn's <state>/tensorboard); "
        "mlflow: the tracking server or store (default a file store <run>/mlruns)")


class BinPlayConfig(_Strict):
    name: str = Field("binplay", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    strategy: StrategyName = setting(
        "binplay", description="binplay, or a baseline: finetune (lower bound), joint (upper "
        "bound; stores all data), er (raw replay buffer), er_ace (ER with the asymmetric "
        "cross-entropy), derpp (DER++: buffer with stored logits), dgr (VAE generative replay)", fixed=True)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    codes: CodesConfig = Field(default_factory=CodesConfig)
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    er: ErConfig = setting(default_factory=ErConfig, readers=ER_READERS)
    dgr: DgrConfig = setting(default_factory=DgrConfig, readers=DGR_READERS)
    derpp: DerppConfig = setting(default_factory=DerppConfig, readers=DERPP_READERS)
    ray: RayConfig = Field(default_factory=RayConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _check_applies(self) -> BinPlayConfig:
        """A setting that the strategy does not read is refused, never applied in some other
        sense (``new_on_real`` once turned ER into ER-ACE) nor silently ignored."""
        for dotted, value, default, readers in _read_settings(self):
            if readers and self.strategy not in readers and value != default:
                raise ValueError(f"{dotted}: applies to strategy {' and '.join(readers)} only, "
                                 f"not {self.strategy} (remove it or set it to {default!r})")
        return self

    @model_validator(mode="after")
    def _check_class_structure(self) -> BinPlayConfig:
        if self.codes.class_bits and self.stream.order != "class":
            raise ValueError("codes.class_bits needs stream.order: class (classes own index ranges)")
        if self.codes.class_bits and self.codes.class_bits < self.stream.num_classes:
            raise ValueError(f"codes.class_bits: {self.codes.class_bits} bits cannot hold "
                             f"{self.stream.num_classes} classes one-hot")
        if self.classifier.ledger_labels and self.stream.order != "class":
            raise ValueError("classifier.ledger_labels needs stream.order: class")
        if self.classifier.unmemorised_inputs and self.autoencoder.samples_per_class is None:
            raise ValueError("classifier.unmemorised_inputs needs autoencoder.samples_per_class "
                             "(without it every sample is memorised)")
        if self.classifier.replay_min_confidence and not self.classifier.ledger_labels:
            raise ValueError("classifier.replay_min_confidence needs classifier.ledger_labels: true")
        c = self.classifier
        if c.reconstructed_share is not None and not (c.mix_real_inputs and c.ae_processed_inputs):
            raise ValueError("classifier.reconstructed_share needs classifier.mix_real_inputs: true "
                             "(reconstructions and real images side by side)")
        return self

    @property
    def train_per_class_read(self) -> int | None:
        """Training samples per class the run reads from the stream: the stream's subset, and
        for BinPlay at most ``autoencoder.samples_per_class`` (baselines read them all)."""
        limits = [self.stream.train_per_class]
        if self.reads("autoencoder", "samples_per_class"):
            limits.append(self.autoencoder.samples_per_class)
        given = [n for n in limits if n is not None]
        return min(given) if given else None

    @property
    def reads_unmemorised(self) -> bool:
        """Whether the stream also holds each task's samples beyond the memorised ones, unindexed
        (BinPlay's ``classifier.unmemorised_inputs``)."""
        return (self.classifier.unmemorised_inputs
                and self.train_per_class_read != self.stream.train_per_class)

    @property
    def uses_replay_actors(self) -> bool:
        """Whether the run decodes its rehearsal on Ray actors (``replay.mode: actors``; only
        a strategy that regenerates from codes has anything to decode there)."""
        return self.replay.mode == "actors" and self.reads("replay", "mode")

    def reads(self, section: str, key: str | None = None) -> bool:
        """Whether the strategy reads ``section`` (or ``section.key``): a setting without
        ``readers`` is read by every strategy."""
        places: list[tuple[type[BaseModel], str]] = [(type(self), section)]
        if key is not None:
            places.append((type(getattr(self, section)), key))
        return all(self.strategy in field_meta(model, name).get("readers", (self.strategy,))
                   for model, name in places)

    @property
    def head_classes(self) -> int:
        """Outputs of the classifier head: ``classifier.max_classes`` or the declared classes."""
        return self.classifier.max_classes or self.stream.num_classes

    def fingerprint(self) -> str:
        """Hash of everything that changes the math; a checkpoint resumes only under the same.

        ``ray``, ``replay`` and ``run`` are left out: where and on how many workers a run
        trains, and where its rehearsal batches are decoded, do not change what it computes
        between task boundaries; a change of worker count mid-task is
        refused separately (``state.check_resume_workers``). ``name`` is the run's place, not
        its math.
        """
        parts = self.model_dump(mode="json", exclude={"ray", "replay", "run", "name"})
        for name in list(parts):
            # A section some strategies own counts only for them: a new strategy's section
            # leaves every other strategy's fingerprint (and checkpoints) as they were.
            if not self.reads(name):
                del parts[name]
                continue
            section = getattr(self, name)
            if isinstance(section, BaseModel):
                _drop_unread(section, parts[name])
        blob = json.dumps(parts, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _section_model(field: Any) -> type[BaseModel] | None:
    kind = field.annotation
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _read_settings(cfg: BinPlayConfig) -> list[tuple[str, Any, Any, tuple[str, ...] | None]]:
    """(dotted name, value, default, readers) of every setting, a section's readers holding
    for each of its fields."""
    out = []
    for name, field in type(cfg).model_fields.items():
        readers = field_meta(type(cfg), name).get("readers")
        model = _section_model(field)
        if model is None:
            out.append((name, getattr(cfg, name), field.get_default(call_default_factory=True),
                        readers))
            continue
        section = getattr(cfg, name)
        for key, sub in model.model_fields.items():
            out.append((f"{name}.{key}", getattr(section, key),
                         sub.get_default(call_default_factory=True),
                         readers or field_meta(model, key).get("readers")))
    return out


def _drop_unread(section: BaseModel, dumped: dict[str, Any]) -> None:
    """Leave out of a section's fingerprint part the fields at their ``neutral`` value and
    those that do not apply under their siblings' values (``setting``)."""
    model = type(section)
    for key in model.model_fields:
        meta = field_meta(model, key)
        if "neutral" in meta and dumped.get(key) == meta["neutral"]:
            dumped.pop(key)
        elif any(getattr(section, k) != v for k, v in meta.get("applies_when", {}).items()):
            dumped.pop(key, None)


def fixed_settings() -> list[str]:
    """Dotted names of the settings fixed by the first ``jobs.learn`` (``setting(fixed=True)``):
    they change the codes or the models' shapes, so a later learn may not change them."""
    names = []
    for name, field in BinPlayConfig.model_fields.items():
        if field_meta(BinPlayConfig, name).get("fixed"):
            names.append(name)
        model = _section_model(field)
        names += [f"{name}.{key}" for key in (model.model_fields if model else ())
                  if field_meta(model, key).get("fixed")]
    return names


def for_strategy(tree: dict[str, Any], strategy: str) -> dict[str, Any]:
    """A config tree without the settings ``strategy`` does not read (they take their
    defaults): what each strategy of ``jobs.compare`` takes from one preset."""
    out = json.loads(json.dumps(tree))
    for name, field in BinPlayConfig.model_fields.items():
        readers = field_meta(BinPlayConfig, name).get("readers")
        if readers and strategy not in readers:
            out.pop(name, None)
            continue
        model = _section_model(field)
        if model is None or not isinstance(out.get(name), dict):
            continue
        for key in model.model_fields:
            readers = field_meta(model, key).get("readers")
            if readers and strategy not in readers:
                out[name].pop(key, None)
    return out


def set_dotted(tree: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    """Set ``a.b.c`` in a config tree; ``where`` names the setting in the error."""
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: '{key}' is not a section")
        node = child
    node[keys[-1]] = value


def _one_line(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    extra = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    if not first["loc"] and first["type"] == "value_error":
        # A check across sections: its message starts with the dotted field it names.
        return f"{source}: {first['ctx']['error']}{extra}"
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{source}: {where}: {first['msg']}{extra}"


def with_overrides(tree: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of a config tree with ``a.b=value`` overrides applied (not validated)."""
    tree = json.loads(json.dumps(tree))  # a private copy: overrides never touch the caller's
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key.path=value")
        key, raw = item.split("=", 1)
        # YAML parsing gives `3` -> int, `true` -> bool, `[0,1]` -> list, `null` -> None.
        set_dotted(tree, key.strip(), yaml.safe_load(raw), f"--set {key.strip()}")
    return tree


def config_from_dict(tree: dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                     source: str = "config") -> BinPlayConfig:
    """Apply ``a.b=value`` overrides to a config tree (e.g. a saved run's) and validate it."""
    tree = with_overrides(tree, overrides)
    try:
        return BinPlayConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> BinPlayConfig:
    """Read a YAML file (or defaults when None), apply ``a.b=value`` overrides, validate."""
    return config_from_dict(read_tree(path), overrides, str(path) if path else "defaults")


def load_preset(path: str | Path | None, overrides: list[str] | tuple[str, ...],
                strategies: list[str]) -> dict[str, Any]:
    """A preset run under several strategies (``jobs.compare``): it may carry any of their
    settings; each strategy's view of it (``for_strategy``) is validated before anything
    runs. Returns the tree with the overrides applied."""
    source = str(path) if path else "defaults"
    tree = with_overrides(read_tree(path), overrides)
    for strategy in strategies:
        config_from_dict(for_strategy(tree, strategy), [f"strategy={strategy}"], source)
    return tree


def read_tree(path: str | Path | None) -> dict[str, Any]:
    """The YAML mapping of a config file ({} when None: every default), not validated."""
    source = str(path) if path else "defaults"
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config ({exc.strerror})") from None
        if not text.strip():  # an empty file is a mistake, not "train on every default"
            raise ConfigError(f"{source}: empty config file")
        try:
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{source}: malformed YAML{line}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections")
    return tree
