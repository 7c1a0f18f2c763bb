"""One Tune trial = one whole continual run, reporting after every task.

A trial's run is named from its Tune trial id (``train-<trial_id>``) under
``<search>/trials/``, so a trial that Tune restarts after the driver died resumes its
own run from the library's checkpoint instead of starting over. In-process trials
(``ray.num_workers: 0``) run ``train_in_process`` inside the trial's process; larger
ones fit a ``TorchTrainer`` from the trial, whose rank-0 reports Tune receives through
``TuneReportCallback`` (shared RAY-NOTES, "Ray Tune with Train v2").
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from binplay.config import BinPlayConfig
from binplay.tune.config import METRIC, TEST_METRIC, TIME_ATTR, SearchConfig, trial_config


def trial_run_name(trial_id: str) -> str:
    return f"train-{trial_id}"


def stream_key(cfg: BinPlayConfig) -> str:
    """What defines the stream's shards (as ``build_stream``'s stamp), not the trial."""
    from binplay.data.stream import stream_identity

    blob = json.dumps(stream_identity(cfg), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def shared_stream(cfg: BinPlayConfig, search_dir: Path, log=print) -> Path:
    """Build the stream once per search; every trial of the same stream reuses it.

    Concurrent trials would race to write the same shards, so the first builds under
    a file lock and the others wait, then find it complete (``build_stream`` reuses a
    directory whose stamp matches)."""
    from binplay.data.stream import build_stream

    directory = search_dir / f"stream-{stream_key(cfg)}"
    search_dir.mkdir(parents=True, exist_ok=True)
    with open(search_dir / f"{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            build_stream(cfg, directory)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return directory


def _report_from_file(report_path: str) -> dict[str, Any] | None:
    """The last task of a run that was already complete when its trial (re)started."""
    try:
        report = json.loads(Path(report_path).read_text())
        rows, val_rows = report["accuracy_matrix"], report["val_accuracy_matrix"]
    except (OSError, ValueError, KeyError):
        return None
    if not rows or not val_rows or any(a is None for a in val_rows[-1]):
        return None
    return {METRIC: sum(val_rows[-1]) / len(val_rows[-1]), TEST_METRIC: sum(rows[-1]) / len(rows[-1]),
            TIME_ATTR: len(rows), "accuracy_row": rows[-1], "val_accuracy_row": val_rows[-1]}


def make_trainable(search: SearchConfig, base: dict[str, Any],
                   search_dir: str) -> Callable[[dict[str, Any]], None]:
    """The function trainable of a search (a closure: Tune pickles it with its inputs)."""
    root = Path(search_dir)

    def trial(params: dict[str, Any]) -> None:
        import ray.tune

        from binplay.launch import train
        from binplay.storage import RunFiles
        from binplay.tracking import tracked

        trial_id = ray.tune.get_context().get_trial_id()
        cfg = trial_config(search, base, params, name=trial_run_name(trial_id),
                           storage=str(root / "trials"))
        stream_dir = shared_stream(cfg, root)
        reported = []

        def after_save(state: dict | None, metrics: dict[str, Any]) -> None:
            # In-process trials: only task ends reach Tune. A mid-task save has no new
            # accuracy, and the checkpoint it wrote is what a restart resumes from.
            if METRIC not in metrics:
                return
            reported.append(metrics["task"])
            # With the task's tracked scalars (accuracy per task, PSNR, memory, last losses):
            # Tune's own TensorBoard logger writes them into the trial's directory.
            ray.tune.report({METRIC: float(metrics[METRIC]), TIME_ATTR: metrics["task"] + 1,
                             TEST_METRIC: float(metrics.get(TEST_METRIC, float("nan"))),
                             "accuracy_row": list(metrics["accuracy_row"]),
                             "val_accuracy_row": list(metrics["val_accuracy_row"]),
                             **tracked(metrics)})

        callbacks = None
        if cfg.ray.num_workers > 0:
            from ray.tune.integration.ray_train import TuneReportCallback

            # Each Train report is forwarded; the worker puts the metric and the task
            # count in every one of them (worker.tune_metrics), as ASHA needs.
            callbacks = [TuneReportCallback()]
            reported.append(-1)
        report_path = train(cfg, RunFiles(cfg), stream_dir, after_save, callbacks)
        if not reported:
            # The run was complete before this (re)start: give Tune its final result once.
            final = _report_from_file(report_path)
            if final is not None:
                ray.tune.report(final)

    trial.__name__ = f"binplay_{search.name}"
    return trial

