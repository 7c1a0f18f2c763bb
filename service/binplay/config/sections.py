"""The sections every strategy shares: the stream, the codes, BinPlay's autoencoder (it also
sizes the baselines' ``auto`` budgets) and the classifier.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from binplay.codes import check_primes
from binplay.config.fields import BINPLAY_ONLY, _Strict, setting

# The classifier's batch transforms (binplay.train.augment reads the same names).
Augment = Literal["none", "crop", "crop_flip"]

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
    feature_loss_weight: float = setting(
        0.0, ge=0, description="BEYOND-PAPER: the decoder's loss adds this weight x the mean "
        "squared distance between the classifier's conv features (its `features` trunk, as it "
        "stands before the task's classifier phase, frozen) of each regeneration and of its "
        "target, so the decoder's bytes go to what the classifier reads. 0: pixel MSE only "
        "(the paper)", neutral=0.0, readers=BINPLAY_ONLY)
    decoder_lr_schedule: Literal["constant", "cosine"] = setting(
        "constant", description="BEYOND-PAPER: cosine: the decoder phase's lr falls from "
        "decoder_lr towards 0 over each task's decoder epochs (half a cosine, set at each "
        "epoch's start), so fewer epochs may end as sharp as more at a constant lr. "
        "constant: decoder_lr throughout (the paper)", neutral="constant", readers=BINPLAY_ONLY)
    decoder_compute: Literal["fp32", "bf16"] = setting(
        "fp32", description="BEYOND-PAPER: bf16: the decoder phase's forward and backward of the "
        "trained decoder run under bf16 autocast (weights, Adam and the stored decoder stay as "
        "they are; the frozen copy's regenerations stay fp32). Faster only where bf16 is native: "
        "1.3-1.9x per decoder step on a CPU with avx512_bf16, 16x slower on one without "
        "(docs/BENCHMARKS.md, benchmarks/decoder_step.py). fp32: the paper", neutral="fp32",
        readers=BINPLAY_ONLY)
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
    arch: Literal["lenet", "resnet18"] = setting(
        "lenet", description="the classifier: the paper's LeNet-style base network, or a "
        "reduced ResNet-18 (BEYOND-PAPER; for CIFAR-like images, binplay/models/resnet.py)",
        neutral="lenet", fixed=True)
    width: int = setting(
        20, gt=0, description="resnet18: filters of its first stage (64 is the full ResNet-18; "
        "20 the reduced one of GEM and ER)", fixed=True, applies_when={"arch": "resnet18"})
    norm: Literal["batch", "group"] = setting(
        "batch", description="normalisation of the conv layers: batch statistics (learnt on "
        "regenerations, used on real test images) or GroupNorm (per sample, no statistics)", fixed=True)
    augment: Augment = setting(
        "none", description="random transforms of every image a classifier step sees "
        "(current, reconstructed, regenerated or buffered; every strategy alike): crop = "
        "shifted up to 4 pixels into zero padding, crop_flip = and half mirrored left-right "
        "(published ER and DER++ on CIFAR-10; flips do not suit digits); none = as the paper",
        neutral="none")
    replay_loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    max_classes: int | None = setting(
        None, gt=0, description="outputs of the single head; None = the classes stream.tasks "
        "declares. jobs.learn fixes the head at the first learn, so later tasks may bring any "
        "class below this without reshaping it", neutral=None)
    past_fraction: float | None = Field(
        None, ge=0, lt=1,
        description="share of past samples per minibatch; None = (t)/(t+1) balanced per task",
    )
