"""Class-incremental streams materialised as Parquet shards.

Task t holds the training samples of its classes in dataset order (or, with
``stream.order: class``, class after class, so that each class owns a contiguous
sub-range recorded in the ledger) and owns the contiguous global indices K_t..N_t
(1-based, as in the paper), so indices are stable across runs of the same config.
Shards are written and read by ``binplay.data.shards``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from binplay.codes import CapacityError, capacity
from binplay.config import BinPlayConfig, ConfigError, StreamConfig
from binplay.data.shards import write_shard
from binplay.data.sources import SHAPES, load_builtin
from binplay.data.types import DataError, ImageSet
from binplay.data.user import read_image_folder, read_image_parquet
from binplay.seeding import derived_seed

MANIFEST = "stream.json"
STAMP = "stream.config.json"  # written last: the stream config and the manifest's hash
INGEST_DEFAULTS = {"resize": "none", "on_bad_image": "error"}


@dataclass
class TaskShards:
    task_id: int
    classes: list[int]
    first_index: int  # K_t
    last_index: int  # N_t
    train: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    # (class, first index, last index) per class when the stream is ordered by class
    class_ranges: list[list[int]] = field(default_factory=list)
    unmemorised: int = 0  # train rows beyond the indexed ones (negative indices)
    val: list[str] = field(default_factory=list)  # the task's validation split (never trained on)

    @property
    def size(self) -> int:
        return self.last_index - self.first_index + 1


@dataclass
class StreamManifest:
    image_shape: tuple[int, int, int]
    num_classes: int
    tasks: list[TaskShards]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> StreamManifest:
        raw = json.loads(text)
        return cls(tuple(raw["image_shape"]), raw["num_classes"],
                   [TaskShards(**t) for t in raw["tasks"]])


def load_split(cfg: StreamConfig, split: str) -> ImageSet:
    if cfg.dataset in SHAPES:
        return load_builtin(cfg.dataset, split, cfg.data_root)
    path = cfg.path if split == "train" else cfg.test_path
    if path is None:
        raise DataError(f"stream.test_path: no test split given for user data {cfg.path}")
    reader = read_image_parquet if cfg.dataset == "parquet" else read_image_folder
    return reader(path, expected_shape=cfg.image_shape, resize=cfg.resize,
                  on_bad_image=cfg.on_bad_image)


def select_rows(data: ImageSet, classes: list[int], per_class: int | None,
            by_class: bool = False) -> np.ndarray:
    """Row numbers of the task's samples, in dataset order, or class after class (each in
    dataset order); stable across runs either way."""
    labels = data.labels.numpy()
    rows = []
    for c in classes:
        found = np.flatnonzero(labels == c)
        rows.append(found[:per_class] if per_class else found)
    joined = np.concatenate(rows)
    return joined if by_class else np.sort(joined)


@dataclass
class TaskRows:
    """Row numbers of one task's samples in its training data: those trained on (and indexed),
    the validation split, and those read unindexed (``classifier.unmemorised_inputs``)."""

    train: np.ndarray
    val: np.ndarray
    unmemorised: np.ndarray | None


def validation_count(n: int, fraction: float) -> int:
    """Samples of a class of ``n`` held out: ``round(fraction * n)``, at least one where there
    is a fraction and two samples, never all of them."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(fraction * n)))


def task_rows(data: ImageSet, classes: list[int], cfg: BinPlayConfig) -> TaskRows:
    """Split a task's samples: per class (in dataset order, the first ``stream.train_per_class``)
    a validation share drawn from (run seed, class), then of the rest the first
    ``train_per_class_read`` trained on and the remainder unmemorised where the config reads it.

    The same for every strategy of a seed (BinPlay's ``samples_per_class`` cuts after the
    validation split), and for ``jobs.train`` and ``jobs.learn`` alike (it depends on the
    class, not on the task's position)."""
    labels = data.labels.numpy()
    limit = cfg.train_per_class_read
    by_class = cfg.stream.order == "class"
    train, val, rest = [], [], []
    for c in classes:
        found = np.flatnonzero(labels == c)
        if cfg.stream.train_per_class:
            found = found[:cfg.stream.train_per_class]
        held = validation_count(len(found), cfg.stream.val_fraction)
        if held:
            rng = np.random.default_rng(derived_seed(cfg.seed, "validation", int(c)))
            picked = np.sort(found[rng.permutation(len(found))[:held]])
            val.append(picked)
            found = found[~np.isin(found, picked)]
        train.append(found[:limit] if limit else found)
        rest.append(found[len(train[-1]):])
    joined = np.concatenate(train)
    return TaskRows(joined if by_class else np.sort(joined),
                    np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64),
                    np.concatenate(rest) if cfg.reads_unmemorised else None)


def _class_ranges(labels: np.ndarray, first_index: int) -> list[list[int]]:
    """(class, first, last) of each run of equal labels: the class sub-ranges of a task."""
    ranges: list[list[int]] = []
    for offset, label in enumerate(labels.tolist()):
        if ranges and ranges[-1][0] == label:
            ranges[-1][2] = first_index + offset
        else:
            ranges.append([label, first_index + offset, first_index + offset])
    return ranges


def _check_labels(data: ImageSet, cfg: StreamConfig) -> None:
    allowed = {c for task in cfg.tasks for c in task}
    seen = set(np.unique(data.labels.numpy()).tolist())
    stray = sorted(seen - allowed)
    if stray and cfg.dataset not in SHAPES:
        # Built-in datasets may legitimately be split into fewer classes; user data may not.
        raise DataError(f"{data.origin}: label {stray[0]} is outside the configured classes "
                        f"{sorted(allowed)}")


def _write_atomic(path: Path, text: str) -> None:
    """Write aside, then rename: a reader sees the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def stream_identity(cfg: BinPlayConfig) -> dict:
    """What decides a stream's shards: the stream section and what the strategy reads of it
    (and the seed, which draws the validation split)."""
    extra = {"unmemorised": True} if cfg.reads_unmemorised else {}
    if cfg.stream.val_fraction:
        extra["val_seed"] = cfg.seed
    # Ingest switches at their defaults are left out: streams built before them stay reusable.
    stream = cfg.stream.model_dump(mode="json")
    for key, default in INGEST_DEFAULTS.items():
        if stream.get(key) == default:
            del stream[key]
    return {"stream": stream, **extra,
            "train_per_class_read": cfg.train_per_class_read}


def _stamp(cfg: BinPlayConfig, manifest_text: str) -> str:
    head = {"head_classes": cfg.head_classes} if cfg.classifier.max_classes else {}
    return json.dumps({**stream_identity(cfg), **head,
                       "manifest_sha256": hashlib.sha256(manifest_text.encode()).hexdigest()})


def _reusable(cfg: BinPlayConfig, directory: Path) -> StreamManifest | None:
    """The stream already under ``directory``, if it is complete and of this config.

    Complete means the stamp, written last, names this stream config and the hash of
    the manifest beside it, and every shard it lists exists; anything else (no stamp,
    a stamp of another config or of another manifest, unreadable files) is rebuilt.
    """
    try:
        text = (directory / MANIFEST).read_text()
        if (directory / STAMP).read_text() != _stamp(cfg, text):
            return None
        manifest = StreamManifest.from_json(text)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    shards = [p for task in manifest.tasks for p in task.train + task.test]
    return manifest if all(Path(p).is_file() for p in shards) else None


def write_task_shards(directory: Path, task_id: int, classes: list[int], first_index: int,
                      train: tuple[ImageSet, TaskRows] | None,
                      test: tuple[ImageSet, np.ndarray] | None,
                      cfg: StreamConfig) -> TaskShards:
    """Write one task's shards (indices first_index.. in ``train``'s row order); jobs.train
    writes each task of its stream and jobs.learn its one new task through this, so both
    number and order the samples alike. A learn passes no ``train`` for the tasks learnt
    before (their data is gone) and may pass no or an empty ``test``. ``unmemorised`` rows
    (of ``train``'s data) go to further train shards with negative, non-stream indices
    -1, -2, ...: the classifier reads them, nothing indexes them. The validation rows go
    to ``val`` shards (row numbers as index, like test rows)."""
    shards = TaskShards(task_id, list(classes), first_index, first_index - 1)
    parts: list[tuple[str, tuple[ImageSet, np.ndarray] | None]] = [
        ("train", None if train is None else (train[0], train[1].train)), ("test", test)]
    if train is not None:
        rows = train[1]
        if rows.unmemorised is not None and len(rows.unmemorised):
            parts.append(("train-unmemorised", (train[0], rows.unmemorised)))
        if len(rows.val):
            parts.append(("val", (train[0], rows.val)))
    for split, part in parts:
        if part is None or (split == "test" and len(part[1]) == 0):
            continue
        data, rows = part
        if len(rows) == 0:
            raise DataError(f"{data.origin}: task {task_id} classes {classes} have no {split} samples")
        if split == "train":
            index = np.arange(first_index, first_index + len(rows), dtype=np.int64)
            shards.last_index = first_index + len(rows) - 1
            if cfg.order == "class":
                shards.class_ranges = _class_ranges(data.labels[rows].numpy(), first_index)
        elif split in ("test", "val"):
            index = np.arange(len(rows), dtype=np.int64)  # no stream index: never trained on
        else:
            index = -np.arange(1, len(rows) + 1, dtype=np.int64)
            shards.unmemorised = len(rows)
        for s, start in enumerate(range(0, len(rows), cfg.shard_rows)):
            block = rows[start:start + cfg.shard_rows]
            path = directory / f"task_{task_id:02d}" / f"{split}-{s:04d}.parquet"
            write_shard(path, index[start:start + cfg.shard_rows], data.labels[block].numpy(),
                        data.images[block])
            getattr(shards, split.split("-")[0]).append(str(path))
    return shards


def build_stream(cfg: BinPlayConfig, directory: str | Path) -> StreamManifest:
    """Write (or reuse) the stream's shards under ``directory``; returns the manifest."""
    directory = Path(directory)
    reused = _reusable(cfg, directory)
    if reused is not None:
        return reused
    # From here on the directory is not a valid stream until the new stamp is written.
    (directory / STAMP).unlink(missing_ok=True)
    if cfg.classifier.max_classes and cfg.classifier.max_classes < cfg.stream.num_classes:
        raise ConfigError(f"classifier.max_classes: {cfg.classifier.max_classes} outputs cannot "
                          f"hold the {cfg.stream.num_classes} classes of stream.tasks")
    train, test = load_split(cfg.stream, "train"), load_split(cfg.stream, "test")
    for data in (train, test):
        _check_labels(data, cfg.stream)
    shape = tuple(train.images.shape[1:])
    if tuple(test.images.shape[1:]) != shape:
        raise DataError(f"{test.origin}: test images {tuple(test.images.shape[1:])} "
                        f"differ from training images {shape}")
    # Refuse an over-capacity stream before writing any shard.
    train_rows = [task_rows(train, classes, cfg) for classes in cfg.stream.tasks]
    total = sum(len(rows.train) for rows in train_rows)
    cap = capacity(cfg.codes.bits_per_part)
    if total > cap:
        raise CapacityError(f"stream has {total} samples but codes.bits_per_part="
                            f"{cfg.codes.bits_per_part} gives {cap} codes; raise bits_per_part")
    tasks, next_index = [], 1
    for t, classes in enumerate(cfg.stream.tasks):
        test_rows = select_rows(test, classes, cfg.stream.test_per_class)
        if len(test_rows) == 0:
            raise DataError(f"{test.origin}: task {t} classes {classes} have no test samples")
        shards = write_task_shards(directory, t, classes, next_index, (train, train_rows[t]),
                                   (test, test_rows), cfg.stream)
        tasks.append(shards)
        next_index = shards.last_index + 1
    manifest = StreamManifest(shape, cfg.head_classes, tasks)  # type: ignore[arg-type]
    text = manifest.to_json()
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory / MANIFEST, text)
    _write_atomic(directory / STAMP, _stamp(cfg, text))  # last: the stream is now complete
    return manifest
