"""The one entry to train a run: in this process or through Ray Train, as the config says.

jobs.train, jobs.compare and Tune's trials call ``train``; jobs.learn places its run in a
state's staging area and calls the same two paths (``runner.run_in_process``,
``ray_train.trainer.fit_stream``). Imports go one way: this module -> runner and ray_train.
"""

from __future__ import annotations

from pathlib import Path

from binplay.config import BinPlayConfig
from binplay.runner import SaveHook, train_in_process
from binplay.storage import RunFiles
from binplay.tracking import check_tracker
from binplay.validation import check_run_place


def train(cfg: BinPlayConfig, files: RunFiles | None = None, stream_dir: str | Path | None = None,
          after_save: SaveHook | None = None, callbacks: list | None = None) -> str:
    """Train (or resume) the run ``cfg`` describes where it lives; returns its report's path.
    ``ray.num_workers=0`` trains in this process (``after_save`` sees every save), otherwise
    through Ray Train (``callbacks``: Ray Train's, e.g. Tune's report callback)."""
    check_tracker(cfg)
    check_run_place(cfg)  # a refused resume leaves the run's stream and checkpoints alone
    files = files or RunFiles(cfg)
    if cfg.ray.num_workers == 0:
        return train_in_process(cfg, files, stream_dir, after_save)
    from binplay.ray_train.trainer import train_with_ray

    return train_with_ray(cfg, files, None if stream_dir is None else str(stream_dir), callbacks)
