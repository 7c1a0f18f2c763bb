"""Experiment tracking: a run's metrics as TensorBoard events, read back; they change nothing."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch
from eventtools import scalars

from binplay.engine import phase_plan
from binplay.state import load_state
from binplay.tracking import MlflowTracker, tracking_location
from learntools import learn_config, task_files


def _run(tiny, name: str, *overrides: str):
    from binplay.launch import train

    cfg = tiny(f"name={name}", "stream.val_fraction=0.2", "autoencoder.decoder_epochs=2",
               "classifier.epochs=2", "run.threads=1", *overrides)
    report = json.loads(open(train(cfg)).read())
    return cfg, report


def test_a_run_writes_its_metrics_as_tensorboard_events_and_they_change_nothing(tiny, tmp_path):
    cfg, report = _run(tiny, "tracked")
    _, untracked = _run(tiny, "untracked", "run.tracker=none")
    run = tmp_path / "runs"
    assert not (run / "untracked" / "tensorboard").exists()
    # The same numbers and weights with and without the tracker.
    assert report["accuracy_matrix"] == untracked["accuracy_matrix"]
    assert report["fidelity_psnr"] == untracked["fidelity_psnr"]
    a, b = (load_state(run / name / "checkpoint", cfg)["models"] for name in ("tracked", "untracked"))
    for model in a:
        for key, tensor in a[model].items():
            assert torch.equal(tensor, b[model][key]), (model, key)

    events = scalars(run / "tracked" / "tensorboard")
    plan = phase_plan(cfg)
    for phase in {p for p, _ in plan}:  # every epoch of both tasks, at its place in the run
        steps = [t * len(plan) + i + 1 for t in range(2) for i, (p, _) in enumerate(plan) if p == phase]
        assert sorted(events[f"loss/{phase}"]) == steps, phase
        assert sorted(events[f"samples_per_s/{phase}"]) == steps
        assert all(v > 0 for v in events[f"samples_per_s/{phase}"].values())
    assert sorted(events["replay_wait/classifier"]) == [s for s in events["loss/classifier"] if s > len(plan)]
    for t, row in enumerate(report["accuracy_matrix"]):  # after each task, step = tasks learnt
        assert events["accuracy/test_average"][t + 1] == pytest.approx(sum(row) / len(row))
        for j, acc in enumerate(row):
            assert events[f"accuracy/test_task_{j + 1}"][t + 1] == pytest.approx(acc)
        val = report["val_accuracy_matrix"][t]
        assert events["accuracy/val_average"][t + 1] == pytest.approx(sum(val) / len(val))
        psnr = report["fidelity_psnr"][t]
        assert events["psnr/mean"][t + 1] == pytest.approx(sum(psnr) / len(psnr), rel=1e-6)
        regen = report["regeneration_accuracy"][t]
        for j, share in enumerate(regen):
            assert events[f"regen_accuracy/task_{j + 1}"][t + 1] == pytest.approx(share)
    assert events["memory/carried_bytes"][2] == report["memory_bytes"]
    assert events["memory/classifier_bytes"][2] == report["classifier_bytes"]
    assert events["last_loss/classifier"][2] == events["loss/classifier"][2 * len(plan)]


def test_mlflow_without_the_package_is_refused_in_one_line(tiny, tmp_path, capsys):
    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here")
    from jobs.train import main

    out = tmp_path / "run"
    assert main(["--set", "run.tracker=mlflow", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.tracker" in err and "mlflow" in err and "pip install" in err
    assert not out.exists()


def test_mlflow_tracker_logs_through_rays_setup_mlflow(tiny, monkeypatch):
    # mlflow itself is not installed here: Ray's setup_mlflow is stood in for by a recorder.
    calls: dict = {"metrics": []}

    class Recorder:
        def log_metrics(self, values, step):
            calls["metrics"].append((step, dict(values)))

        def end_run(self):
            calls["ended"] = True

    def setup_mlflow(**kwargs):
        calls["setup"] = kwargs
        return Recorder()

    monkeypatch.setattr("ray.air.integrations.mlflow.setup_mlflow", setup_mlflow)
    cfg = tiny("run.tracker=mlflow")
    tracker = MlflowTracker(cfg, tracking_location(cfg))
    tracker.epoch(3, "decoder", 0.5, 1000.0, 2.0, replay_wait=0.5)
    tracker.task_end(0, {"accuracy_row": [90.0], "val_accuracy_row": [80.0],
                         "fidelity_psnr_row": [20.0]}, 100, 200)
    tracker.close()
    assert calls["setup"]["tracking_uri"].startswith("file://") and \
        calls["setup"]["tracking_uri"].endswith("/tiny/mlruns")
    assert calls["setup"]["config"]["classifier.lr"] == cfg.classifier.lr
    assert calls["metrics"][0] == (3, {"loss/decoder": 0.5, "samples_per_s/decoder": 1000.0,
                                       "epoch_seconds/decoder": 2.0, "replay_wait/decoder": 0.25})
    step, task = calls["metrics"][1]
    assert step == 1 and task["accuracy/test_average"] == 90.0 and task["psnr/mean"] == 20.0
    assert task["memory/carried_bytes"] == 100 and task["last_loss/decoder"] == 0.5
    assert calls["ended"]


def test_tracking_uri_is_a_log_directory_shared_by_runs(tiny, tmp_path):
    cfg = tiny("name=a", f"run.tracking_uri={tmp_path / 'tb'}")
    assert tracking_location(cfg) == f"{tmp_path / 'tb'}/a"
    assert tracking_location(tiny("name=a")) == f"{tmp_path / 'runs'}/a/tensorboard"
    assert tracking_location(tiny(), "s3://bucket/shop") == "s3://bucket/shop/tensorboard"


def test_learns_track_beside_the_state_versions(tmp_path, capsys):
    from jobs.learn import main

    files = task_files(tmp_path / "data")
    config = learn_config(files, tmp_path, "autoencoder.decoder_epochs=2", "classifier.epochs=1")
    state = tmp_path / "state"
    for k in range(2):
        args = ["--state", str(state), "--data", str(files[f"t{k}"]), "--test", str(files["test"])]
        assert main(args + ["--config", str(config)] * (k == 0)) == 0, capsys.readouterr().err
    events = scalars(state / "tensorboard")
    ledger = json.loads((state / "versions" / "v0002" / "ledger.json").read_text())
    for k, task in enumerate(ledger["tasks"]):  # each learn's task at its task number
        at_learn = task["metrics"]["accuracy_per_task_at_learn"]
        assert events["accuracy/test_task_1"][k + 1] == pytest.approx(at_learn["0"])
    assert "loss/classifier" in events and not (state / "staging").exists()
    shutil.rmtree(state)
