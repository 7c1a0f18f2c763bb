import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import binplay.data.stream as stream_module
from binplay.config import load_config
from binplay.data.shards import read_shards, write_shard
from binplay.data.sources import DEBIAN_FMNIST, DataError, load_builtin
from binplay.data.stream import build_stream
from binplay.data.user import read_image_folder, read_image_parquet
from conftest import MIRROR, png_bytes, require, synthetic_images, write_parquet


@pytest.fixture(scope="module")
def mnist_stream(tmp_path_factory):
    require(MIRROR / "MNIST" / "raw", "MNIST mirror")
    cfg = load_config(None, ["stream.dataset=mnist", f"stream.data_root={MIRROR}",
                             "stream.val_fraction=0"])
    return build_stream(cfg, tmp_path_factory.mktemp("mnist_stream"))


def test_mnist_split_tasks(mnist_stream):
    tasks = mnist_stream.tasks
    assert [t.classes for t in tasks] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert tasks[0].size == 12665
    assert tasks[0].first_index == 1
    for prev, nxt in zip(tasks, tasks[1:]):
        assert nxt.first_index == prev.last_index + 1
    assert tasks[-1].last_index == 60000


def test_parquet_round_trip_is_lossless(mnist_stream):
    index, images, labels = read_shards(mnist_stream.tasks[1].train)
    original = load_builtin("mnist", "train", str(MIRROR))
    rows = (original.labels == 2) | (original.labels == 3)
    assert torch.equal(images, original.images[rows])
    assert torch.equal(labels, original.labels[rows])
    assert index.tolist() == list(range(12666, 12666 + int(rows.sum())))


def test_indices_stable_across_builds(tmp_path):
    require(MIRROR / "MNIST" / "raw", "MNIST mirror")
    cfg = load_config(None, ["stream.dataset=mnist", f"stream.data_root={MIRROR}",
                             "stream.train_per_class=30", "stream.test_per_class=10",
                             "stream.val_fraction=0"])
    a = build_stream(cfg, tmp_path / "a")
    b = build_stream(cfg, tmp_path / "b")
    assert [(t.first_index, t.last_index) for t in a.tasks] == \
        [(t.first_index, t.last_index) for t in b.tasks] == [(1 + 60 * k, 60 * (k + 1)) for k in range(5)]
    assert torch.equal(read_shards(a.tasks[2].train)[1], read_shards(b.tasks[2].train)[1])


def test_fashion_mnist_from_debian():
    require(DEBIAN_FMNIST / "train-images-idx3-ubyte.gz", "Debian's dataset-fashion-mnist")
    data = load_builtin("fashion_mnist", "test", allow_download=False)
    assert data.images.shape == (10000, 1, 28, 28)
    assert sorted(data.labels.unique().tolist()) == list(range(10))


def test_cifar10_from_parquet_mirror():
    require(MIRROR / "cifar10" / "test.parquet", "CIFAR-10 Parquet mirror")
    data = load_builtin("cifar10", "test", str(MIRROR), allow_download=False)
    assert data.images.shape == (10000, 3, 32, 32)
    assert data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [1000] * 10


def test_missing_data_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.delenv("BINPLAY_DATA_MIRROR", raising=False)
    with pytest.raises(DataError) as err:
        load_builtin("mnist", "train", str(tmp_path), allow_download=False)
    assert "tried data_root=" in str(err.value) and "\n" not in str(err.value)


def test_corrupt_parquet_names_the_file(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError) as err:
        read_image_parquet(bad)
    assert str(bad) in str(err.value) and "not a readable Parquet" in str(err.value)
    with pytest.raises(DataError, match="not a readable Parquet shard"):
        read_shards([str(bad)])


def test_wrong_image_size_names_the_file(tmp_path):
    images, labels = synthetic_images(3, [0], seed=0, size=20)
    path = write_parquet(tmp_path / "small.parquet", images, labels)
    with pytest.raises(DataError) as err:
        read_image_parquet(path, expected_shape=(1, 28, 28))
    assert str(path) in str(err.value) and "(1, 20, 20)" in str(err.value)


def test_label_outside_classes_names_the_file(tmp_path):
    images, labels = synthetic_images(4, [0, 1, 7], seed=0)
    train = write_parquet(tmp_path / "train.parquet", images, labels)
    cfg = load_config(None, ["stream.dataset=parquet", f"stream.path={train}",
                             f"stream.test_path={train}", "stream.tasks=[[0],[1]]"])
    with pytest.raises(DataError) as err:
        build_stream(cfg, tmp_path / "stream")
    assert str(train) in str(err.value) and "label 7 is outside" in str(err.value)
    assert not (tmp_path / "stream" / "stream.json").exists()


def test_shard_with_wrong_byte_count(tmp_path):
    path = tmp_path / "shard.parquet"
    write_shard(path, np.arange(1, 3), np.zeros(2), torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    table = pq.read_table(path)
    short = table.set_column(2, "image", pa.array([b"\x00" * 10, b"\x00" * 10], pa.binary()))
    pq.write_table(short.replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(DataError, match="wrong number of bytes"):
        read_shards([str(path)])


def test_image_folder(tmp_path):
    from PIL import Image

    images, labels = synthetic_images(2, [0, 3], seed=0)
    for i, (img, lab) in enumerate(zip(images, labels)):
        folder = tmp_path / str(lab)
        folder.mkdir(exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    data = read_image_folder(tmp_path)
    assert data.images.shape == (4, 1, 28, 28)
    assert sorted(data.labels.tolist()) == [0, 0, 3, 3]


def test_hub_schema_plain_image_column(tmp_path):
    images, labels = synthetic_images(2, [1], seed=0)
    blobs = [png_bytes(img) for img in images]
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"image": blobs, "label": labels}), path)
    data = read_image_parquet(path)
    assert torch.equal(data.images[:, 0], torch.from_numpy(images))


def test_data_modules_do_not_import_each_other():
    """user.py needs only the shared types; sources.py may use user.py, not the reverse."""
    script = ("import sys, binplay.data.user; "
              "print(sorted(m for m in sys.modules if m.startswith('binplay.data.')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['binplay.data.types',", "'binplay.data.user']"]
    import binplay.data.sources as sources
    import binplay.data.types as types

    assert sources.DataError is types.DataError and sources.ImageSet is types.ImageSet  # re-exported


@pytest.mark.parametrize("value", ["http://datasets.internal.example/binplay", "s3://bucket/data",
                                   "file:///mnt/data"])
def test_mirror_must_be_a_directory_not_a_uri(tmp_path, monkeypatch, value):
    monkeypatch.setenv("BINPLAY_DATA_MIRROR", value)
    with pytest.raises(DataError) as err:
        load_builtin("mnist", "train", str(tmp_path), allow_download=False)
    message = str(err.value)
    assert "\n" not in message and "BINPLAY_DATA_MIRROR" in message
    assert "must be a local or mounted directory" in message
    assert "internal.example" not in message and "bucket" not in message  # no URL (or secret) echoed


def test_mirror_directory_is_used(tmp_path, monkeypatch):
    images, labels = synthetic_images(2, [0, 1], seed=0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "t10k"):
        header = bytes([0, 0, 8, 3]) + np.array(images.shape, dtype=">u4").tobytes()
        (raw / f"{split}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        header = bytes([0, 0, 8, 1]) + np.array([len(labels)], dtype=">u4").tobytes()
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(header + labels.astype(np.uint8).tobytes())
    monkeypatch.setenv("BINPLAY_DATA_MIRROR", str(tmp_path))
    data = load_builtin("mnist", "test", allow_download=False)
    assert data.origin == str(raw) and torch.equal(data.images[:, 0], torch.from_numpy(images))


def _counting_loads(monkeypatch) -> list[str]:
    """Record every dataset read by build_stream: a reused stream reads none."""
    calls: list[str] = []
    original = stream_module.load_split

    def load_split(cfg, split):
        calls.append(split)
        return original(cfg, split)

    monkeypatch.setattr(stream_module, "load_split", load_split)
    return calls


def _user_stream_config(data, per_class):
    return load_config(None, ["stream.dataset=parquet", f"stream.path={data['train']}",
                              f"stream.test_path={data['test']}", "stream.tasks=[[0,1],[2,3]]",
                              f"stream.train_per_class={per_class}", "stream.test_per_class=4",
                              "stream.val_fraction=0"])


def test_complete_stream_is_reused(synthetic_data, tmp_path, monkeypatch):
    cfg = _user_stream_config(synthetic_data, 10)
    first = build_stream(cfg, tmp_path)
    calls = _counting_loads(monkeypatch)
    again = build_stream(cfg, tmp_path)
    assert calls == [] and again == first
    assert not list(tmp_path.glob("*.tmp"))


def test_crash_before_the_stamp_is_rebuilt(synthetic_data, tmp_path, monkeypatch):
    """A rebuild for another config crashes after its manifest, before its stamp."""
    small, large = _user_stream_config(synthetic_data, 10), _user_stream_config(synthetic_data, 20)
    build_stream(small, tmp_path)
    real_write = stream_module._write_atomic

    def crash_at_stamp(path, text):
        if path.name == stream_module.STAMP:
            raise KeyboardInterrupt("killed between manifest and stamp")
        real_write(path, text)

    monkeypatch.setattr(stream_module, "_write_atomic", crash_at_stamp)
    with pytest.raises(KeyboardInterrupt):
        build_stream(large, tmp_path)
    monkeypatch.setattr(stream_module, "_write_atomic", real_write)
    assert (tmp_path / "stream.json").is_file() and not (tmp_path / "stream.config.json").exists()
    for cfg, size in ((small, 20), (large, 40)):  # neither config may take the half-built stream
        calls = _counting_loads(monkeypatch)
        manifest = build_stream(cfg, tmp_path)
        assert calls == ["train", "test"], "an unstamped stream was reused"
        assert [t.size for t in manifest.tasks] == [size, size]
        assert len(read_shards(manifest.tasks[1].train)[0]) == size


def test_stale_stamp_is_rebuilt(synthetic_data, tmp_path, monkeypatch):
    """The stamp of one config next to the manifest of another: rebuilt, not reused."""
    small, large = _user_stream_config(synthetic_data, 10), _user_stream_config(synthetic_data, 20)
    build_stream(small, tmp_path / "small")
    build_stream(large, tmp_path / "large")
    stale = tmp_path / "small" / "stream.config.json"
    stale.write_text((tmp_path / "large" / "stream.config.json").read_text())  # old stamp, new config
    for cfg, size in ((small, 20), (large, 40)):
        calls = _counting_loads(monkeypatch)
        manifest = build_stream(cfg, tmp_path / "small")
        assert calls == ["train", "test"], "a stream with a stale stamp was reused"
        assert [t.size for t in manifest.tasks] == [size, size]
    # What the unstamped writes used to leave after a crash: the large manifest, and the
    # stamp (config only) of the small stream that was there before.
    stale.write_text(small.stream.model_dump_json())
    calls = _counting_loads(monkeypatch)
    manifest = build_stream(small, tmp_path / "small")
    assert calls == ["train", "test"] and [t.size for t in manifest.tasks] == [20, 20]


def test_missing_shard_is_rebuilt(synthetic_data, tmp_path, monkeypatch):
    cfg = _user_stream_config(synthetic_data, 10)
    manifest = build_stream(cfg, tmp_path)
    Path(manifest.tasks[1].test[0]).unlink()
    calls = _counting_loads(monkeypatch)
    build_stream(cfg, tmp_path)
    assert calls == ["train", "test"] and Path(manifest.tasks[1].test[0]).is_file()
