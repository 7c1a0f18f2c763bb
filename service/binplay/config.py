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

from binplay.codes import check_primes


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the field."""


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
    image_shape: tuple[int, int, int] | None = Field(
        None, description="(C, H, W) expected of user data; built-in datasets know theirs"
    )
    shard_rows: int = Field(4096, gt=0, description="rows per Parquet shard")
    val_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of each class's training samples held out as the "
        "task's validation split: stratified by class, drawn from the run seed, never trained on. "
        "Every choice (Tune, jobs.compare's best, presets) is made on it; test accuracy is only "
        "reported. 0 = no validation split")
    order: Literal["dataset", "class"] = Field(
        "dataset", description="order of a task's samples, hence of its indices: dataset order, "
        "or class after class (each class a contiguous index sub-range kept in the ledger)")

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

    @property
    def num_classes(self) -> int:
        return max(c for task in self.tasks for c in task) + 1


class CodesConfig(_Strict):
    bits_per_part: int = Field(16, ge=2, le=62, description="m; capacity is 2**m samples")
    primes: list[int] = Field(default_factory=lambda: [3, 5, 7, 11, 13, 17, 19, 23])
    task_bits: int = Field(10, ge=0, le=62, description="bits of the task-id prefix (0: none)")
    task_prime: int = Field(29, description="prime of the task-id prefix")
    class_bits: int = Field(
        0, ge=0, description="one +-1 bit per class (one-hot), read from the ledger's class "
        "sub-ranges: the decoder knows each code's class (needs stream.order: class); 0 = none")

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
    preset: Literal["compact", "paper", "mlp"] = "compact"
    width: int = Field(64, gt=0, description="compact and mlp presets: base channel count")
    hidden: int = Field(512, gt=0, description="mlp preset: width of the decoder's hidden FC layer")
    channels: int = Field(
        128, gt=0, description="mlp preset: channels of the decoder's (H/4, W/4) feature map")
    store: Literal["fp32", "bf16", "int8", "int4"] = Field(
        "fp32", description="precision the decoder is kept in between tasks. Its weights are "
        "quantised in place once the task's decoder training ends, so the frozen copy that "
        "regenerates the past IS what is stored; int8: symmetric per output channel, fp32 "
        "scales; int4: symmetric per output channel and group of 64 inputs, fp16 scales, two "
        "values a byte; biases and norm parameters stay fp32. Memory and `memory_mb: auto` count "
        "these stored bytes")
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
    samples_per_class: int | None = Field(
        None, gt=0, description="BinPlay learns (and its decoder memorises) at most this many "
        "samples per class of each task; the rest of the task is not read. None = all")
    code_loss_weight: float = Field(1.0, ge=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(1e-3, gt=0)
    decoder_lr: float = Field(1e-3, gt=0)
    self_rehearsal: bool = Field(
        True, description="rehearse past codes with the frozen decoder copy (off: ablation only)"
    )
    encoder_carry: bool = Field(
        False, description="BEYOND-PAPER: keep the encoder from one task to the next (it has seen "
        "every earlier task's images, so it is counted as memory). False (the paper): the "
        "encoder is re-initialised at each task from a seed of the task and not saved past it")
    decoder_mode: Literal["continue", "reinit"] = Field(
        "continue", description="paper: continue training v; authors' code: reinit each task"
    )


class ClassifierConfig(_Strict):
    epochs: int = Field(6, ge=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(1e-3, gt=0)
    dropout: float = Field(0.25, ge=0, lt=1)
    ae_processed_inputs: bool = Field(True, description="pass new samples through the AE")
    mix_real_inputs: bool = Field(
        False, description="also train on the real current images, besides their reconstructions")
    soft_targets: bool = Field(True, description="past samples: frozen-copy softmax vs argmax")
    ledger_labels: bool = Field(
        False, description="past samples take the class of the ledger sub-range their index "
        "falls in, instead of the frozen copy's prediction (needs stream.order: class)")
    unmemorised_inputs: bool = Field(
        False, description="with autoencoder.samples_per_class: also train on the current "
        "task's samples beyond that limit, as real images. They get no index, the decoder never "
        "sees them, and nothing of them outlives the task; False = they are not read")
    reconstructed_share: float | None = Field(
        None, gt=0, lt=1, description="with mix_real_inputs: repeat the current reconstructions "
        "(whole copies) until they are about this share of the current inputs, so real images "
        "(the memorised and, with unmemorised_inputs, the rest) do not outnumber them and "
        "sharpness stops telling new classes from regenerated old ones; None = each once")
    distill_current: float = Field(
        0.0, ge=0, description="weight of a distillation term on the current inputs: the "
        "classifier frozen before the task gives its old-class distribution (temperature 2) "
        "for each current image, and the classifier keeps it (LwF on the new data, beside "
        "the replay); 0 = off")
    current_loss_classes: Literal["seen", "new", "new_on_real", "new_on_unmemorised"] = Field(
        "seen", description="classes the current samples' cross-entropy is taken over: every "
        "class seen so far; only the task's new ones (new: ER-ACE's asymmetric cross-entropy, "
        "new images never push old logits down and the replay alone draws the old/new "
        "boundary); or only the new ones for real images while reconstructions keep every "
        "class (new_on_real: sharp images stop teaching 'sharp = new', the decoded ones, like "
        "the regenerated past, still set the old/new boundary; with no reconstructions among "
        "the current inputs, as for er/finetune/joint, every seen class); or only the new ones for the "
        "unmemorised images (new_on_unmemorised, with classifier.unmemorised_inputs: the task's "
        "images beyond samples_per_class teach the new classes apart, not old from new)")
    replay_min_confidence: float = Field(
        0.0, ge=0, lt=1, description="with ledger_labels: a regenerated sample is rehearsed only "
        "if the classifier frozen before the task gives its ledger class at least this "
        "probability (regenerations that lost their class identity teach the wrong boundary); "
        "0 keeps every sample")
    norm: Literal["batch", "group"] = Field(
        "batch", description="normalisation of the conv layers: batch statistics (learnt on "
        "regenerations, used on real test images) or GroupNorm (per sample, no statistics)")
    replay_loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    max_classes: int | None = Field(
        None, gt=0, description="outputs of the single head; None = the classes stream.tasks "
        "declares. jobs.learn fixes the head at the first learn, so later tasks may bring any "
        "class below this without reshaping it")
    past_fraction: float | None = Field(
        None, ge=0, lt=1,
        description="share of past samples per minibatch; None = (t)/(t+1) balanced per task",
    )


StrategyName = Literal["binplay", "finetune", "joint", "er", "dgr", "derpp", "er_ace"]
MemoryBudget = float | Literal["auto"]


def _check_budget(v: MemoryBudget) -> MemoryBudget:
    if v != "auto" and v <= 0:
        raise ValueError("must be > 0 or 'auto'")
    return v


class ErConfig(_Strict):
    """Experience replay (Chaudhry et al. 2019; Mammoth's and Avalanche's ER): a buffer of raw
    uint8 images and labels, and the classifier settings ER trains with."""

    memory_mb: MemoryBudget = Field(
        "auto", description="buffer bytes (images + one byte per label); auto = the bytes BinPlay "
        "carries between tasks under this config (binplay.memory), so the two compare at "
        "equal memory")
    replay_batch: int | Literal["current", "balanced"] = Field(
        "current", description="past samples per step: current = as many as the current batch "
        "(standard ER); balanced = BinPlay's schedule, t past tasks : 1 current (grows with t); "
        "or a number")
    sampling: Literal["class_balanced", "reservoir"] = Field(
        "class_balanced", description="how the buffer is filled: every class seen keeps an equal "
        "share, or reservoir sampling over the stream (Vitter's algorithm R)")
    epochs: int | None = Field(None, ge=0, description="classifier epochs per task; None = classifier.epochs")
    lr: float | None = Field(None, gt=0, description="classifier learning rate; None = classifier.lr")
    batch_size: int | None = Field(None, gt=0, description="current samples per step; None = "
                                   "classifier.batch_size")
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

    memory_mb: MemoryBudget = Field(
        "auto", description="buffer bytes (uint8 images, one-byte labels and the logits at "
        "logits_dtype); auto = what BinPlay carries under this config")
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
    logits_dtype: Literal["float32", "float16"] = Field(
        "float32", description="precision the stored logits are kept (and counted) in")
    epochs: int | None = Field(None, ge=0, description="classifier epochs per task; None = classifier.epochs")
    lr: float | None = Field(None, gt=0, description="classifier learning rate; None = classifier.lr")
    batch_size: int | None = Field(None, gt=0, description="current samples per step; None = "
                                   "classifier.batch_size")
    _budget = field_validator("memory_mb")(_check_budget)


class DgrConfig(_Strict):
    """Deep generative replay (Shin et al. 2017): a VAE with self-rehearsal, soft targets."""

    memory_mb: MemoryBudget = Field(
        "auto", description="bytes of the whole VAE as carried between tasks (encoder and "
        "decoder: both keep training across tasks); auto = what BinPlay carries under this "
        "config (binplay.memory)")
    latent_dim: int = Field(32, gt=0)
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

    mode: Literal["inline", "actors"] = Field(
        "inline", description="inline: decode in the training process; actors: Ray actors decode "
        "while the worker trains (each worker keeps `in_flight` requests outstanding)")
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


class BinPlayConfig(_Strict):
    name: str = Field("binplay", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    strategy: StrategyName = Field(
        "binplay", description="binplay, or a baseline: finetune (lower bound), joint (upper "
        "bound; stores all data), er (raw replay buffer), er_ace (ER with the asymmetric "
        "cross-entropy), derpp (DER++: buffer with stored logits), dgr (VAE generative replay)")
    stream: StreamConfig = Field(default_factory=StreamConfig)
    codes: CodesConfig = Field(default_factory=CodesConfig)
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    er: ErConfig = Field(default_factory=ErConfig)
    dgr: DgrConfig = Field(default_factory=DgrConfig)
    derpp: DerppConfig = Field(default_factory=DerppConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _check_applies(self) -> BinPlayConfig:
        """A BinPlay-only classifier switch under another strategy is refused, never applied
        in some other sense (``new_on_real`` once turned ER into ER-ACE)."""
        if self.strategy != "binplay":
            defaults = ClassifierConfig()
            for name in BINPLAY_CLASSIFIER_FIELDS:
                if getattr(self.classifier, name) != getattr(defaults, name):
                    raise ValueError(f"classifier.{name}: applies to strategy binplay only, not "
                                     f"{self.strategy} (remove it or set it to "
                                     f"{getattr(defaults, name)!r})")
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
        if (self.classifier.unmemorised_inputs and self.strategy == "binplay"
                and self.autoencoder.samples_per_class is None):
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
        if self.strategy == "binplay":
            limits.append(self.autoencoder.samples_per_class)
        given = [n for n in limits if n is not None]
        return min(given) if given else None

    @property
    def reads_unmemorised(self) -> bool:
        """Whether the stream also holds each task's samples beyond the memorised ones, unindexed
        (BinPlay's ``classifier.unmemorised_inputs``)."""
        return (self.strategy == "binplay" and self.classifier.unmemorised_inputs
                and self.train_per_class_read != self.stream.train_per_class)

    @property
    def uses_replay_actors(self) -> bool:
        """Whether the run decodes its rehearsal on Ray actors (``replay.mode: actors``; only
        a strategy that regenerates from codes has anything to decode there)."""
        return self.replay.mode == "actors" and self.strategy in DECODING_STRATEGIES

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
        # A baseline's section counts only for the strategies that read it: a new strategy's
        # section leaves every other strategy's fingerprint (and checkpoints) as they were.
        for section, readers in BASELINE_SECTIONS.items():
            if self.strategy not in readers:
                del parts[section]
        # Fields added after runs existed are left out where they compute what runs did before
        # them (unset, fp32, or shaping a preset not in use): older checkpoints still resume.
        for (section, key), neutral in NEUTRAL_FIELDS.items():
            if section in parts and parts[section][key] == neutral:
                del parts[section][key]
        if parts["autoencoder"]["preset"] != "mlp":
            del parts["autoencoder"]["hidden"], parts["autoencoder"]["channels"]
        blob = json.dumps(parts, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# Classifier switches that read BinPlay's reconstructions, ledger or memorised subset.
BINPLAY_CLASSIFIER_FIELDS = ("ae_processed_inputs", "mix_real_inputs", "ledger_labels",
                             "unmemorised_inputs", "reconstructed_share", "distill_current",
                             "current_loss_classes", "replay_min_confidence")


def without_binplay_switches(tree: dict[str, Any]) -> dict[str, Any]:
    """A config tree with the BinPlay-only classifier switches removed (their defaults): what
    a baseline run of a BinPlay preset takes (jobs.compare)."""
    out = json.loads(json.dumps(tree))
    for name in BINPLAY_CLASSIFIER_FIELDS:
        out.get("classifier", {}).pop(name, None)
    return out


# Strategies whose rehearsal a replay source decodes (inline or on Ray actors).
DECODING_STRATEGIES = ("binplay",)

# The config sections of the baselines and the strategies that read them.
BASELINE_SECTIONS: dict[str, tuple[str, ...]] = {"er": ("er", "er_ace"), "dgr": ("dgr",),
                                                 "derpp": ("derpp",)}

NEUTRAL_FIELDS: dict[tuple[str, str], Any] = {("classifier", "max_classes"): None,
                                              ("classifier", "replay_min_confidence"): 0.0,
                                              ("classifier", "unmemorised_inputs"): False,
                                              ("classifier", "reconstructed_share"): None,
                                              ("classifier", "distill_current"): 0.0,
                                              ("classifier", "current_loss_classes"): "seen",
                                              ("autoencoder", "store"): "fp32",
                                              # the behaviour of states written before the field
                                              ("autoencoder", "encoder_carry"): True,
                                              ("stream", "val_fraction"): 0.0,
                                              ("er", "replay_batch"): "balanced",
                                              ("er", "sampling"): "class_balanced",
                                              ("er", "epochs"): None, ("er", "lr"): None,
                                              ("er", "batch_size"): None}


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
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    extra = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: {where}: {first['msg']}{extra}"


def config_from_dict(tree: dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                     source: str = "config") -> BinPlayConfig:
    """Apply ``a.b=value`` overrides to a config tree (e.g. a saved run's) and validate it."""
    tree = json.loads(json.dumps(tree))  # a private copy: overrides never touch the caller's
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key.path=value")
        key, raw = item.split("=", 1)
        # YAML parsing gives `3` -> int, `true` -> bool, `[0,1]` -> list, `null` -> None.
        set_dotted(tree, key.strip(), yaml.safe_load(raw), f"--set {key.strip()}")
    try:
        return BinPlayConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> BinPlayConfig:
    """Read a YAML file (or defaults when None), apply ``a.b=value`` overrides, validate."""
    source = str(path) if path else "defaults"
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config ({exc.strerror})") from None
        try:
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{source}: malformed YAML{line}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections")
    return config_from_dict(tree, overrides, source)
