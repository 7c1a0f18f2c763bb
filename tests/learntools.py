"""Helpers for the jobs.learn tests: per-task Parquet files, a state's file digest, job runs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from conftest import synthetic_images, tiny_config, write_parquet
from raytools import REPO

TASKS = [[0, 1], [2], [3]]


def task_files(root: Path, per_class: int = 48, tasks: list[list[int]] = TASKS) -> dict[str, Path]:
    """The tiny synthetic stream (same images as conftest's ``synthetic_data``), cut per task:
    ``t<k>`` / ``t<k>_test`` per task, ``train`` / ``test`` whole."""
    root.mkdir(parents=True, exist_ok=True)
    classes = sorted(c for task in tasks for c in task)
    tr_x, tr_y = synthetic_images(48, classes, seed=1)
    te_x, te_y = synthetic_images(16, classes, seed=2)
    keep = np.concatenate([np.flatnonzero(tr_y == c)[:per_class] for c in classes])
    keep.sort()
    tr_x, tr_y = tr_x[keep], tr_y[keep]
    files = {"train": write_parquet(root / "train.parquet", tr_x, tr_y),
             "test": write_parquet(root / "test.parquet", te_x, te_y)}
    for k, task in enumerate(tasks):
        rows, test_rows = np.isin(tr_y, task), np.isin(te_y, task)
        files[f"t{k}"] = write_parquet(root / f"t{k}.parquet", tr_x[rows], tr_y[rows])
        files[f"t{k}_test"] = write_parquet(root / f"t{k}_test.parquet", te_x[test_rows], te_y[test_rows])
    return files


def learn_config(files: dict[str, Path], tmp: Path, *overrides: str) -> Path:
    """A YAML config that jobs.train (over the whole stream) and jobs.learn (per task) share."""
    tasks = "[" + ",".join("[" + ",".join(map(str, t)) + "]" for t in TASKS) + "]"
    cfg = tiny_config(files, tmp, f"stream.tasks={tasks}", "run.threads=1", *overrides)
    path = tmp / "learn.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path


def digest(root: Path) -> dict[str, str]:
    """Every file under a state, by relative path: compare before and after a refused job."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def job_env(**extra: str) -> dict[str, str]:
    paths = [str(REPO / "service"), str(REPO), str(REPO / "tests")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def run_module(args: list[str], env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env or job_env(),
                          capture_output=True, text=True, timeout=timeout)
