"""The per-worker train loop under Ray Train: ordinary ``run_stream`` plus three Ray calls.

prepare_model (DDP: gloo on CPU, NCCL on GPU), get_dataset_shard (this worker's
part of each task, through Ray Data) and report (metrics + checkpoints). Each
worker keeps the rows whose stream index is congruent to its rank: a stable,
disjoint split, so that every code of the task belongs to exactly one worker
(globally unique assignment) and a restarted worker gets back the same rows.
"""

from __future__ import annotations

import math
import sys
import tempfile
from typing import Any

import pyarrow as pa
import ray.train
import ray.train.torch
import torch

from binplay.config import BinPlayConfig
from binplay.context import TaskData, TrainContext
from binplay.data.shards import table_to_tensors
from binplay.data.stream import StreamManifest, TaskShards
from binplay.engine import run_stream
from binplay.metrics import mean_known
from binplay.ray_train.checkpoints import newest_checkpoint, progress
from binplay.ray_train.quiet import quiet_ray_logs
from binplay.replay import make_source
from binplay.state import load_state, save_state


def task_dataset_name(task_id: int) -> str:
    return f"task_{task_id:02d}"


def rank_rows(index: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's rows: stream index mod world size (disjoint, covering, stable)."""
    return (index % world_size) == rank


def _load_shard(shape: tuple[int, ...], rank: int, world_size: int):
    def load(task: TaskShards) -> TaskData:
        shard = ray.train.get_dataset_shard(task_dataset_name(task.task_id))
        parts = []
        for batch in shard.iter_batches(batch_size=4096, batch_format="pyarrow"):
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            index, images, labels = table_to_tensors(table, shape, task.train[0])
            keep = rank_rows(index, rank, world_size)
            parts.append((index[keep], images[keep], labels[keep]))
        index, images, labels = (torch.cat(t) for t in zip(*parts))
        order = torch.argsort(index)  # Ray Data may reorder blocks; the loop wants index order
        return index[order], images[order], labels[order]

    return load


def _log(line: str) -> None:
    # Train v2 patches print() to tee into its logger, which doubled every line;
    # the process's real stdout is what Ray streams to the driver and job logs.
    sys.__stdout__.write(line + "\n")
    sys.__stdout__.flush()


def tune_metrics(metrics: dict[str, Any], last: dict[str, float]) -> dict[str, Any]:
    """Every report carries ``tasks_done``, ``val_average_accuracy`` (what a search chooses
    on) and ``average_accuracy`` (test), the last known ones mid-task: a search's ASHA
    scheduler judges every report a trial makes."""
    if "average_accuracy" in metrics or "val_average_accuracy" in metrics:
        for key in ("average_accuracy", "val_average_accuracy"):
            if key in metrics:
                last[key] = float(metrics[key])
        last["tasks_done"] = metrics["task"] + 1
    return {**metrics, **last}


def _saver(resume: dict[str, Any] | None):
    history = (resume or {}).get("history", {})
    rows, val_rows = history.get("accuracy", []), history.get("val_accuracy", [])
    last = {"tasks_done": len(rows),
            "average_accuracy": mean_known(rows[-1]) or 0.0 if rows else 0.0,
            "val_average_accuracy": mean_known(val_rows[-1]) or 0.0 if val_rows else 0.0}

    def save(state: dict[str, Any] | None, metrics: dict[str, Any]) -> None:
        metrics = tune_metrics(metrics, last)
        flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, list))}
        if state is None:
            ray.train.report(flat)
            return
        with tempfile.TemporaryDirectory() as tmp:
            save_state(state, tmp)
            ray.train.report(flat, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    return save


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    cfg = BinPlayConfig.model_validate(loop_config["config"])
    quiet_ray_logs(cfg.run.ray_logs)
    manifest = StreamManifest.from_json(loop_config["manifest"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(cfg.run.threads or max(1, math.ceil(cfg.ray.cpus_per_worker)))
    resume = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            resume = load_state(path, cfg)
    on_disk = newest_checkpoint(cfg)  # newer than Ray's snapshot if the driver died just after
    if on_disk is not None and progress(on_disk[1]) > progress(resume):
        resume = on_disk[1]
    device = ray.train.torch.get_device()
    source = make_source(cfg, device, log=_log if rank == 0 else lambda line: None)
    ctx = TrainContext(
        rank=rank, world_size=world, device=device,
        wrap_model=lambda m: ray.train.torch.prepare_model(m),
        load_task=_load_shard(tuple(manifest.image_shape), rank, world),
        save=_saver(resume), resume_state=resume, log=_log, replay=source,
        track_root=loop_config.get("track_root"),
    )
    try:
        run_stream(cfg, manifest, ctx)
    finally:
        source.close()
