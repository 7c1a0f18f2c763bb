"""Acceptance 4: every bad input to learn, evaluate and predict is refused in one line (exit 2)
on the driver and leaves the state as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import png_bytes, synthetic_images, write_parquet
from learntools import digest, learn_config, task_files


def _bad_files(root: Path, files: dict[str, Path]) -> dict[str, Path]:
    """One file per kind of bad input (all of them otherwise well-formed)."""
    x, y = synthetic_images(4, [0, 1], seed=5)
    big, big_y = synthetic_images(4, [0, 1], seed=5, size=32)
    rgb = [png_bytes(np.repeat(img[:, :, None], 3, axis=2)) for img in x]
    pngs = [png_bytes(img) for img in x]
    empty = root / "empty.parquet"
    empty.write_bytes(b"")
    corrupt = root / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet at all" * 8)
    newer = shutil.copytree(files["state"], root / "newer-state")
    (newer / "LATEST").write_text(json.dumps({"format_version": 99, "version": 1}))
    tables = {
        "size": write_parquet(root / "size.parquet", big, big_y),
        "channels": pa.table({"image": rgb, "label": y}),
        "float_labels": pa.table({"image": pngs, "label": y.astype(np.float64) + 0.5}),
        "string_labels": pa.table({"image": pngs, "label": [f"c{v}" for v in y]}),
        "corrupt_image": pa.table({"image": [b"\x89PNG garbage"] + pngs[1:], "label": y}),
        "no_rows": pa.table({"image": pa.array([], pa.binary()), "label": pa.array([], pa.int64())}),
    }
    out = {"empty": empty, "corrupt": corrupt, "newer_format": newer}
    for name, table in tables.items():
        if isinstance(table, Path):
            out[name] = table
        else:
            pq.write_table(table, root / f"{name}.parquet")
            out[name] = root / f"{name}.parquet"
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from jobs.learn import main

    root = tmp_path_factory.mktemp("bad-inputs")
    files = task_files(root / "data")
    config = learn_config(files, root, "autoencoder.decoder_epochs=1", "classifier.epochs=1")
    assert main(["--state", str(root / "state"), "--data", str(files["t0"]), "--config", str(config)]) == 0
    files["state"] = root / "state"
    return files, _bad_files(root, files)


# (kind, words the one line must hold)
CASES = [("size", "(1, 32, 32)"), ("channels", "(3, 28, 28)"), ("empty", "empty file"),
         ("float_labels", "expected integers"), ("string_labels", "expected integers"),
         ("corrupt", "not a readable Parquet file"), ("corrupt_image", "undecodable image"),
         ("no_rows", "no rows"), ("newer_format", "newer than this BinPlay reads")]


def _run(job: str, argv: list[str], capsys) -> tuple[int, str]:
    import importlib

    code = importlib.import_module(f"jobs.{job}").main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("job", ["learn", "evaluate", "predict"])
@pytest.mark.parametrize("kind,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_the_state(setup, job, kind, words, tmp_path, capsys):
    files, bad = setup
    if job == "predict" and kind in ("float_labels", "string_labels"):
        words = "expected integers"
    state = bad[kind] if kind == "newer_format" else files["state"]
    data = files["t1"] if kind == "newer_format" else bad[kind]
    before = digest(state)
    argv = {"learn": ["--state", str(state), "--data", str(data)],
            "evaluate": ["--state", str(state), "--data", str(data), "--output", str(tmp_path / "ev")],
            "predict": ["--state", str(state), "--data", str(data), "--output", str(tmp_path / "pred")],
            }[job]
    code, err = _run(job, argv, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err
    assert digest(state) == before
    assert not (tmp_path / "ev").exists() and not (tmp_path / "pred").exists()


def test_more_samples_than_the_codes_left_are_refused(setup, capsys):
    files, _ = setup
    before = digest(files["state"])
    # 8 bits per part: 256 codes, 96 used by task 0; the whole training file holds 192.
    code, err = _run("learn", ["--state", str(files["state"]), "--data", str(files["train"])], capsys)
    assert code == 2 and err.count("\n") == 1 and "only 160 codes are left" in err, err
    assert digest(files["state"]) == before


def test_labels_beyond_the_head_are_refused(setup, tmp_path, capsys):
    files, _ = setup
    x, y = synthetic_images(4, [0], seed=3)
    path = write_parquet(tmp_path / "label9.parquet", x, y + 9)  # the head has 4 outputs
    before = digest(files["state"])
    code, err = _run("learn", ["--state", str(files["state"]), "--data", str(path)], capsys)
    assert code == 2 and "label 9 does not fit the classifier's 4 outputs" in err, err
    assert digest(files["state"]) == before


def test_missing_state_and_version(setup, tmp_path, capsys):
    files, _ = setup
    code, err = _run("evaluate", ["--state", str(tmp_path / "none"), "--data", str(files["test"])], capsys)
    assert code == 2 and "no published version" in err
    code, err = _run("generate", ["--state", str(files["state"]), "--version", "7"], capsys)
    assert code == 2 and "version 7 not found" in err and err.count("\n") == 1
