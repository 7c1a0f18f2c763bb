"""Shared fixtures: tiny synthetic image data, tiny configs, the real-data locations."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from binplay.config import BinPlayConfig, load_config

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("BINPLAY_DATA_MIRROR", REPO.parent / "shared" / "data"))


def synthetic_images(n_per_class: int, classes: list[int], seed: int, size: int = 28):
    """Class c draws a bright bar at an angle and place set by c, plus noise: learnable, cheap."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for c in classes:
        for _ in range(n_per_class):
            angle = c * np.pi / 5 + rng.normal(0, 0.1)
            offset = (c % 3 - 1) * 5 + rng.normal(0, 1.0)
            dist = np.abs((xx - size / 2) * np.sin(angle) - (yy - size / 2) * np.cos(angle) - offset)
            img = np.clip(255 * np.exp(-dist**2 / 6) + rng.normal(0, 12, (size, size)), 0, 255)
            images.append(img.astype(np.uint8))
            labels.append(c)
    return np.stack(images), np.array(labels, dtype=np.int64)


def png_bytes(array: np.ndarray) -> bytes:
    """One image (H, W) or (H, W, 3) uint8, PNG-encoded."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    blobs = [{"bytes": png_bytes(img), "path": None} for img in images]
    pq.write_table(pa.table({"img": blobs, "label": labels}), path)
    return path


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> dict[str, Path]:
    """Train/test Parquet files of 4 synthetic classes in the common hub schema."""
    root = tmp_path_factory.mktemp("synthetic")
    tr_x, tr_y = synthetic_images(48, [0, 1, 2, 3], seed=1)
    te_x, te_y = synthetic_images(16, [0, 1, 2, 3], seed=2)
    return {"train": write_parquet(root / "train.parquet", tr_x, tr_y),
            "test": write_parquet(root / "test.parquet", te_x, te_y)}


def tiny_config(data: dict[str, Path], tmp: Path, *overrides: str) -> BinPlayConfig:
    """Two tasks of two synthetic classes, tiny models and budgets: seconds per run."""
    base = [
        "name=tiny", "stream.dataset=parquet", f"stream.path={data['train']}",
        f"stream.test_path={data['test']}", "stream.tasks=[[0,1],[2,3]]",
        "codes.bits_per_part=8", "codes.primes=[3,5,7,11]", "codes.task_bits=4",
        "autoencoder.width=8", "autoencoder.warmup_epochs=1", "autoencoder.assignment_epochs=1",
        "autoencoder.decoder_epochs=15", "autoencoder.batch_size=32", "classifier.epochs=4",
        "classifier.batch_size=32", "ray.num_workers=0", "ray.checkpoint_every_epochs=2",
        f"run.storage_path={tmp / 'runs'}", "run.fidelity_samples=8",
        "stream.val_fraction=0",  # sizes below count every sample; tests of the split set it
    ]
    return load_config(None, base + list(overrides))


@pytest.fixture
def tiny(synthetic_data, tmp_path):
    def make(*overrides: str) -> BinPlayConfig:
        return tiny_config(synthetic_data, tmp_path, *overrides)

    return make


@pytest.fixture
def classifier_calls(monkeypatch) -> list[dict]:
    """The keyword arguments of every classifier epoch the engine runs (inputs, steps, ...)."""
    from binplay.strategies import base

    calls: list[dict] = []
    original = base.clf.classifier_epoch

    def spy(model, **kw):
        calls.append(kw)
        return original(model, **kw)

    monkeypatch.setattr(base.clf, "classifier_epoch", spy)
    return calls


def small_mnist(tmp: Path, tasks: str, *overrides: str) -> BinPlayConfig:
    """A real but small split-MNIST run (300 training and 100 test images a class, in-process,
    one thread): the slow tier's check that a method learns; skipped without the mirror."""
    require(MIRROR / "MNIST" / "raw", "MNIST mirror")
    base = ["stream.dataset=mnist", f"stream.data_root={MIRROR}", f"stream.tasks={tasks}",
            "stream.train_per_class=300", "stream.test_per_class=100", "ray.num_workers=0",
            f"run.storage_path={tmp}", "classifier.epochs=4", "run.threads=1"]
    return load_config(None, base + list(overrides))


def require(path: Path, what: str) -> None:
    if not path.exists():
        pytest.skip(f"{what} not available at {path}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """One local Ray head for the whole session (`ray start --head`).

    Token authentication stays on (Ray >= 2.59): the head and its clients share a token
    made for this session (RAY_AUTH_TOKEN, 64 hex digits as Ray generates them), so a
    fresh machine without ~/.ray/auth_token works and an existing token is left alone.
    Clients get RAY_AUTH_MODE=token. `ray start` runs in a
    process session of its own, which the head's daemons inherit; teardown kills
    exactly that session, never another Ray on the machine (`ray stop` kills them all).
    """
    import shutil
    import signal
    import subprocess
    import sys

    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    gcs, dash = free_port(), free_port()
    import secrets

    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    start = [ray_bin, "start", "--head", "--num-cpus", "2", f"--port={gcs}",
             f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1", "--disable-usage-stats",
             f"--temp-dir={tmp_path_factory.mktemp('ray')}"]
    # Fixed default ports (agent 52365, ...) would collide with any other Ray on this
    # machine and leave the head without a job agent ("No available agent to submit job").
    for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
                 "runtime-env-agent-port", "ray-client-server-port"):
        start.append(f"--{flag}={free_port()}")
    proc = subprocess.Popen(start, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=180)
        if proc.returncode != 0:
            pytest.fail(f"ray start failed: {output[-2000:]}")
        yield {"address": f"127.0.0.1:{gcs}", "dashboard": f"http://127.0.0.1:{dash}",
               "env": {**env, "RAY_ADDRESS": f"127.0.0.1:{gcs}"}, "ray": ray_bin}
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _session_pids(proc.pid):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            if sig == signal.SIGTERM:
                import time

                time.sleep(3)  # let the daemons exit cleanly before the hard kill
