"""Driver side of the Ray Train run: one ``fit()`` for the whole stream.

A worker group costs 15-45 s to start on a small machine, so all tasks and phases
run inside one fit; checkpoints at task boundaries (and every k epochs) give
resume. Re-running with the same ``RunConfig(storage_path, name)`` continues from
the latest checkpoint. Everything that can be checked before the workers start is
checked here, on the driver, so that bad input fails in one line instead of being
retried ``max_failures`` times: the config against the run's fingerprint and its
latest checkpoint, the worker count against a mid-task checkpoint, the images
against the models.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pyarrow.fs as pafs

from binplay.config import BinPlayConfig
from binplay.data.stream import StreamManifest
from binplay.errors import worker_error
from binplay.ray_train.checkpoints import newest_checkpoint
from binplay.ray_train.cluster import READ_TASK_CPUS, check_fits, configure_ray_data, ensure_ray
from binplay.ray_train.quiet import quiet_ray_logs, train_logging_config
from binplay.ray_train.worker import task_dataset_name, train_loop_per_worker
from binplay.run_models import check_models_fit
from binplay.runner import finish, prepare_stream
from binplay.state import StateError, check_resume_workers, load_state
from binplay.storage import RunFiles, run_root, storage_uri

FINGERPRINT_FILE = "binplay_run.json"


def run_exists(cfg: BinPlayConfig) -> bool:
    """True if the run's place holds a run of this config (its fingerprint beside the
    checkpoints); a run of another config there is refused."""
    fs, root = pafs.FileSystem.from_uri(run_root(cfg))
    marker = f"{root}/{FINGERPRINT_FILE}"
    if fs.get_file_info(marker).type != pafs.FileType.File:
        return False
    with fs.open_input_stream(marker) as fh:
        saved = json.loads(fh.read())
    if saved.get("fingerprint") != cfg.fingerprint():
        raise StateError(f"{run_root(cfg)}: checkpoints were written by a "
                         f"different config (fingerprint {saved.get('fingerprint')} != "
                         f"{cfg.fingerprint()}); use the same config or a new run name")
    return True


def claim_run(cfg: BinPlayConfig) -> None:
    """Record the config fingerprint beside the checkpoints (once the run's checks passed)."""
    fs, root = pafs.FileSystem.from_uri(run_root(cfg))
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/{FINGERPRINT_FILE}") as fh:
        fh.write(json.dumps({"fingerprint": cfg.fingerprint(), "name": cfg.name}).encode())


def check_latest_checkpoint(cfg: BinPlayConfig) -> None:
    """Check the run's newest checkpoint on storage as the workers would, before any starts."""
    found = newest_checkpoint(cfg)
    if found is not None:
        check_resume_workers(found[1], cfg.ray.num_workers, found[0])


def build_trainer(cfg: BinPlayConfig, manifest: StreamManifest, callbacks: list | None = None,
                  track_root: str | None = None):
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    configure_ray_data()  # datasets carry the DataContext of the process that creates them
    # Read tasks take a sliver of a CPU: the workers hold the rest, and a read task
    # waiting for a whole CPU stalled each task's start by 6-17 s on 2 cores.
    datasets = {task_dataset_name(t.task_id): ray.data.read_parquet(
                    t.train, num_cpus=READ_TASK_CPUS)
                for t in manifest.tasks if t.train}  # jobs.learn: past tasks have no shards
    return TorchTrainer(
        train_loop_per_worker,
        # The tracker's place is resolved here: a worker's working directory may differ.
        train_loop_config={"config": cfg.model_dump(mode="json"), "manifest": manifest.to_json(),
                           "track_root": track_root or run_root(cfg)},
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.ray.num_workers, use_gpu=cfg.ray.use_gpu,
            resources_per_worker={"CPU": cfg.ray.cpus_per_worker}
            | ({"GPU": cfg.ray.gpus_per_worker} if cfg.ray.use_gpu else {})),
        run_config=ray.train.RunConfig(
            name=cfg.name, storage_path=storage_uri(cfg),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.run.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=cfg.ray.max_failures,
                                                   controller_failure_limit=0),
            callbacks=callbacks, logging_config=train_logging_config(cfg.run.ray_logs)),
        datasets=datasets,
        # Every worker sees the whole task and keeps its own rows (worker.rank_rows):
        # Ray's equal split may drop rows, and a sample without its code breaks replay.
        dataset_config=ray.train.DataConfig(datasets_to_split=[]),
    )


def fit_stream(cfg: BinPlayConfig, manifest: StreamManifest, callbacks: list | None = None,
               track_root: str | None = None) -> dict[str, Any]:
    """The one Ray Train launch of jobs.train, jobs.learn and Tune's trials: check what the
    workers would refuse, fit, and return the final state (``run_root(cfg)`` holds the run).
    ``callbacks`` (Tune's ``TuneReportCallback`` inside a trial) mean a caller already
    holds Ray and has checked the capacity of all its runs together. ``track_root``: where
    the tracker writes instead of the run's place (binplay.tracking)."""
    import ray.train

    if callbacks is None:
        ensure_ray(cfg)
        check_fits(cfg)
    quiet_ray_logs(cfg.run.ray_logs)
    check_latest_checkpoint(cfg)
    trainer = build_trainer(cfg, manifest, callbacks, track_root)
    fit_started = time.time()
    try:
        result = trainer.fit()
    except ray.train.WorkerGroupError as exc:
        raise worker_error(exc.worker_failures) from None
    print(f"ray train fit finished in {time.time() - fit_started:.1f}s", flush=True)
    if result.checkpoint is None:
        raise StateError(f"{run_root(cfg)}: training ended without a checkpoint")
    with result.checkpoint.as_directory() as path:
        return load_state(path, cfg)


def train_with_ray(cfg: BinPlayConfig, files: RunFiles, stream_dir: str | None = None,
                   callbacks: list | None = None) -> str:
    """Train (or resume) the run with Ray Train; ``stream_dir`` is a shared stream."""
    started = time.time()
    exists = run_exists(cfg)
    if exists:
        print(f"run '{cfg.name}' exists in {run_root(cfg)}: resuming from its latest "
              f"checkpoint", flush=True)
    manifest = prepare_stream(cfg, files, stream_dir=stream_dir)
    check_models_fit(cfg, manifest.image_shape, manifest.num_classes)
    if not exists:  # after the data and model checks: a refused run leaves no marker
        claim_run(cfg)
    state = fit_stream(cfg, manifest, callbacks)
    return finish(cfg, manifest, state, files, time.time() - started)
