"""Run a whole stream in this process (no Ray): the reference path and the unit-test path.

The Ray Train path (binplay.ray_train) runs the same ``run_stream`` inside workers;
``binplay.launch.train`` picks one of the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from binplay.config import BinPlayConfig
from binplay.context import TrainContext
from binplay.data.stream import StreamManifest, build_stream
from binplay.engine import run_stream
from binplay.replay import make_source
from binplay.report import build_report, write_report
from binplay.run_models import check_models_fit
from binplay.state import STATE_FILE, check_resume_workers, load_state, save_state
from binplay.storage import RunFiles
from binplay.strategies import make_strategy


def pick_device(cfg: BinPlayConfig) -> torch.device:
    if cfg.run.device == "cuda" or (cfg.run.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def prepare_stream(cfg: BinPlayConfig, files: RunFiles, log=print,
                   stream_dir: str | Path | None = None) -> StreamManifest:
    """Build (or reuse) the stream's shards; their paths are readable from every node.

    ``stream_dir`` puts them elsewhere than ``<run>/stream``: a search shares one copy
    between its trials (a local path, read as it is)."""
    started = time.time()
    manifest = build_stream(cfg, stream_dir or files.local / "stream")
    if files.remote is not None and stream_dir is None:
        publish_stream(files, manifest)
    sizes = ", ".join(f"{t.classes}: {t.size}" for t in manifest.tasks)
    log(f"stream ready in {time.time() - started:.1f}s: {len(manifest.tasks)} tasks ({sizes}), "
        f"indices 1..{manifest.tasks[-1].last_index}")
    return manifest


def publish_stream(files: RunFiles, manifest: StreamManifest) -> None:
    """Copy ``<run>/stream`` up to the run's URI and point the manifest's shards there, so
    workers on other nodes read them."""
    files.publish("stream")
    local = str((files.local / "stream").resolve())
    for task in manifest.tasks:
        task.train = [p.replace(local, files.location("stream")) for p in task.train]
        task.test = [p.replace(local, files.location("stream")) for p in task.test]
        task.val = [p.replace(local, files.location("stream")) for p in task.val]


def finish(cfg: BinPlayConfig, manifest: StreamManifest, state: dict[str, Any], files: RunFiles,
           wall: float) -> str:
    strategy = make_strategy(cfg)
    memory = strategy.memory(state, manifest.image_shape)
    report = build_report(cfg, state, memory, manifest.image_shape, wall, strategy.reproduces_paper)
    write_report(report, state.get("measurement", {}).get("grids", []), files.local)
    where = files.publish()
    print(f"average accuracy after the last task: {report['average_accuracy']:.2f}% | "
          f"report: {where}/report.json", flush=True)
    return f"{where}/report.json"


SaveHook = Callable[[dict[str, Any] | None, dict[str, Any]], None]


def train_in_process(cfg: BinPlayConfig, files: RunFiles, stream_dir: str | Path | None = None,
                     after_save: SaveHook | None = None) -> str:
    """Train (or resume) the stream in this process; checkpoints go to ``<run>/checkpoint``
    (copied up after every save when the run lives at a URI, fetched back to resume).
    ``after_save(state, metrics)`` runs once each save is on disk (Tune reports from it)."""
    started = time.time()
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    manifest = prepare_stream(cfg, files, stream_dir=stream_dir)
    check_models_fit(cfg, manifest.image_shape, manifest.num_classes)
    state = run_in_process(cfg, manifest, files, after_save=after_save)
    return finish(cfg, manifest, state, files, time.time() - started)


def run_in_process(cfg: BinPlayConfig, manifest: StreamManifest, files: RunFiles,
                   resume: dict[str, Any] | None = None, log: Callable[[str], None] | None = None,
                   after_save: SaveHook | None = None,
                   track_root: str | None = None) -> dict[str, Any]:
    """``run_stream`` in this process, checkpointed to ``<run>/checkpoint`` (copied up after
    every save when the run lives at a URI); a checkpoint found there (fetched back first)
    wins over ``resume``. ``log`` replaces the context's default printer; ``track_root``
    is where the tracker writes instead of the run's place (binplay.tracking)."""
    ckpt = files.local / "checkpoint"
    if files.fetch("checkpoint") and (ckpt / STATE_FILE).is_file():
        resume = load_state(ckpt, cfg)
        check_resume_workers(resume, 1, files.location("checkpoint"))

    def save(state: dict | None, metrics: dict) -> None:
        if state is not None:
            save_state(state, ckpt)
            files.publish("checkpoint")
        if after_save is not None:
            after_save(state, metrics)

    device = pick_device(cfg)
    if cfg.uses_replay_actors:  # the actors need a Ray: an embedded one unless one is connected
        from binplay.ray_train.cluster import ensure_ray

        ensure_ray(cfg, log=log or print)
    source = make_source(cfg, device, log=log or print)
    logged = {"log": log} if log is not None else {}
    try:
        return run_stream(cfg, manifest, TrainContext(
            device=device, resume_state=resume, save=save, replay=source,
            track_root=track_root or files.location(), **logged))
    finally:
        source.close()
