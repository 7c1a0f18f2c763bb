"""A user's own photos at a configured size (issue 29): a folder of mixed-size JPEGs and PNGs,
RGB and grayscale, resized on ingest (``stream.resize``), bad files refused in one line or
skipped and counted (``stream.on_bad_image``), the models built for the size, the folder's
class names in figures; then jobs.learn, jobs.evaluate and jobs.predict on it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image, ImageOps

from binplay.config import ConfigError, load_config
from binplay.data.types import DataError
from binplay.data.user import RESAMPLE, read_image_folder, read_image_parquet
from conftest import REPO
from learntools import digest

CLASSES = ("cat", "dog", "fish")  # sorted directory names: labels 0, 1, 2
SIZES = [(64, 48), (120, 90), (90, 120), (100, 100), (48, 64), (96, 72)]  # (W, H) as PIL has them
SHAPE = (3, 48, 40)  # not 28 or 32, not square: the models are computed from it


def _photo(label: int, k: int, rng: np.random.Generator) -> Image.Image:
    """A bar whose angle says the class, at a size and colour mode that vary with ``k``."""
    w, h = SIZES[k % len(SIZES)]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    angle = label * np.pi / 3 + rng.normal(0, 0.05)
    dist = np.abs((xx - 0.5) * np.sin(angle) - (yy - 0.5) * np.cos(angle))
    grey = np.clip(255 * np.exp(-dist**2 / 0.01) + rng.normal(0, 10, (h, w)), 0, 255).astype(np.uint8)
    if k % 3 == 2:
        return Image.fromarray(grey)  # grayscale ("L")
    tint = np.array([1.0, 0.6 + 0.2 * label, 0.4], dtype=np.float32)
    return Image.fromarray((grey[..., None] * tint).astype(np.uint8))  # RGB


def _write(img: Image.Image, path: Path) -> Path:
    img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path)
    return path


def make_folder(root: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            _write(_photo(label, k, rng), root / name / f"{k:03d}.{'jpg' if k % 2 else 'png'}")
    return root


def _bytes(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("photos")
    return {"train": make_folder(root / "train", 12, seed=1),
            "test": make_folder(root / "test", 4, seed=2)}


def photo_config(photos: dict[str, Path], tmp: Path, *extra: str) -> Path:
    """A tiny config for photos learnt at SHAPE, cropped: seconds per learn on 2 cores."""
    base = ["name=photos", "stream.dataset=image_folder", f"stream.path={photos['train']}",
            f"stream.test_path={photos['test']}", "stream.tasks=[[0,1,2]]",
            f"stream.image_shape={list(SHAPE)}", "stream.resize=crop", "stream.val_fraction=0",
            "codes.bits_per_part=8", "codes.primes=[3,5,7,11]", "codes.task_bits=4",
            "autoencoder.width=8", "autoencoder.warmup_epochs=1",
            "autoencoder.assignment_epochs=1", "autoencoder.decoder_epochs=2",
            "autoencoder.batch_size=32", "classifier.epochs=2", "classifier.batch_size=32",
            "ray.num_workers=0", f"run.storage_path={tmp / 'runs'}", "run.fidelity_samples=8",
            "run.threads=1"]
    cfg = load_config(None, base + list(extra))
    path = tmp / "photos.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path


def _job(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
    main = __import__(f"jobs.{module}", fromlist=["main"]).main
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- ingest: resizing, colour, determinism ---------------------------------------------------

def test_crop_and_pad_bring_mixed_photos_to_the_configured_shape_deterministically(photos):
    first = read_image_folder(photos["train"], SHAPE, resize="crop")
    again = read_image_folder(photos["train"], SHAPE, resize="crop")
    assert first.images.shape == (36, *SHAPE) and first.images.dtype == torch.uint8
    assert torch.equal(first.images, again.images)  # the same files give the same pixels
    assert first.labels.tolist() == [0] * 12 + [1] * 12 + [2] * 12
    # The stated method: Pillow's ImageOps.fit with the bicubic filter, centred, after RGB.
    file = photos["train"] / "dog" / "001.jpg"  # 120x90 RGB JPEG
    expected = ImageOps.fit(Image.open(file).convert("RGB"), (40, 48), method=RESAMPLE,
                            centering=(0.5, 0.5))
    row = 12 + 1
    assert np.array_equal(first.images[row].permute(1, 2, 0).numpy(), np.asarray(expected))
    padded = read_image_folder(photos["train"], SHAPE, resize="pad")
    assert padded.images.shape == first.images.shape
    assert not torch.equal(padded.images, first.images)


def test_pad_letterboxes_on_black_and_crop_cuts_the_centre(tmp_path):
    """A white 120x90 (W x H) image into 48x40 (H x W): pad scales it to 40x30 and puts black
    bars above and below; crop scales it to cover and keeps only white."""
    (tmp_path / "a").mkdir()
    _write(Image.new("RGB", (120, 90), (255, 255, 255)), tmp_path / "a" / "wide.png")
    pad = read_image_folder(tmp_path, SHAPE, resize="pad").images[0]
    assert int(pad[:, :9].max()) == 0 and int(pad[:, 39:].max()) == 0  # the bars
    assert int(pad[:, 10:38].min()) == 255
    crop = read_image_folder(tmp_path, SHAPE, resize="crop").images[0]
    assert int(crop.min()) == 255


def test_the_configured_channel_count_decides_the_colour(photos, tmp_path):
    grey = read_image_folder(photos["train"], (1, 48, 40), resize="crop")
    assert grey.images.shape == (36, 1, 48, 40)
    rgb = read_image_folder(photos["train"], SHAPE, resize="crop")
    from_grey = rgb.images[2]  # 002.png is grayscale: its three channels are the same
    assert torch.equal(from_grey[0], from_grey[1]) and torch.equal(from_grey[1], from_grey[2])
    assert not torch.equal(rgb.images[1][0], rgb.images[1][2])  # 001.jpg is tinted RGB
    # EXIF orientation is applied: a 40x60 photo stored on its side reads upright.
    upright = Image.new("RGB", (40, 48), (255, 0, 0))
    upright.paste((0, 0, 255), (0, 24, 40, 48))  # red top half, blue bottom half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    (tmp_path / "a").mkdir()
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "a" / "side.jpg", exif=exif,
                                                      quality=95)
    read = read_image_folder(tmp_path, SHAPE, resize="crop").images[0]
    assert int(read[0, 2, 5]) > 200 and int(read[2, 45, 5]) > 200  # red on top, blue below


def test_without_resize_another_size_is_refused_naming_the_file(photos):
    with pytest.raises(DataError) as err:
        read_image_folder(photos["train"], SHAPE)
    assert str(err.value).startswith(str(photos["train"] / "cat" / "000.png"))
    assert "stream.resize" in str(err.value) and "\n" not in str(err.value)


def test_resize_settings_are_checked_and_leave_fingerprints_as_they_were():
    with pytest.raises(ConfigError, match="resize: needs image_shape"):
        load_config(None, ["stream.resize=crop"])
    with pytest.raises(ConfigError, match="2 channels"):
        load_config(None, ["stream.resize=pad", "stream.image_shape=[2,48,40]"])
    with pytest.raises(ConfigError, match="on_bad_image"):
        load_config(None, ["stream.on_bad_image=ignore"])
    smoke = REPO / "configs" / "smoke.yaml"
    plain = load_config(smoke)
    assert plain.fingerprint() == load_config(smoke, [
        "stream.resize=none", "stream.on_bad_image=error"]).fingerprint()
    sized = ["stream.image_shape=[1,28,28]"]
    assert load_config(smoke, sized).fingerprint() != load_config(
        smoke, [*sized, "stream.resize=crop"]).fingerprint()


# -- bad files ------------------------------------------------------------------------------

def _with_bad_files(photos: dict[str, Path], root: Path) -> Path:
    import shutil

    shutil.copytree(photos["train"], root)
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    good = (root / "fish" / "000.png").read_bytes()
    (root / "fish" / "truncated.png").write_bytes(good[: len(good) // 2])
    return root


def test_a_corrupt_file_is_one_line_naming_it_or_skipped_and_counted(photos, tmp_path, capsys):
    root = _with_bad_files(photos, tmp_path / "bad")
    with pytest.raises(DataError) as err:
        read_image_folder(root, SHAPE, resize="crop")
    assert str(err.value).startswith(f"{root / 'dog' / 'broken.jpg'}: undecodable image")
    assert "\n" not in str(err.value) and "0x" not in str(err.value)
    data = read_image_folder(root, SHAPE, resize="crop", on_bad_image="skip")
    assert len(data.images) == 36
    assert data.skipped == (str(root / "dog" / "broken.jpg"), str(root / "fish" / "truncated.png"))
    assert f"{root}: skipped 2 unreadable image(s)" in capsys.readouterr().out
    # Parquet rows alike: a bad row is skipped with its label, the others kept in order.
    blobs = [_bytes(_photo(k % 3, k, np.random.default_rng(k)), "PNG") for k in range(5)]
    blobs[3] = b"\x89PNG\r\n\x1a\n broken"
    pq.write_table(pa.table({"image": blobs, "label": [0, 1, 2, 0, 1]}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"x.parquet row 3: undecodable image"):
        read_image_parquet(tmp_path / "x.parquet", SHAPE, resize="crop")
    rows = read_image_parquet(tmp_path / "x.parquet", SHAPE, resize="crop", on_bad_image="skip")
    assert rows.labels.tolist() == [0, 1, 2, 1] and len(rows.skipped) == 1
    assert (root / "dog" / "broken.jpg").is_file()  # nothing is deleted or rewritten


# -- models built for the size --------------------------------------------------------------

@pytest.mark.parametrize("preset", ["compact", "mlp"])
def test_models_are_built_for_the_configured_size(preset):
    from binplay.run_models import build_models, check_models_fit

    cfg = load_config(None, [f"autoencoder.preset={preset}", "autoencoder.width=8",
                             "autoencoder.hidden=16", "autoencoder.channels=8"])
    models = build_models(cfg, SHAPE, 3)
    x = torch.rand(2, *SHAPE)
    assert models["decoder"](models["encoder"](x)).shape == x.shape
    assert models["classifier"](x).shape == (2, 3)
    check_models_fit(cfg, SHAPE, 3)
    dgr = load_config(None, ["strategy=dgr", "dgr.memory_mb=1"])
    vae = build_models(dgr, SHAPE, 3)["generator"]
    assert vae(x)[0].shape == x.shape
    with pytest.raises(ConfigError, match="multiples of 4"):
        check_models_fit(cfg, (3, 50, 50), 3)
    with pytest.raises(ConfigError, match="preset paper takes 28x28 or 32x32"):
        check_models_fit(load_config(None, ["autoencoder.preset=paper"]), SHAPE, 3)


# -- class names ----------------------------------------------------------------------------

def test_figures_name_the_users_classes(photos, tmp_path):
    from binplay.data.sources import class_names
    from binplay.report import class_name

    assert class_names("image_folder", str(photos["train"])) == dict(enumerate(CLASSES))
    blobs = [_bytes(Image.new("L", (8, 8)), "PNG")] * 3
    pq.write_table(pa.table({"image": blobs, "label": [0, 2, 0], "label_name": ["apple", "pear", "apple"]}),
                   tmp_path / "named.parquet")
    assert class_names("parquet", str(tmp_path / "named.parquet")) == {0: "apple", 2: "pear"}
    assert class_names("parquet", str(tmp_path / "missing.parquet")) == {}
    names = {"0": "apple", "2": "pear"}
    assert class_name("parquet", 2, names) == "pear" and class_name("parquet", 1, names) == "c1"
    pq.write_table(pa.table({"image": blobs, "label": [0, 0, 1], "label_name": ["a", "b", "c"]}),
                   tmp_path / "clash.parquet")
    with pytest.raises(DataError, match="label 0 has two names"):
        read_image_parquet(tmp_path / "clash.parquet")


# -- the jobs on the photo folder -----------------------------------------------------------

@pytest.fixture(scope="module")
def photo_state(photos, tmp_path_factory):
    """jobs.learn on the photo folder at SHAPE (learnt once per module; tests copy it)."""
    from jobs.learn import main

    tmp = tmp_path_factory.mktemp("photo-state")
    config = photo_config(photos, tmp)
    state = tmp / "state"
    assert main(["--state", str(state), "--data", str(photos["train"]), "--test",
                 str(photos["test"]), "--config", str(config)]) == 0
    return state


def test_learn_evaluate_and_predict_on_a_folder_of_photos(photos, photo_state, tmp_path, capsys):
    from binplay.state import load_state
    from binplay.versions.classes import ledger_names
    from binplay.versions.predict import Scorer, check_input
    from binplay.versions.store import StateStore

    saved = load_state(photo_state / "versions" / "v0001")
    assert list(saved["image_shape"]) == list(SHAPE) and saved["num_classes"] == 3
    ledger = json.loads((photo_state / "versions" / "v0001" / "ledger.json").read_text())
    assert ledger["tasks"][0]["classes"] == [0, 1, 2] and ledger["tasks"][0]["samples"] == 36
    code, out, err = _job("evaluate", ["--state", str(photo_state), "--data", str(photos["test"]),
                                       "--output", str(tmp_path / "ev")], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert result["samples"] == 12 and set(result["accuracy_per_class"]) == {"0", "1", "2"}
    # jobs.predict's Ray Data scorer, without Ray: mixed-size raw photo bytes, resized as learnt.
    rng = np.random.default_rng(5)
    blobs = [_bytes(_photo(k % 3, k, rng), "JPEG" if k % 2 else "PNG") for k in range(6)]
    table = pa.table({"image": blobs, "id": np.arange(6)})
    pq.write_table(table, tmp_path / "x.parquet")
    assert check_input(tmp_path / "x.parquet", SHAPE, "crop").rows == 6
    with pytest.raises(DataError, match=r"image of shape \(3, 48, 64\) \(C, H, W\), the state's"):
        check_input(tmp_path / "x.parquet", SHAPE, "none")  # without resize: refused, one line
    payload = (photo_state / "versions" / "v0001" / "state.pt").read_bytes()
    names = ledger_names(StateStore(str(photo_state)).ledger(1))  # what jobs.predict passes
    assert names == dict(enumerate(CLASSES))
    threads = torch.get_num_threads()
    try:
        scored = Scorer(payload, str(tmp_path / "x.parquet"), names=names)(table)
    finally:
        torch.set_num_threads(threads)  # the scorer sets 1 for its Ray actor
    assert scored.column("id").to_pylist() == list(range(6))
    probs = np.array(scored.column("probabilities").to_pylist())
    assert probs.shape == (6, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert scored.column("prediction").to_pylist() == probs.argmax(axis=1).tolist()
    assert scored.column("prediction_name").to_pylist() == [CLASSES[p] for p in probs.argmax(axis=1)]


def test_learn_refuses_a_corrupt_photo_in_one_line_or_skips_it(photos, photo_state, tmp_path, capsys):
    import shutil

    state = shutil.copytree(photo_state, tmp_path / "state")
    before = digest(state)
    bad = _with_bad_files(photos, tmp_path / "bad")
    code, out, err = _job("learn", ["--state", str(state), "--data", str(bad)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {bad / 'dog' / 'broken.jpg'}: undecodable image (")
    assert digest(state) == before  # nothing written, the state as it was
    code, out, err = _job("learn", ["--state", str(state), "--data", str(bad),
                                    "--set", "stream.on_bad_image=skip"], capsys)
    assert code == 0, err
    assert f"{bad}: skipped 2 unreadable image(s)" in out and "published version 2" in out
    ledger = json.loads((state / "versions" / "v0002" / "ledger.json").read_text())
    assert ledger["tasks"][1]["samples"] == 36


def test_learn_refuses_a_size_the_models_cannot_take(photos, tmp_path, capsys):
    config = photo_config(photos, tmp_path, "stream.image_shape=[3,50,50]")
    code, _, err = _job("learn", ["--state", str(tmp_path / "s"), "--data", str(photos["train"]),
                                  "--config", str(config)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "(3, 50, 50)" in err and "multiples of 4" in err
    assert not (tmp_path / "s" / "versions").exists()


def _named_folder(root: Path, names: tuple[str, ...], per_class: int = 8) -> Path:
    """Photos of CLASSES' bars under the given directory names (sorted: labels 0, 1, ...)."""
    rng = np.random.default_rng(7)
    for name in names:
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            angle = CLASSES.index(name) if name in CLASSES else 0
            _write(_photo(angle, k, rng), root / name / f"{k:03d}.png")
    return root


def test_a_later_folder_keeps_known_class_names_and_gives_new_ones_new_labels(
        photos, tmp_path, capsys):
    """Sorted directory names are labels 0, 1, ... within one folder; across learns the
    state's names decide: dog stays 1, fish (new) takes 2, not the 0 and 1 of its folder."""
    config = photo_config(photos, tmp_path, "classifier.max_classes=4")
    state = tmp_path / "state"
    first = _named_folder(tmp_path / "a", ("cat", "dog"))
    code, _, err = _job("learn", ["--state", str(state), "--data", str(first),
                                  "--config", str(config)], capsys)
    assert code == 0, err
    second = _named_folder(tmp_path / "b", ("dog", "fish"))
    code, out, err = _job("learn", ["--state", str(state), "--data", str(second)], capsys)
    assert code == 0, err
    tasks = json.loads((state / "versions" / "v0002" / "ledger.json").read_text())["tasks"]
    assert [t["classes"] for t in tasks] == [[0, 1], [1, 2]]
    assert [t["class_names"] for t in tasks] == [{"0": "cat", "1": "dog"}, {"1": "dog", "2": "fish"}]
    # jobs.evaluate labels a test folder by the same names; a class never learnt is refused.
    code, _, err = _job("evaluate", ["--state", str(state), "--data", str(second),
                                     "--output", str(tmp_path / "ev")], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert set(result["accuracy_per_class"]) == {"1", "2"}
    birds = _named_folder(tmp_path / "c", ("bird", "dog"))
    code, _, err = _job("evaluate", ["--state", str(state), "--data", str(birds),
                                     "--output", str(tmp_path / "ev2")], capsys)
    assert code == 2 and "class 'bird' is not one the state learnt (cat, dog, fish)" in err, err
    # A Parquet file's label_name must agree with the state's names: one line, nothing written.
    x = np.stack([np.asarray(ImageOps.fit(_photo(2, k, np.random.default_rng(k)).convert("RGB"),
                                          (SHAPE[2], SHAPE[1]))) for k in range(4)])
    blobs = [_bytes(Image.fromarray(img), "PNG") for img in x]
    pq.write_table(pa.table({"image": blobs, "label": [0] * 4, "label_name": ["fish"] * 4}),
                   tmp_path / "fish.parquet")
    before = digest(state)
    code, _, err = _job("learn", ["--state", str(state), "--data", str(tmp_path / "fish.parquet")],
                        capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "class 'fish' has label 0, but the state learnt it as label 2" in err
    assert digest(state) == before
