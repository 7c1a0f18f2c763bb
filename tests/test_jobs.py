"""The jobs from the command line: help, generate and evaluate on a run, where a run goes, refusals.

`ray job submit` against a running head: tests/test_learn_ray.py (jobs.learn, once on a Ray Train
worker inside the submitted job)."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from binplay.data.sources import DEBIAN_FMNIST
from conftest import MIRROR
from raytools import REPO


def _fashion_mnist_available() -> bool:
    return (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file() or \
        (MIRROR / "FashionMNIST" / "raw").is_dir()


def test_generate_rejects_missing_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "jobs.generate", "--checkpoint",
                             str(tmp_path / "none")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert "no saved state" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("job", ["train", "evaluate", "generate"])
def test_every_job_has_help(job):
    result = subprocess.run([sys.executable, "-m", f"jobs.{job}", "--help"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "usage:" in result.stdout


def test_evaluate_and_generate_an_in_process_run(tiny, tmp_path):
    from binplay.runner import train_in_process
    from binplay.storage import RunFiles

    cfg = tiny("autoencoder.decoder_epochs=2", "classifier.epochs=1")
    train_in_process(cfg, RunFiles(cfg))
    run_dir = tmp_path / "runs" / "tiny"
    report = json.loads((run_dir / "report.json").read_text())
    ev = subprocess.run([sys.executable, "-m", "jobs.evaluate", "--checkpoint", str(run_dir),
                         "--output", str(tmp_path / "ev")], cwd=REPO, capture_output=True,
                        text=True)
    assert ev.returncode == 0, ev.stderr
    result = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    # The same model on the same test split: the job reproduces the run's last row.
    assert list(result["accuracy_per_task"].values()) == report["accuracy_matrix"][-1]
    # ...and its confusion matrix agrees with it: the diagonal holds the hits of each task.
    confusion = result["confusion"]
    for task, acc in zip(cfg.stream.tasks, result["accuracy_per_task"].values(), strict=True):
        images = sum(sum(confusion[c]) for c in task)
        assert sum(confusion[c][c] for c in task) == pytest.approx(acc / 100 * images)
    assert "most confused (class->taken for" in ev.stdout
    gen = subprocess.run([sys.executable, "-m", "jobs.generate", "--checkpoint", str(run_dir),
                          "--start", "90", "--stop", "110", "--output", str(tmp_path / "gen")],
                         cwd=REPO, capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    table = pq.read_table(tmp_path / "gen" / "indices_90_110.parquet")
    assert table.column("index").to_pylist() == list(range(90, 111))  # spans both tasks
    bad = subprocess.run([sys.executable, "-m", "jobs.generate", "--checkpoint", str(run_dir),
                          "--start", "150", "--stop", "999"], cwd=REPO, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "outside the ledger" in bad.stderr


def _train(args, capsys):
    from jobs.train import main

    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_output_is_the_runs_place(tiny, tmp_path, capsys):
    from raytools import write_config

    cfg = tiny("autoencoder.decoder_epochs=1", "classifier.epochs=1")
    path = str(write_config(cfg, tmp_path / "tiny.yaml"))
    code, out, _ = _train(["--config", path, "--output", str(tmp_path / "a")], capsys)
    assert code == 0
    assert (tmp_path / "a" / "checkpoint" / "state.pt").is_file()  # the checkpoint lives there
    assert (tmp_path / "a" / "report.json").is_file()
    assert not (tmp_path / "runs").exists()  # nothing went to run.storage_path/name
    code, out, _ = _train(["--config", path, "--output", str(tmp_path / "b")], capsys)
    assert code == 0 and "run already complete" not in out  # a new place is a new run
    assert "task 1/2 starts" in out
    code, out, _ = _train(["--config", path, "--output", str(tmp_path / "a")], capsys)
    assert code == 0 and "run already complete (2 tasks)" in out  # the same place resumes


def test_mid_task_checkpoint_of_another_worker_count_is_refused_in_one_line(tiny, tmp_path, capsys):
    from binplay.state import load_state, save_state
    from raytools import write_config

    cfg = tiny("autoencoder.decoder_epochs=1", "classifier.epochs=1")
    path = str(write_config(cfg, tmp_path / "tiny.yaml"))
    assert _train(["--config", path, "--output", str(tmp_path / "a")], capsys)[0] == 0
    ckpt = tmp_path / "a" / "checkpoint"
    state = load_state(ckpt)
    state.update(task=1, cursor=2, world_size=2)  # as if 2 workers stopped mid-task 2
    save_state(state, ckpt)
    before = (ckpt / "state.pt").read_bytes()
    code, _, err = _train(["--config", path, "--output", str(tmp_path / "a")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "mid-task with 2 worker(s)" in err
    assert (ckpt / "state.pt").read_bytes() == before  # nothing saved was touched


def test_driver_checks_the_latest_ray_checkpoint_before_fit(tiny, tmp_path):
    from binplay.ray_train.trainer import check_latest_checkpoint
    from binplay.state import StateError, fresh_state, save_state
    from binplay.storage import run_root

    cfg = tiny("ray.num_workers=2")
    check_latest_checkpoint(cfg)  # no checkpoint yet: nothing to check
    root = tmp_path / "runs" / "tiny"
    assert str(root) == run_root(cfg)
    state = fresh_state(cfg)
    state.update(cursor=4, world_size=1)
    save_state(state, root / "checkpoint_2026-01-01_00-00-00.000000")
    save_state(fresh_state(cfg), root / "checkpoint_2025-01-01_00-00-00.000000")  # older
    with pytest.raises(StateError, match="mid-task with 1 worker"):
        check_latest_checkpoint(cfg)
    state["fingerprint"] = "0000"
    save_state(state, root / "checkpoint_2026-01-01_00-00-00.000000")
    with pytest.raises(StateError, match="different config"):
        check_latest_checkpoint(cfg)
