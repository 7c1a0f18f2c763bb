"""jobs.learn on tiny synthetic data, in-process: one task per job, versions, equivalence to
jobs.train, crash and resume, the lock, what a version keeps, pruning."""

from __future__ import annotations

import json
import signal
import time

import pytest
import torch

from binplay.state import load_state
from learntools import digest, learn_config, run_module, task_files


def _learn(argv: list[str], capsys) -> tuple[int, str, str]:
    from jobs.learn import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return task_files(tmp_path_factory.mktemp("learn-data"))


@pytest.fixture(scope="module")
def first_version(files, tmp_path_factory):
    """A state holding task 0 (learnt once per module; tests copy it)."""
    from jobs.learn import main

    tmp = tmp_path_factory.mktemp("learn-first")
    config = learn_config(files, tmp)
    state = tmp / "state"
    assert main(["--state", str(state), "--data", str(files["t0"]), "--test", str(files["t0_test"]),
                 "--config", str(config)]) == 0
    return state


@pytest.fixture
def state(first_version, tmp_path):
    import shutil

    return shutil.copytree(first_version, tmp_path / "state")


def test_three_learn_processes_match_one_train(files, tmp_path):
    """Acceptance 1: tasks learnt one by one by three jobs.learn processes end with the weights
    and accuracies of one jobs.train over the same stream and seed. Tolerance: weights within
    1e-6, accuracy per task within 1e-6 points (measured: identical)."""
    config = learn_config(files, tmp_path)
    train = run_module(["jobs.train", "--config", str(config), "--output", str(tmp_path / "train")])
    assert train.returncode == 0, train.stderr
    for k in range(3):
        done = run_module(["jobs.learn", "--state", str(tmp_path / "state"), "--data", str(files[f"t{k}"]),
                           "--test", str(files["test"])] + (["--config", str(config)] if k == 0 else []))
        assert done.returncode == 0, done.stderr
        assert f"published version {k + 1}" in done.stdout
    report = json.loads((tmp_path / "train" / "report.json").read_text())
    ledger = json.loads((tmp_path / "state" / "versions" / "v0003" / "ledger.json").read_text())
    learnt = ledger["tasks"][-1]["metrics"]["accuracy_per_task_at_learn"]
    assert list(learnt.values()) == pytest.approx(report["accuracy_matrix"][-1], abs=1e-6)
    trained = load_state(tmp_path / "train" / "checkpoint")
    versioned = load_state(tmp_path / "state" / "versions" / "v0003")
    assert versioned["ledger"] == trained["ledger"]
    for name, weights in trained["models"].items():
        for key, value in weights.items():
            assert torch.allclose(value.float(), versioned["models"][name][key].float(), atol=1e-6), key
    ev = run_module(["jobs.evaluate", "--state", str(tmp_path / "state"), "--data", str(files["test"]),
                     "--output", str(tmp_path / "ev")])
    assert ev.returncode == 0, ev.stderr
    result = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert list(result["accuracy_per_task"].values()) == pytest.approx(report["accuracy_matrix"][-1])
    assert (tmp_path / "ev" / "evaluation.md").read_text().count("| 0 |") >= 1


def test_killed_learn_keeps_the_last_version_and_resumes(files, state, tmp_path):
    """Acceptance 2: SIGKILL mid-training; version 1 still evaluates; the same command resumes
    from the staged checkpoint and publishes version 2, as an uninterrupted learn does."""
    import os
    import shutil
    import subprocess
    import sys

    from learntools import job_env
    from raytools import REPO

    reference = shutil.copytree(state, tmp_path / "reference")
    command = ["jobs.learn", "--state", str(state), "--data", str(files["t1"]), "--set",
               "ray.checkpoint_every_epochs=1"]
    proc = subprocess.Popen([sys.executable, "-m", *command], cwd=REPO, env=job_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "decoder    | epoch   4/" in line:
            time.sleep(0.3)  # let the checkpoint of this epoch land
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    assert json.loads((state / "LATEST").read_text())["version"] == 1
    assert (state / "lock.json").is_file() and (state / "staging" / "v0002" / "checkpoint").is_dir()
    ev = run_module(["jobs.evaluate", "--state", str(state), "--data", str(files["t0_test"]),
                     "--output", str(tmp_path / "ev")])
    assert ev.returncode == 0 and "version 1 | accuracy" in ev.stdout, ev.stderr
    resumed = run_module(command)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the unfinished learn" in resumed.stdout
    assert "task 2/2 | warmup" not in resumed.stdout  # epochs done before the kill are not redone
    assert "published version 2" in resumed.stdout
    assert not (state / "staging").exists() and not (state / "lock.json").exists()
    uninterrupted = run_module(command[:2] + [str(reference)] + command[3:])
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    a, b = load_state(state / "versions" / "v0002"), load_state(reference / "versions" / "v0002")
    for key, value in a["models"]["classifier"].items():
        assert torch.allclose(value.float(), b["models"]["classifier"][key].float()), key


def test_version_size_does_not_grow_with_samples(files, tmp_path, capsys):
    """Acceptance 3: the latest version after 1 and after 3 tasks differs only by the ledger and
    metrics; 4x the samples per task give the same size; --keep prunes the older versions."""
    config = learn_config(files, tmp_path)
    small = task_files(tmp_path / "small", per_class=12)
    sizes: dict[str, list[int]] = {"state": [], "ledger": []}
    for k in range(3):
        args = ["--state", str(tmp_path / "big"), "--data", str(files[f"t{k}"]), "--set",
                "autoencoder.decoder_epochs=1", "--set", "classifier.epochs=1"]
        assert _learn(args + ["--config", str(config)] * (k == 0), capsys)[0] == 0
        version = tmp_path / "big" / "versions" / f"v{k + 1:04d}"
        sizes["state"].append((version / "state.pt").stat().st_size)
        sizes["ledger"].append((version / "ledger.json").stat().st_size)
    assert _learn(["--state", str(tmp_path / "small"), "--data", str(small["t0"]), "--config",
                   str(config), "--set", "autoencoder.decoder_epochs=1", "--set",
                   "classifier.epochs=1"], capsys)[0] == 0
    one, three = (load_state(tmp_path / "big" / "versions" / v) for v in ("v0001", "v0003"))
    # The weights keep their shapes; what else differs is the ledger (integers per task).
    for name in one["models"]:
        assert {k: v.shape for k, v in one["models"][name].items()} == \
               {k: v.shape for k, v in three["models"][name].items()}
    assert set(one) == set(three) and one["history"] == three["history"]  # metrics: in ledger.json
    assert len(three["ledger"]["tasks"]) == 3 and not three["measurement"]["probes"]
    assert not (tmp_path / "big" / "versions" / "v0003" / "measurement.pt").exists()
    ledger_bytes = len(json.dumps(three["ledger"])) - len(json.dumps(one["ledger"]))
    assert 0 <= sizes["state"][2] - sizes["state"][0] <= ledger_bytes + 256, sizes
    assert sizes["ledger"][2] > sizes["ledger"][0]  # per task: config + metrics (a few kB)
    small_size = (tmp_path / "small" / "versions" / "v0001" / "state.pt").stat().st_size
    assert abs(small_size - sizes["state"][0]) <= 64, (small_size, sizes)  # 24 vs 96 images
    code, out, _ = _learn(["--state", str(tmp_path / "big"), "--data", str(files["t2"]), "--keep", "1"],
                          capsys)
    assert code == 0 and "already learnt" in out  # a re-run of the last learn: nothing to do
    assert [p.name for p in (tmp_path / "big" / "versions").iterdir()] == ["v0003"]
    assert json.loads((tmp_path / "big" / "LATEST").read_text())["version"] == 3


def test_a_live_lock_refuses_a_second_learn_at_once(files, state, capsys):
    import os
    import socket

    (state / "lock.json").write_text(json.dumps({"owner": "x", "host": socket.gethostname(),
                                                 "pid": os.getpid(), "purpose": "learn other",
                                                 "heartbeat": time.time()}))
    before = digest(state)
    started = time.time()
    code, _, err = _learn(["--state", str(state), "--data", str(files["t1"])], capsys)
    assert code == 2 and err.count("\n") == 1 and "another learn holds the state" in err
    assert time.time() - started < 5 and digest(state) == before


def test_later_learns_may_not_change_codes_or_shapes(files, state, capsys):
    before = digest(state)
    for setting, field in (("codes.bits_per_part=9", "codes"), ("autoencoder.width=16", "autoencoder.width"),
                           ("autoencoder.hidden=64", "autoencoder.hidden"),
                           ("autoencoder.channels=8", "autoencoder.channels"),
                           ("classifier.max_classes=12", "classifier.max_classes")):
        code, _, err = _learn(["--state", str(state), "--data", str(files["t1"]), "--set", setting], capsys)
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {field}"), err
    assert digest(state) == before


def test_unfinished_learn_of_other_data_is_not_mixed_in(files, state, capsys):
    (state / "staging" / "v0002").mkdir(parents=True)
    (state / "staging" / "v0002" / "learn.json").write_text(json.dumps(
        {"parent": 1, "data": "other.parquet", "data_sha256": "0" * 64}))
    code, _, err = _learn(["--state", str(state), "--data", str(files["t1"])], capsys)
    assert code == 2 and "unfinished learn of other.parquet" in err and err.count("\n") == 1
    code, out, _ = _learn(["--state", str(state), "--data", str(files["t1"]), "--discard-unfinished",
                           "--set", "autoencoder.decoder_epochs=1", "--set", "classifier.epochs=1"],
                          capsys)
    assert code == 0 and "discarding the unfinished learn" in out and "published version 2" in out


def _remote_store(path):
    """A state on the local disk driven like object storage (no O_EXCL): the write-then-verify lock."""
    from binplay.versions.store import StateStore

    store = StateStore(f"file://{path}")
    store.local = False
    return store


def test_object_storage_lock_write_then_verify(tmp_path, monkeypatch):
    import socket

    from binplay.versions import lock as lock_mod

    store = _remote_store(tmp_path / "s")
    rival = lock_mod.StateLock(store, "rival")

    def rival_writes_during_settle(seconds: float) -> None:
        store.write_bytes(lock_mod.LOCK, rival._record())  # it saw no lock either, and wrote later

    monkeypatch.setattr(lock_mod.time, "sleep", rival_writes_during_settle)
    loser = lock_mod.StateLock(store, "first")
    with pytest.raises(lock_mod.StateBusy, match="another learn holds the state"):
        loser.acquire()  # read back the later writer's id: only that one proceeds
    assert rival.held() and not loser.held()
    monkeypatch.setattr(lock_mod.time, "sleep", lambda s: None)
    # Another host's lock: live while refreshed within the TTL, taken over once stale.
    record = {"owner": "x", "host": socket.gethostname() + "-other", "pid": 1, "heartbeat": time.time()}
    store.write_bytes(lock_mod.LOCK, json.dumps(record).encode())
    with pytest.raises(lock_mod.StateBusy):
        lock_mod.StateLock(store, "third").acquire()
    record["heartbeat"] = time.time() - lock_mod.TTL_S - 1
    store.write_bytes(lock_mod.LOCK, json.dumps(record).encode())
    with lock_mod.StateLock(store, "fourth") as held:
        assert held.held()
    assert store.read_bytes(lock_mod.LOCK) is None  # released


def test_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path):
    import socket
    import subprocess
    import sys

    from binplay.versions.lock import LOCK, StateLock
    from binplay.versions.store import StateStore

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    store = StateStore(str(tmp_path / "s"))
    store.write_bytes(LOCK, json.dumps({"owner": "x", "host": socket.gethostname(), "pid": int(dead),
                                        "heartbeat": time.time()}).encode())
    with StateLock(store, "resume") as held:
        assert held.held()


def test_max_classes_sizes_the_head(tiny, tmp_path):
    from binplay.config import ConfigError
    from binplay.data.stream import build_stream

    cfg = tiny("classifier.max_classes=10")
    assert cfg.head_classes == 10 and cfg.fingerprint() != tiny().fingerprint()
    assert build_stream(cfg, tmp_path / "a").num_classes == 10
    from binplay.config import load_config

    # Unset, the field leaves every fingerprint as it was (measured after issue 25's
    # validation split and encoder reset, which changed what the smoke run computes, and
    # once baselines' sections stopped counting for strategies that do not read them).
    assert load_config("configs/smoke.yaml").fingerprint() == "61c18ea0c081ff40"
    with pytest.raises(ConfigError, match="cannot hold the 4 classes"):
        build_stream(tiny("classifier.max_classes=3"), tmp_path / "b")


@pytest.mark.parametrize("job", ["learn", "predict"])
def test_new_jobs_have_help(job):
    done = run_module([f"jobs.{job}", "--help"])
    assert done.returncode == 0 and "--state" in done.stdout


def test_an_image_folder_is_a_task_of_classes_seen_or_new(files, state, tmp_path, capsys):
    from PIL import Image

    from conftest import synthetic_images

    x, y = synthetic_images(6, [1, 2], seed=9)  # class 1 seen in task 0, class 2 new
    for k, (img, label) in enumerate(zip(x, y)):
        (tmp_path / "folder" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "folder" / str(label) / f"{k}.png")
    code, out, err = _learn(["--state", str(state), "--data", str(tmp_path / "folder"), "--set",
                             "autoencoder.decoder_epochs=1", "--set", "classifier.epochs=1"], capsys)
    assert code == 0, err
    ledger = json.loads((state / "versions" / "v0002" / "ledger.json").read_text())
    task = ledger["tasks"][-1]
    assert task["classes"] == [1, 2] and (task["first_index"], task["last_index"]) == (97, 108)
    assert task["source"] == str(tmp_path / "folder") and len(task["data_sha256"]) == 64
    assert ledger["tasks"][0]["config"]["classifier"]["epochs"] == 4  # each task's own config
    assert task["config"]["classifier"]["epochs"] == 1


def test_rollback_then_learn_extends_the_older_version(files, state, capsys):
    fast = ["--set", "autoencoder.decoder_epochs=1", "--set", "classifier.epochs=1"]
    assert _learn(["--state", str(state), "--data", str(files["t1"]), *fast], capsys)[0] == 0
    code, out, _ = _learn(["--state", str(state), "--rollback", "1"], capsys)
    assert code == 0 and "LATEST now names version 1 (was 2)" in out
    code, out, _ = _learn(["--state", str(state), "--data", str(files["t2"]), *fast], capsys)
    assert code == 0 and "published version 3" in out  # a new number: version 2 stays readable
    manifest = json.loads((state / "versions" / "v0003" / "manifest.json").read_text())
    ledger = json.loads((state / "versions" / "v0003" / "ledger.json").read_text())
    assert manifest["parent"] == 1 and [t["classes"] for t in ledger["tasks"]] == [[0, 1], [3]]
    assert (state / "versions" / "v0002" / "manifest.json").is_file()
    code, _, err = _learn(["--state", str(state), "--rollback", "9"], capsys)
    assert code == 2 and "version 9 not found" in err and err.count("\n") == 1


def test_a_lock_created_but_not_yet_written_counts_as_held(tmp_path):
    from binplay.versions.lock import LOCK, StateBusy, StateLock
    from binplay.versions.store import StateStore

    store = StateStore(str(tmp_path / "s"))
    store.write_bytes(LOCK, b"")  # another learn between its O_EXCL create and its write
    with pytest.raises(StateBusy):
        StateLock(store, "second").acquire()
    assert store.read_bytes(LOCK) == b""
