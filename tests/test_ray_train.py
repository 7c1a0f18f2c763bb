"""Ray Train path: 2 CPU workers (gloo), unique assignment, resume, worker failure.

Ray against the in-process core, computed alike: tests/test_learn_ray.py (the learn path is
jobs.train's Ray path placed in a staging area)."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest
import torch

from binplay.state import load_state
from raytools import WORKER_PID, run_job, write_config

pytestmark = pytest.mark.ray


def _config(tiny, tmp_path, *extra):
    cfg = tiny("ray.num_workers=2", "ray.cpus_per_worker=0.5", "ray.max_failures=2",
               "ray.checkpoint_every_epochs=100", *extra)
    return write_config(cfg, tmp_path / "tiny.yaml"), cfg


def _checkpoint_states(cfg, root):
    for entry in sorted(os.listdir(root)):
        if entry.startswith("checkpoint_") and os.path.isdir(os.path.join(root, entry)):
            yield load_state(os.path.join(root, entry), cfg)


def test_two_workers_survive_a_killed_worker_with_globally_unique_assignment(ray_head, tiny,
                                                                           tmp_path):
    # One run does both (each Ray job costs ~45 s of the suite): a worker SIGKILLed in task
    # 1's decoder phase is retried (ray.max_failures=2) and the run still assigns every index
    # of each task to exactly one rank. Each worker rehearses through its own replay actor
    # (replay.mode=actors). The actors book no CPU: 2 workers x 0.5 CPU leave the head's last
    # CPU to Ray Data's reads, which wait forever with less (seen: 2 actors x 0.1 CPU hung the
    # second task's read).
    path, cfg = _config(tiny, tmp_path, "run.keep_checkpoints=null",  # keep the mid-task ones
                        "replay.mode=actors", "replay.cpus_per_actor=0")
    killed = []

    def kill_a_worker(line, proc):
        match = WORKER_PID.search(line)
        if match and not killed and "task 1/2 | decoder" in line:
            os.kill(int(match.group(1)), signal.SIGKILL)
            killed.append(int(match.group(1)))

    code, out = run_job(["jobs.train", "--config", str(path), "--output", str(tmp_path / "out")],
                        ray_head["env"], on_line=kill_a_worker)
    assert killed, "never saw a worker line to kill"
    assert code == 0, out[-3000:]
    assert "replay: 1 actor(s) ready" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["accuracy_matrix"]) == 2
    seen_tasks = set()
    for state in _checkpoint_states(cfg, tmp_path / "out"):  # --output is the run's place
        if "mapping" not in state:
            continue
        per_rank = state["mapping"]
        assert len(per_rank) == 2 and all(len(m) > 0 for m in per_rank)
        task = state["task"]
        first = 1 if task == 0 else state["ledger"]["tasks"][-1]["last_index"] + 1
        last = first + 96 - 1  # 2 classes x 48 synthetic images per task
        assigned = torch.cat(per_rank).sort().values
        assert assigned.tolist() == list(range(first, last + 1))  # a permutation of the task
        seen_tasks.add(task)
    assert seen_tasks == {0, 1}


def test_driver_killed_after_task_1_resumes_at_task_2(ray_head, tiny, tmp_path):
    # A checkpoint every 2 epochs (~12 a run), of which run.keep_checkpoints=1 stay.
    path, cfg = _config(tiny, tmp_path, "ray.num_workers=1", "ray.cpus_per_worker=1",
                        "ray.checkpoint_every_epochs=2", "run.keep_checkpoints=1")
    args = ["jobs.train", "--config", str(path), "--output", str(tmp_path / "out")]

    def kill_when_task_2_starts(line, proc):
        if "task 2/2 |" in line:  # task 1's checkpoint was reported before this line
            os.killpg(proc.pid, signal.SIGKILL)

    code, first = run_job(args, ray_head["env"], on_line=kill_when_task_2_starts)
    assert code != 0 and "task 1/2 done" in first
    assert not (tmp_path / "out" / "report.json").exists()
    code, second = run_job(args, ray_head["env"])
    assert code == 0, second[-3000:]
    # Killed at task 2's first lines: before or after its first mid-task checkpoint.
    assert re.search(r"resuming task 2/2 at epoch \d|continuing after 1 learnt task\(s\): "
                     r"task 2/2 is next", second), second[-3000:]
    assert "task 1/2 |" not in second  # task 1 was not retrained
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["accuracy_matrix"]) == 2
    # About 20 were written. Ray deletes beyond the newest 1 as each new one registers; the
    # kill can orphan up to 2 that were written but not yet registered (one in the worker's
    # one-slot report queue, one being written), which no later run knows of: at most 3 stay.
    checkpoints = [p for p in (tmp_path / "out").iterdir()
                   if p.is_dir() and p.name.startswith("checkpoint_")]  # not its manager's .json
    assert 1 <= len(checkpoints) <= 3, sorted(p.name for p in checkpoints)


def test_checkpoint_of_another_config_is_refused(ray_head, tiny, tmp_path):
    path, cfg = _config(tiny, tmp_path, "ray.num_workers=1", "ray.cpus_per_worker=1")
    os.makedirs(os.path.join(cfg.run.storage_path, cfg.name))
    with open(os.path.join(cfg.run.storage_path, cfg.name, "binplay_run.json"), "w") as fh:
        json.dump({"fingerprint": "0000", "name": cfg.name}, fh)
    code, out = run_job(["jobs.train", "--config", str(path)], ray_head["env"])
    assert code == 2
    assert "different config" in out.strip().splitlines()[-1]


def test_ray_bookkeeping_loggers_are_quiet_unless_asked():
    import logging

    from binplay.ray_train.quiet import quiet_ray_logs, ray_info_loggers

    names = ray_info_loggers()
    assert any(n.endswith("context.py") for n in names)  # Train v2 reports by file path
    before = {name: logging.getLogger(name).level for name in [*names, None]}
    for name in names:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.getLogger().setLevel(logging.INFO)  # as Ray's workers configure the root
    quiet_ray_logs(show=True)
    assert logging.getLogger("ray.train.v2.torch.train_loop_utils").isEnabledFor(logging.INFO)
    quiet_ray_logs()
    for name in [*names, "ray.train.v2.torch.train_loop_utils",
                 "ray.train.v2._internal.execution.storage"]:
        logger = logging.getLogger(name)
        assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING), name
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


NICENESS_PROBE = """
import os, ray
from binplay.config import load_config
from binplay.ray_train.cluster import ensure_ray
from binplay.replay.actors import raise_niceness

ensure_ray(load_config(None, ["ray.worker_niceness=7"]), log=lambda line: None)

@ray.remote
def probe():
    return os.nice(0), raise_niceness(3), raise_niceness(9)

print("niceness", *ray.get(probe.remote()))
"""


def test_an_embedded_rays_workers_run_at_the_configured_niceness():
    # Ray's own default (15) let any process at 0 take the cores from its workers; an
    # actor's replay.nice raises its niceness to a target, never adds to the worker's.
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", NICENESS_PROBE], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-4:] == ["niceness", "7", "7", "9"]


def test_the_job_sets_trains_poll_and_ray_datas_read_path(monkeypatch):
    """The two fixed costs of the Ray path (docs/BENCHMARKS.md, issue 29): Train's controller
    polls every 0.25 s unless the user says otherwise, and the datasets a job creates read
    Parquet by the file-based path."""
    import ray.data

    from binplay.ray_train.cluster import POLL_INTERVAL_ENV, configure_ray_data, worker_env

    monkeypatch.delenv(POLL_INTERVAL_ENV, raising=False)
    assert worker_env()[POLL_INTERVAL_ENV] == "0.25"
    monkeypatch.setenv(POLL_INTERVAL_ENV, "1.5")
    assert worker_env()[POLL_INTERVAL_ENV] == "1.5"
    ctx = ray.data.DataContext.get_current()
    monkeypatch.setattr(ctx, "use_datasource_v2", True)
    monkeypatch.setattr(ctx, "enable_progress_bars", True)
    configure_ray_data()
    assert ctx.use_datasource_v2 is False and ctx.enable_progress_bars is False


def test_a_refused_run_leaves_no_fingerprint_in_an_existing_run_place(tiny, tmp_path):
    """The Ray path checks the data before it claims the run's place: a corrupt Parquet
    file in a place that already existed (no marker) leaves it without one, so a corrected
    config of another fingerprint can still start there."""
    from binplay.data.types import DataError
    from binplay.ray_train.trainer import FINGERPRINT_FILE, train_with_ray
    from binplay.storage import RunFiles, run_root

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    cfg = tiny("ray.num_workers=1", f"stream.path={bad}")
    place = run_root(cfg)
    os.makedirs(place)
    with pytest.raises(DataError, match="not a readable Parquet file"):
        train_with_ray(cfg, RunFiles(cfg))
    assert not os.path.exists(os.path.join(place, FINGERPRINT_FILE))
