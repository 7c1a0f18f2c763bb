"""jobs.tune: a search over whole tiny runs with ASHA, best.yaml, resume after a kill."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys

import pytest
import yaml
from eventtools import scalars

from raytools import REPO, run_job, write_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

BAD_LR = 1e-9  # the classifier barely moves: chance accuracy, ASHA's to stop
DIVERGING_LR = 1e30  # the classifier's loss is NaN at its first epoch: the trial fails


def _search(tiny, tmp_path, lrs, overrides=(), space=None, **extra):
    base = write_config(tiny("classifier.epochs=3", "autoencoder.decoder_epochs=4",
                             "stream.val_fraction=0.2"),  # a search chooses on validation
                        tmp_path / "base.yaml")
    spec = {"name": "t", "base": str(base), "space": space or {"classifier.lr": {"grid": lrs}},
            "overrides": {"run.threads": 1, **dict(overrides)}, "resources": {"cpus": 1},
            "max_concurrent_trials": 1, **extra}
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _env():
    # RAY_DEDUP_LOGS=0: every trial's progress line reaches the driver (the kill test counts them)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
           "RAY_DEDUP_LOGS": "0"}
    env.pop("RAY_ADDRESS", None)  # an embedded local Ray, as from a fresh clone
    return env


def _trials(out):
    with open(out / "trials.csv") as fh:
        return list(csv.DictReader(fh))


def test_misspelt_space_field_fails_in_one_line(tiny, tmp_path):
    base = write_config(tiny(), tmp_path / "base.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "space": {"classifier.lrr": {"grid": [1]}}}))
    proc = subprocess.run([sys.executable, "-m", "jobs.tune", "--config", str(path), "--dry-run"],
                          cwd=REPO, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "classifier.lrr" in proc.stderr


def test_too_many_concurrent_trials_refused_in_one_line(tiny, tmp_path):
    path = _search(tiny, tmp_path, [1e-3], max_concurrent_trials=64)
    code, out = run_job(["jobs.tune", "--config", str(path), "--output", str(tmp_path / "s")],
                        _env(), timeout=120)
    assert code == 2 and "concurrent" in out.strip().splitlines()[-1], out[-2000:]


def test_search_stops_the_bad_trial_and_writes_a_trainable_best(tiny, tmp_path):
    path = _search(tiny, tmp_path, [1e-3, 3e-3, BAD_LR, DIVERGING_LR])
    out = tmp_path / "search"
    code, log = run_job(["jobs.tune", "--config", str(path), "--output", str(out)], _env())
    assert code == 0, log[-4000:]
    rows = _trials(out)
    assert len(rows) == 4
    diverged = [r for r in rows if float(r["classifier.lr"]) == DIVERGING_LR]
    assert diverged[0]["status"] == "error" and "diverged" in diverged[0]["error"], diverged
    assert "1 failed" in log and "no best" not in log
    bad = [r for r in rows if float(r["classifier.lr"]) == BAD_LR]
    assert bad[0]["stopped_early"] == "True" and bad[0]["val_average_accuracy_task_2"] == ""
    assert bad[0]["val_average_accuracy_task_1"] != ""  # judged after its first task
    # ASHA may also stop a good trial that is below the first at a rung; some complete
    completed = [r for r in rows if r["status"] == "completed"]
    assert completed and all(r["val_average_accuracy_task_2"] != "" for r in completed)
    for name in ("trials.md", "metric_per_task.png", "best.yaml"):
        assert (out / name).is_file()
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["classifier"]["lr"] in [float(r["classifier.lr"]) for r in completed]
    assert best["stream"]["tasks"] == [[0, 1], [2, 3]]
    # one shared copy of the stream for all trials
    assert len([p for p in out.iterdir() if p.name.startswith("stream-") and p.is_dir()]) == 1
    dry = subprocess.run([sys.executable, "-m", "jobs.train", "--config", str(out / "best.yaml"),
                          "--dry-run"], cwd=REPO, env=_env(), capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    # Tracking: Tune's TensorBoard logger has each task's metrics in the trial's directory,
    # the trial's own run every epoch's in its tensorboard/.
    done = next(r for r in completed if r["val_average_accuracy_task_2"] != "")
    trial_dir = next((out / "search").glob(f"binplay_t_{done['trial_id']}_*"))
    tuned = scalars(trial_dir)
    assert tuned["ray/tune/val_average_accuracy"][2] == pytest.approx(
        float(done["val_average_accuracy_task_2"]))
    for tag in ("accuracy/test_average", "accuracy/val_task_1", "psnr/mean", "memory/carried_bytes",
                "last_loss/classifier"):
        assert sorted(tuned[f"ray/tune/{tag}"]) == [1, 2], tag
    run = scalars(out / "trials" / f"train-{done['trial_id']}" / "tensorboard")
    assert len(run["loss/classifier"]) == 2 * 3  # classifier.epochs=3, 2 tasks
    assert run["accuracy/val_average"][2] == pytest.approx(float(done["val_average_accuracy_task_2"]))


def test_killed_search_resumes_without_rerunning_finished_trials(tiny, tmp_path):
    # longer trials than the other test: the kill must land inside the second trial
    # The space changes nothing that is learnt: equal metrics, so ASHA stops no trial and
    # each one finishes (a stopped trial would leave no report to compare).
    # run.tracker none: no TensorBoard files anywhere, Tune's own logger's included.
    path = _search(tiny, tmp_path, None, {"autoencoder.decoder_epochs": 15, "run.tracker": "none"},
                   space={"run.fidelity_samples": {"grid": [8, 9, 10]}})
    out = tmp_path / "search"
    args = ["jobs.tune", "--config", str(path), "--output", str(out)]
    seen = {"done": 0}

    def kill_in_second_trial(line, proc):
        if "task 2/2 starts" in line:
            seen["done"] += 1
            if seen["done"] == 2:  # trial 1 finished; trial 2 is in its last task
                os.killpg(proc.pid, signal.SIGKILL)

    code, first = run_job(args, _env(), on_line=kill_in_second_trial)
    (tmp_path / "first.log").write_text(first)
    assert code == -signal.SIGKILL, first[-3000:]
    done = set(re.findall(r"Trial binplay_t_(\w+) completed", first))
    assert len(done) == 1, first[-3000:]
    runs = {t: out / "trials" / f"train-{t}" / "report.json" for t in done}
    mtimes = {t: path.stat().st_mtime for t, path in runs.items()}
    code, second = run_job(args, _env())
    assert code == 0, second[-4000:]
    assert "resuming" in second
    rows = _trials(out)
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows), rows
    for t in done:  # the finished trial was neither started nor trained again
        assert f"Trial binplay_t_{t} started" not in second
        assert runs[t].stat().st_mtime == mtimes[t]
    assert second.count("task 1/2 starts") == 1  # the killed trial resumed at task 2
    assert not list(out.rglob("events.out.tfevents*")), "run.tracker none wrote TensorBoard files"
    assert list(out.rglob("result.json"))  # Tune's JSON logger, which the results come from
