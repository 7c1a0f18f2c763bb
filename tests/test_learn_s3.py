"""Acceptance 5: learn, evaluate, generate and predict against an s3:// state on a real local S3
server (moto's server mode on 127.0.0.1): pyarrow's S3 filesystem, the pointer and the lock
on object storage, exercised for real, nothing mocked in-process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pyarrow.parquet as pq
import pytest

from conftest import free_port
from learntools import job_env, learn_config, run_module, task_files
from raytools import REPO

BUCKET = "binplay-states"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    pytest.importorskip("moto", reason="moto[server] is a dev dependency (pyproject.toml)")
    import boto3

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                              aws_secret_access_key="test", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield {"env": env, "client": client}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"][len(prefix):] for page in pages for o in page.get("Contents", []))


@pytest.mark.ray
def test_learn_evaluate_predict_on_an_s3_state(s3, ray_head, tmp_path):
    files = task_files(tmp_path / "data")
    config = learn_config(files, tmp_path, "autoencoder.decoder_epochs=3", "classifier.epochs=2")
    env = job_env(**s3["env"], **{k: v for k, v in ray_head["env"].items() if k.startswith("RAY_")})
    uri = f"s3://{BUCKET}/shop"
    first = run_module(["jobs.learn", "--state", uri, "--data", str(files["t0"]), "--test",
                        str(files["t0_test"]), "--config", str(config)], env)
    assert first.returncode == 0, first.stderr
    assert "published version 1" in first.stdout and f"-> {uri}" in first.stdout

    # A second learn while one runs fails at once, in one line (the lock on object storage).
    proc = subprocess.Popen([sys.executable, "-m", "jobs.learn", "--state", uri, "--data",
                             str(files["t1"]), "--test", str(files["test"]), "--set",
                             "ray.checkpoint_every_epochs=1"],
                            cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = []
    for line in proc.stdout:
        out.append(line)
        if "| warmup" in line:
            proc.send_signal(signal.SIGSTOP)  # hold it mid-training, its lock live
            break
    started = time.time()
    rival = run_module(["jobs.learn", "--state", uri, "--data", str(files["t2"])], env)
    proc.send_signal(signal.SIGCONT)
    assert rival.returncode == 2 and rival.stderr.count("\n") == 1, rival.stderr
    assert "another learn holds the state" in rival.stderr and time.time() - started < 20
    out.extend(proc.stdout)
    assert proc.wait() == 0, "".join(out)
    assert "published version 2" in "".join(out)

    keys = _keys(s3["client"], "shop/")
    assert "LATEST" in keys and "lock.json" not in keys
    assert {"versions/v0001/state.pt", "versions/v0002/ledger.json",
            "versions/v0002/manifest.json"} <= set(keys)
    assert not [k for k in keys if k.startswith("staging/")]  # removed once published
    pointer = s3["client"].get_object(Bucket=BUCKET, Key="shop/LATEST")["Body"].read()
    assert json.loads(pointer) == {"format_version": 1, "version": 2}

    ev = run_module(["jobs.evaluate", "--state", uri, "--data", str(files["test"]), "--output",
                     str(tmp_path / "ev")], env)
    assert ev.returncode == 0, ev.stderr
    result = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert result["version"] == 2 and set(result["accuracy_per_task"]) == {"0", "1"}
    assert set(result["classes_not_learnt"]) == {3}
    old = run_module(["jobs.evaluate", "--state", uri, "--version", "1", "--data", str(files["t0_test"]),
                      "--output", str(tmp_path / "ev1")], env)
    assert old.returncode == 0 and "version 1 |" in old.stdout, old.stderr

    gen = run_module(["jobs.generate", "--state", uri, "--task", "1", "--count", "8", "--output",
                      str(tmp_path / "gen")], env)
    assert gen.returncode == 0, gen.stderr
    assert pq.read_table(tmp_path / "gen" / "task_1.parquet").num_rows == 8

    pred = run_module(["jobs.predict", "--state", uri, "--data", str(files["test"]), "--output",
                       str(tmp_path / "pred")], env)
    assert pred.returncode == 0, pred.stderr
    table = pq.read_table(tmp_path / "pred")
    assert table.num_rows == 64
    assert {"label", "prediction", "probability", "probabilities"} <= set(table.column_names)
    rows = table.to_pydict()
    assert all(len(p) == 4 and abs(sum(p) - 1) < 1e-4 and p[3] == 0 for p in rows["probabilities"])
    learnt = [p == y for p, y in zip(rows["prediction"], rows["label"]) if y in (0, 1, 2)]
    assert sum(learnt) / len(learnt) == pytest.approx(result["accuracy_per_class"]["0"] / 300
                                                      + result["accuracy_per_class"]["1"] / 300
                                                      + result["accuracy_per_class"]["2"] / 300, abs=1e-6)
