"""jobs.learn through Ray Train (the jobs.train path, placed in the state's staging area) and
jobs.predict's worker-side checks through Ray Data, on the session's Ray head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from binplay.state import load_state
from conftest import png_bytes, synthetic_images
from jobs.learn import main as learn
from learntools import job_env, learn_config, run_module, task_files

FAST = ("autoencoder.decoder_epochs=3", "classifier.epochs=2", "ray.cpus_per_worker=0.5")


@pytest.mark.ray
@pytest.mark.slow
def test_learn_through_ray_train_matches_in_process(ray_head, tmp_path):
    files = task_files(tmp_path / "data")
    config = learn_config(files, tmp_path, *FAST)
    env = job_env(**{k: v for k, v in ray_head["env"].items() if k.startswith("RAY_")})
    for k in range(2):
        first = ["--config", str(config)] if k == 0 else []
        ray = run_module(["jobs.learn", "--state", str(tmp_path / "ray"), "--data", str(files[f"t{k}"]),
                          "--set", "ray.num_workers=1", *first], env, timeout=600)
        assert ray.returncode == 0, ray.stdout[-3000:] + ray.stderr
        assert f"published version {k + 1}" in ray.stdout and "ray train" not in ray.stderr.lower()
        # The in-process learn runs in this process: no Ray, no job to start.
        assert learn(["--state", str(tmp_path / "local"), "--data", str(files[f"t{k}"]), *first]) == 0
    assert not (tmp_path / "ray" / "staging").exists()
    # The second learn resumed the workers from version 1 (its seed checkpoint), not from scratch.
    a, b = (load_state(tmp_path / s / "versions" / "v0002") for s in ("ray", "local"))
    assert a["ledger"] == b["ledger"] and a["task"] == 2
    # One Ray worker (DDP of one) computes what the in-process learn computes: every model.
    # (Replay actors against inline, bit for bit: tests/test_replay_actors.py.)
    assert a["models"].keys() == b["models"].keys()
    for name, weights in b["models"].items():
        for key, value in weights.items():
            assert torch.allclose(value.float(), a["models"][name][key].float(), atol=1e-5), (name, key)


@pytest.mark.ray
def test_predict_refuses_a_corrupt_image_inside_ray_data_in_one_line(ray_head, tmp_path):
    files = task_files(tmp_path / "data")
    config = learn_config(files, tmp_path, "autoencoder.decoder_epochs=1", "classifier.epochs=1")
    assert learn(["--state", str(tmp_path / "state"), "--data", str(files["t0"]),
                  "--config", str(config)]) == 0
    x, _ = synthetic_images(6, [0], seed=4)
    blobs = [png_bytes(img) for img in x]
    blobs[4] = b"\x89PNG not really"  # row 0 is fine: only a Ray Data task sees this one
    pq.write_table(pa.table({"image": blobs, "id": np.arange(6)}), tmp_path / "x.parquet")
    env = job_env(**{k: v for k, v in ray_head["env"].items() if k.startswith("RAY_")})
    before = json.loads((tmp_path / "state" / "LATEST").read_text())
    pred = run_module(["jobs.predict", "--state", str(tmp_path / "state"), "--data",
                       str(tmp_path / "x.parquet"), "--output", str(tmp_path / "pred"),
                       "--batch-size", "2"], env)
    assert pred.returncode == 2, pred.stdout[-2000:] + pred.stderr
    last = pred.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "undecodable image" in last, pred.stderr[-2000:]
    assert not (tmp_path / "pred").exists()
    assert json.loads((tmp_path / "state" / "LATEST").read_text()) == before
    # A folder of image files (any depth) is read by Ray Data too: one row per file, its path kept.
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    names = [folder / "a.png", folder / "b.PNG", folder / "more" / "c.png"]
    for name, img in zip(names, x):
        name.write_bytes(png_bytes(img))
    (folder / "notes.txt").write_text("not an image")
    pred = run_module(["jobs.predict", "--state", str(tmp_path / "state"), "--data", str(folder),
                       "--output", str(tmp_path / "pred_folder"), "--batch-size", "2"], env)
    assert pred.returncode == 0, pred.stdout[-2000:] + pred.stderr
    rows = pq.read_table(tmp_path / "pred_folder").to_pydict()
    assert sorted(Path(p).name for p in rows["path"]) == ["a.png", "b.PNG", "c.png"]
    assert all(abs(sum(p) - 1) < 1e-4 and row == int(np.argmax(p))
               for p, row in zip(rows["probabilities"], rows["prediction"]))


@pytest.mark.ray
@pytest.mark.slow
def test_learn_as_a_submitted_ray_job(ray_head, tmp_path):
    """The README's cluster workflow: each arrival is one `ray job submit` of jobs.learn. The
    first trains on a Ray Train worker inside the submitted job (its progress lines must reach
    the job's log), the second in the job's own process."""
    import subprocess
    import sys

    from raytools import REPO

    files = task_files(tmp_path / "data")
    config = learn_config(files, tmp_path, "autoencoder.decoder_epochs=1", "classifier.epochs=1")
    env = {**ray_head["env"], "RAY_ADDRESS": ray_head["dashboard"]}  # token auth stays on
    for k in range(2):
        first = f" --config {config} --set ray.num_workers=1" if k == 0 else ""
        entrypoint = (f"{sys.executable} -m jobs.learn --state {tmp_path / 'state'} "
                      f"--data {files[f't{k}']} --test {files['test']}{first}")
        submit = subprocess.run(
            [ray_head["ray"], "job", "submit", "--working-dir", str(REPO), "--runtime-env-json",
             json.dumps({"excludes": [".venv", ".git", "runs"]}), "--", *entrypoint.split()],
            env=env, capture_output=True, text=True, timeout=600)
        logs = submit.stdout + submit.stderr
        assert submit.returncode == 0 and "succeeded" in logs, logs[-3000:]
        assert f"published version {k + 1}" in logs
        if k == 0:
            assert "task 1/1 | warmup" in logs and "samples/s" in logs, logs[-3000:]
    ev = run_module(["jobs.evaluate", "--state", str(tmp_path / "state"), "--data", str(files["test"]),
                     "--output", str(tmp_path / "ev")])
    assert ev.returncode == 0 and "version 2 |" in ev.stdout, ev.stderr
