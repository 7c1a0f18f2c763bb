"""Run a whole stream in this process (no Ray): the reference path and the unit-test path.

The Ray Train path (binplay.ray_train) runs the same ``run_stream`` inside workers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from binplay.config import BinPlayConfig
from binplay.context import TrainContext
from binplay.data.stream import StreamManifest, build_stream
from binplay.engine import build_models, run_stream
from binplay.report import build_report, write_report
from binplay.state import STATE_FILE, load_state, save_state


def output_dir(cfg: BinPlayConfig, override: str | None = None) -> Path:
    return Path(override) if override else Path(cfg.run.output_dir) / cfg.name


def pick_device(cfg: BinPlayConfig) -> torch.device:
    if cfg.run.device == "cuda" or (cfg.run.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def prepare_stream(cfg: BinPlayConfig, out: Path, log=print) -> StreamManifest:
    started = time.time()
    manifest = build_stream(cfg, out / "stream")
    sizes = ", ".join(f"{t.classes}: {t.size}" for t in manifest.tasks)
    log(f"stream ready in {time.time() - started:.1f}s: {len(manifest.tasks)} tasks ({sizes}), "
        f"indices 1..{manifest.tasks[-1].last_index}")
    return manifest


def finish(cfg: BinPlayConfig, manifest: StreamManifest, state: dict[str, Any], out: Path,
           wall: float) -> Path:
    decoder = build_models(cfg, manifest)["decoder"]
    decoder.load_state_dict(state["models"]["decoder"])
    report = build_report(cfg, state, decoder, manifest.image_shape, wall)
    path = write_report(report, state["history"]["grids"], out)
    print(f"average accuracy after the last task: {report['average_accuracy']:.2f}% | "
          f"report: {path}", flush=True)
    return path


def train_in_process(cfg: BinPlayConfig, out: Path) -> Path:
    """Train (or resume) the stream in this process; checkpoints go to ``out/checkpoint``."""
    started = time.time()
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    manifest = prepare_stream(cfg, out)
    ckpt = out / "checkpoint"
    resume = load_state(ckpt, cfg) if (ckpt / STATE_FILE).is_file() else None
    ctx = TrainContext(device=pick_device(cfg), resume_state=resume,
                       save=lambda state, metrics: save_state(state, ckpt) if state else None)
    state = run_stream(cfg, manifest, ctx)
    return finish(cfg, manifest, state, out, time.time() - started)
