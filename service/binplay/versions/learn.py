"""jobs.learn: add one task to a versioned state, train it, publish the next version atomically.

Order of work, each step before anything is written where it would matter:
lock the state; read the latest version; resolve and check the config; read and check the
data (shape, labels, capacity); stage the task's shards beside its checkpoints in
``staging/vNNNN``; train from the latest version's state (in this process or through Ray
Train, the engine of jobs.train); write ``versions/vNNNN`` whole; switch ``LATEST``;
remove the staging area. A learn killed at any point leaves ``LATEST`` on a whole version;
the same command run again takes the dead learn's lock, finds its staging area (the same
data fingerprint) and resumes from its newest checkpoint.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from binplay.config import BinPlayConfig
from binplay.data.stream import StreamManifest
from binplay.data.types import ImageSet
from binplay.inference import SavedRun
from binplay.memory import by_part, carried, carried_bytes, classifier_bytes
from binplay.run_models import check_models_fit
from binplay.runner import publish_stream, run_in_process
from binplay.state import (
    MEASUREMENT,
    STATE_FILE,
    TASK_SCOPED,
    StateError,
    fresh_state,
    load_state,
    state_bytes,
)
from binplay.storage import RunFiles, place_run
from binplay.tracking import check_tracker
from binplay.versions.classes import read_learnt
from binplay.versions.inputs import fingerprint
from binplay.versions.lock import StateBusy, StateLock
from binplay.versions.plan import check_head, learn_config, plan_task, seed_state, stage_task
from binplay.versions.store import (
    Record,
    StateStore,
    TaskEntry,
    VersionLedger,
    now,
    parse_record,
    staging_dir,
)
from binplay.versions.use import accuracy_report

Log = Callable[[str], None]
STAGING_RECORD = "learn.json"
SEED_CHECKPOINT = "checkpoint_0000_seed"  # sorts before Ray's checkpoint_<date> names


class LearnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: str
    data: str
    test: str | None = None
    config: str | None = None
    overrides: list[str] = []
    keep: int | None = Field(None, ge=1, description="versions kept after publishing")
    discard_unfinished: bool = False


class StagingRecord(Record):
    """What an unfinished learn was learning: a re-run must bring the same data."""

    parent: int
    data: str
    data_sha256: str


def learn(req: LearnRequest, log: Log = print) -> int:
    """Learn ``req.data`` as the next task of ``req.state``; returns the published version."""
    store = StateStore(req.state)
    store.latest()  # a newer format is refused before anything else
    with StateLock(store, f"learn {req.data}") as lock, \
            tempfile.TemporaryDirectory(prefix="binplay-learn-") as tmp:
        version = _learn(store, lock, req, Path(tmp), log)
        if req.keep:  # also after "already learnt": a re-run with --keep prunes
            pruned = store.prune(req.keep)
            if pruned:
                log(f"pruned versions {pruned} (--keep {req.keep})")
        return version


def rollback(state: str, version: int, log: Log = print) -> None:
    """Point ``LATEST`` back at an older version (under the lock): the next learn extends it.
    Newer versions stay and can still be read with --version."""
    store = StateStore(state)
    with StateLock(store, f"rollback to {version}"):
        store.resolve(version)
        before = store.latest()
        store.set_pointer(version)
    log(f"{store.uri}: LATEST now names version {version} (was {before}); the next learn extends it")


def _learn(store: StateStore, lock: StateLock, req: LearnRequest, tmp: Path, log: Log) -> int:
    parent = store.latest()
    ledger = store.ledger(parent)
    saved = load_state(store.fetch_state(parent, tmp / "parent")) if parent else None
    cfg = learn_config(req.config, req.overrides, saved)
    check_head(cfg)
    check_tracker(cfg)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    shape = tuple(saved["image_shape"]) if saved else cfg.stream.image_shape
    head = saved["num_classes"] if saved else cfg.head_classes
    fixed = "classifier.max_classes, fixed at the first learn"
    data, names = read_learnt(req.data, "--data", shape, ledger, head, cfg.stream, fixed)
    shape = shape or tuple(int(d) for d in data.images.shape[1:])
    test = None
    if req.test:  # its classes by the names the state and this learn's data give them
        test, _ = read_learnt(req.test, "--test", shape, ledger, head, cfg.stream, fixed,
                              new=False, also=names)
    data_sha = fingerprint(req.data)
    if ledger.tasks and ledger.tasks[-1].data_sha256 == data_sha:
        store.delete(staging_dir(parent))  # left behind if the last learn died after its switch
        log(f"{req.data} is already learnt as task {ledger.tasks[-1].task_id} of version {parent}: "
            f"nothing to do")
        return parent
    planned = plan_task(cfg, ledger, data)
    check_models_fit(cfg, shape, head)
    # Every check passed: from here on the learn writes into the state's staging area.
    # After a rollback the versions above the pointer stay readable: a new one never reuses a number.
    version = max([parent, *store.versions()]) + 1
    staging = staging_dir(version)
    _claim_staging(store, staging, StagingRecord(parent=parent, data=req.data, data_sha256=data_sha),
                   req.discard_unfinished, log)
    placed = place_run(cfg, store.location(staging))
    files = RunFiles(placed)
    manifest = stage_task(cfg, ledger, data, planned, test, shape,  # type: ignore[arg-type]
                          files.local / "stream")
    task = manifest.tasks[-1]
    log(f"learning task {task.task_id} ({len(data.labels)} images of classes {task.classes}, indices "
        f"{task.first_index}..{task.last_index}) into {store.uri} as version {version}")
    seed = seed_state(cfg, saved) if saved else None
    if cfg.ray.num_workers == 0:
        # The tracker writes beside the versions: the staging run is deleted once published.
        state = run_in_process(cfg, manifest, files, resume=seed, log=log, track_root=store.location())
    else:
        state = _train_with_ray(cfg, placed, manifest, files, seed, store, staging)
    published = _slim(state, cfg)
    payload = state_bytes(published)
    entry = TaskEntry(
        task_id=task.task_id, first_index=task.first_index, last_index=task.last_index,
        classes=task.classes, class_ranges=task.class_ranges,
        class_names={str(label): name for label, name in sorted(names.items())},
        data_sha256=data_sha,
        test_sha256=fingerprint(req.test) if req.test else None, source=req.data,
        samples=task.size, config=cfg.model_dump(mode="json"), learnt_at=now(),
        metrics=_metrics(published, state, payload, test, tmp))
    new_ledger = VersionLedger(tasks=[*ledger.tasks, entry])
    lock.check()
    if store.latest() != parent:  # compare before the swap: never publish over another version
        raise StateBusy(f"{store.uri}: the state moved to version {store.latest()} during this learn; "
                        f"nothing was published")
    store.write_version(version, parent, payload, new_ledger)
    store.set_pointer(version)
    store.delete(staging)
    average = entry.metrics.get("average_task_accuracy")
    log(f"published version {version} ({len(new_ledger.tasks)} tasks, indices 1..{new_ledger.total})"
        + (f" | test accuracy over tasks {average:.2f}%" if average is not None else "")
        + f" -> {store.location()}")
    return version


def _claim_staging(store: StateStore, staging: str, record: StagingRecord, discard: bool,
                   log: Log) -> None:
    """Resume an unfinished learn of the same data; refuse to mix in another's."""
    raw = store.read_bytes(f"{staging}/{STAGING_RECORD}")
    if raw is not None:
        found = parse_record(StagingRecord, raw, store.location(f"{staging}/{STAGING_RECORD}"))
        if found == record:
            log(f"resuming the unfinished learn of {record.data} ({store.location(staging)})")
            return
        if not discard:
            raise StateError(f"{store.location(staging)}: an unfinished learn of {found.data} "
                             f"(sha256 {found.data_sha256[:12]}) is staged; re-run that command to "
                             f"finish it, or pass --discard-unfinished")
        log(f"discarding the unfinished learn of {found.data}")
        store.delete(staging)
    store.write_bytes(f"{staging}/{STAGING_RECORD}", record.model_dump_json().encode())


def _train_with_ray(cfg: BinPlayConfig, placed: BinPlayConfig, manifest: StreamManifest,
                    files: RunFiles, seed: dict[str, Any] | None, store: StateStore,
                    staging: str) -> dict[str, Any]:
    """The Ray Train path of jobs.train, its run placed in the staging area. The workers resume
    from the newest ``checkpoint_*`` there, so the latest version goes in as the first one."""
    from binplay.ray_train.checkpoints import newest_checkpoint
    from binplay.ray_train.trainer import fit_stream

    if files.remote is not None:  # workers on other nodes read the shards from the state
        publish_stream(files, manifest)
    if seed is not None and newest_checkpoint(placed) is None:
        store.write_bytes(f"{staging}/{SEED_CHECKPOINT}/{STATE_FILE}", state_bytes(seed))
    return fit_stream(placed, manifest, track_root=store.location())


def _slim(state: dict[str, Any], cfg: BinPlayConfig) -> dict[str, Any]:
    """What a version keeps: weights, ledger, config; the metrics go to ledger.json, and the
    measurement part (fidelity probes and sample grids, which point into or copy past data)
    is dropped."""
    kept = {k: v for k, v in state.items() if k not in (*TASK_SCOPED, MEASUREMENT, "history")}
    return {**kept, "history": fresh_state(cfg)["history"]}


def _metrics(published: dict[str, Any], state: dict[str, Any], payload: bytes, test: ImageSet | None,
             tmp: Path) -> dict[str, Any]:
    """The new task's numbers at the time: the engine's (accuracy on the staged test rows of
    every task, fidelity, sign agreement, seconds) and, on --test, accuracy per class."""
    history = state["history"]
    row = history["accuracy"][-1] if history["accuracy"] else []
    out: dict[str, Any] = {
        "accuracy_per_task_at_learn": {str(t): a for t, a in enumerate(row)},
        "val_accuracy_per_task_at_learn": {
            str(t): a for t, a in enumerate((history.get("val_accuracy") or [[]])[-1])},
        "fidelity_psnr": (history["fidelity_psnr"][-1] or [None])[-1] if history["fidelity_psnr"] else None,
        "sign_agreement": history["sign_agreement"][-1] if history["sign_agreement"] else None,
        "task_seconds": history["task_seconds"][-1] if history["task_seconds"] else None,
        # What the version carries into the next learn (binplay.memory, as jobs.train reports).
        "memory_bytes": carried_bytes(published),
        "classifier_bytes": classifier_bytes(published),
        "memory_parts": by_part(carried(published)),
    }
    if test is not None:
        (tmp / "new").mkdir(exist_ok=True)
        (tmp / "new" / STATE_FILE).write_bytes(payload)
        out.update(accuracy_report(SavedRun(tmp / "new" / STATE_FILE), test))
    return out
