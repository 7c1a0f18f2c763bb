"""Every job against every kind of bad input (issue 29): exit 2, one line on stderr naming the
problem, nothing written or changed, and Ray never started.

``CASES`` holds one row per (job, input kind, variant). Jobs: ``train``, ``learn``,
``evaluate`` on a run (``--checkpoint``: kinds ``run-*``) and on a learn state (``--state``:
kinds ``state-*``), ``generate``, ``predict``, ``compare``, ``tune``. Input kinds:

- ``shape``, ``channels``: images of another size or channel count than the run's or state's;
- ``dataset``: another dataset (CIFAR-like RGB 32x32 against a 1x28x28 state; a run
  evaluated on ``stream.dataset=cifar10``; a run or comparison resumed with another stream);
- ``corrupt``, ``empty``: a Parquet file, an image (in a Parquet row or an image folder), a
  config, a state.pt (a run's or a state version's);
- ``columns``: no ``label`` or no image column, an image column that holds no image bytes,
  both image columns (which one holds the images is the user's to say);
- ``labels``: float or string labels, a negative label, a label beyond the classes;
- ``checkpoint``: a missing run or state, and foreign ones: a state.pt of another state
  version, a state pointer of a newer format, a random file, a state.pt of plain data that
  is no BinPlay run, a learn state given as a run and a run given as a state;
- ``config``: a wrong type (``--set classifier.epochs=abc``, a YAML list at the top, a
  Tune space of strings), a missing file, an unknown key, an argument of the wrong type or
  range (``--count 0``, ``--batch-size abc``, ``--seeds a,b``).

Pairs that do not apply, and why:

- generate x shape, channels, dataset, data-file corrupt/empty, columns, labels: generate
  reads no images or labels, only a run or a state (its corrupt and empty state files are
  ``checkpoint`` rows).
- evaluate --state, generate, predict x config file: they take no config (the state's own
  is used); their ``config`` rows are arguments of the wrong type or range.
- predict x missing label column, negative or out-of-range labels: labels are optional for
  predict and passed through as they are (a non-integer label column is refused). predict
  checks the first row on the driver and every other row inside its Ray Data tasks, which
  this Ray-free test does not start: its bad image is in row 0.
- predict x image folder: predict decodes a folder's first image on the driver and the
  others in Ray Data's tasks (the Ray test has a bad one there): its rows are a folder whose
  first image is corrupt and one without images.
- train, compare, tune x a learn state: they take none; they resume their own runs, which
  the ``checkpoint`` rows give them corrupt, of another version or of another config.
- tune x checkpoint (a trial's run): a search resumes from Ray Tune's experiment files,
  which only a started search reads; ``--output`` holding another search is its row.
- compare, tune x shape, channels: their runs build the stream jobs.train builds, through
  the same checks (the train rows); they have rows for corrupt data, columns and labels.
- tune x dataset: a search trains fresh runs on whatever dataset its base config names; a
  search resumed with another base is another search (its ``checkpoint`` row).
- extra columns: a Parquet file may carry more columns (ids, paths, label names) than the
  image and the label; they are not bad input and are not refused.

The valid artefacts (a run trained by jobs.train, a state learnt by jobs.learn, both tiny)
are built once per module in this process (``ray.num_workers=0``); every job runs here
through its ``main(argv)``, with Ray's start patched to fail the test.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from conftest import png_bytes, synthetic_images, write_parquet
from learntools import learn_config, task_files


def _table(path: Path, columns: dict) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _data_files(root: Path) -> dict[str, Path]:
    """One labelled file per kind of bad data, each otherwise well-formed (classes 0..3, so
    a run's stream finds every task's classes and only the named defect is wrong)."""
    x, y = synthetic_images(3, [0, 1, 2, 3], seed=5)
    pngs = [png_bytes(img) for img in x]
    big, _ = synthetic_images(3, [0, 1, 2, 3], seed=5, size=32)
    rgb = [png_bytes(np.repeat(img[:, :, None], 3, axis=2)) for img in x]
    cifar_like = [png_bytes(np.repeat(img[:, :, None], 3, axis=2)) for img in big]
    one = np.array(y)
    negative, beyond = one.copy(), one.copy()
    negative[0], beyond[0] = -1, 9
    files = {
        "shape": write_parquet(root / "shape.parquet", big, y),
        "channels": _table(root / "channels.parquet", {"image": rgb, "label": y}),
        "cifar_like": _table(root / "cifar_like.parquet", {"image": cifar_like, "label": y}),
        "corrupt_image": _table(root / "corrupt_image.parquet",
                                {"image": [b"\x89PNG garbage", *pngs[1:]], "label": y}),
        "no_rows": _table(root / "no_rows.parquet", {"image": pa.array([], pa.binary()),
                                                     "label": pa.array([], pa.int64())}),
        "no_label": _table(root / "no_label.parquet", {"image": pngs}),
        "no_image": _table(root / "no_image.parquet", {"label": y}),
        "image_type": _table(root / "image_type.parquet", {"image": list(range(len(y))), "label": y}),
        "both_images": _table(root / "both_images.parquet",
                              {"img": [{"bytes": b, "path": None} for b in pngs], "image": pngs,
                               "label": y}),
        "float_labels": _table(root / "float_labels.parquet", {"image": pngs, "label": y + 0.5}),
        "string_labels": _table(root / "string_labels.parquet",
                                {"image": pngs, "label": [f"c{v}" for v in y]}),
        "negative_labels": _table(root / "negative_labels.parquet", {"image": pngs, "label": negative}),
        "big_labels": _table(root / "big_labels.parquet", {"image": pngs, "label": beyond}),
    }
    (root / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet at all" * 8)
    (root / "empty.parquet").write_bytes(b"")
    files.update(corrupt=root / "corrupt.parquet", empty=root / "empty.parquet")
    for name, blob in (("folder_corrupt", b"\x89PNG garbage"), ("folder_empty", b"")):
        for label in (0, 1):
            (root / name / str(label)).mkdir(parents=True)
            for i, png in enumerate(pngs[:2]):
                (root / name / str(label) / f"{i}.png").write_bytes(png)
        (root / name / "1" / "bad.png").write_bytes(blob)
        files[name] = root / name
    # predict decodes a folder's first image on the driver, the rest in Ray Data's tasks
    (root / "predict_folder_corrupt" / "0").mkdir(parents=True)
    (root / "predict_folder_corrupt" / "0" / "a.png").write_bytes(b"\x89PNG garbage")
    (root / "predict_folder_corrupt" / "1").mkdir()
    (root / "predict_folder_corrupt" / "1" / "b.png").write_bytes(pngs[0])
    (root / "predict_folder_empty" / "0").mkdir(parents=True)
    (root / "predict_folder_empty" / "0" / "notes.txt").write_text("no images here")
    files.update(predict_folder_corrupt=root / "predict_folder_corrupt",
                 predict_folder_empty=root / "predict_folder_empty")
    return files


def _config_files(root: Path, config: Path, data: dict[str, Path]) -> dict[str, Path]:
    texts = {"config_list": "- name: a\n- name: b\n", "config_corrupt": "name: [unclosed\n",
             "config_empty": "", "config_epochs": "classifier:\n  epochs: abc\n"}
    tree = yaml.safe_load(config.read_text())
    for name, key in (("config_corrupt_data", "corrupt"), ("config_no_label", "no_label"),
                      ("config_float_labels", "float_labels")):
        texts[name] = yaml.safe_dump({**tree, "stream": {**tree["stream"], "path": str(data[key])}})
    search = {"name": "bad", "base": str(config), "overrides": {"stream.val_fraction": 0.25},
              "space": {"classifier.lr": {"grid": [0.001, 0.01]}}, "search": "grid",
              "resources": {"cpus": 1}}
    for name, change in (("tune_ok", {}),
                         ("tune_epochs", {"space": {"classifier.epochs": {"grid": ["abc"]}}}),
                         ("tune_overrides", {"overrides": {"classifier.epochs": "abc"}}),
                         ("tune_missing_base", {"base": str(root / "none.yaml")}),
                         ("tune_corrupt_base", {"base": str(root / "config_corrupt.yaml")}),
                         ("tune_corrupt_data", {"base": str(root / "config_corrupt_data.yaml")}),
                         ("tune_no_label", {"base": str(root / "config_no_label.yaml")}),
                         ("tune_float_labels", {"base": str(root / "config_float_labels.yaml")})):
        texts[name] = yaml.safe_dump({**search, **change})
    for name, text in texts.items():
        (root / f"{name}.yaml").write_text(text)
    (root / "tune_other").mkdir()  # the place of another search
    (root / "tune_other" / "search.json").write_text(json.dumps({"fingerprint": "0" * 16, "name": "x"}))
    return {name: root / f"{name}.yaml" for name in texts} | {"tune_other": root / "tune_other"}


def _foreign(root: Path, run: Path, state: Path) -> dict[str, Path]:
    """Runs and states that are not what they claim to be."""
    from binplay.state import load_state, save_state

    random = root / "random.pt"
    random.write_bytes(np.random.default_rng(0).bytes(4096))
    plain = root / "plain" / "state.pt"
    plain.parent.mkdir()
    torch.save({"version": 2, "config": {"bogus": 1}, "models": {}}, plain)
    out = {"random": random, "plain": plain.parent}
    for name, change in (("run_v99", "version"), ("run_corrupt", "bytes"), ("run_empty", "empty")):
        copy = shutil.copytree(run, root / name)
        if change == "version":
            state_dict = load_state(copy / "checkpoint")
            state_dict["version"] = 99
            save_state(state_dict, copy / "checkpoint")
        else:
            (copy / "checkpoint" / "state.pt").write_bytes(b"" if change == "empty" else random.read_bytes())
        out[name] = copy
    for name, change in (("state_newer", "pointer"), ("state_corrupt", "bytes"),
                         ("state_v99", "version"), ("state_empty", "empty")):
        copy = shutil.copytree(state, root / name)
        target = copy / "versions" / "v0001" / "state.pt"
        if change == "pointer":
            (copy / "LATEST").write_text(json.dumps({"format_version": 99, "version": 1}))
        elif change == "version":
            torch.save({**torch.load(target, weights_only=True), "version": 99}, target)
        else:
            target.write_bytes(b"" if change == "empty" else random.read_bytes())
        out[name] = copy
    # Comparisons whose run finetune-auto-s0 was left unfinished: a corrupt checkpoint, and
    # one written by another config (the binplay run's).
    for name, source in (("cmp_corrupt", run / "checkpoint"), ("cmp_other", run / "checkpoint")):
        target = shutil.copytree(source, root / name / "runs" / "finetune-auto-s0" / "checkpoint")
        if name == "cmp_corrupt":
            (target / "state.pt").write_bytes(random.read_bytes())
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Every path a case names, by key: the valid run, state, config and data, then the bad."""
    from jobs.learn import main as learn
    from jobs.train import main as train

    root = tmp_path_factory.mktemp("bad-input")
    data = task_files(root / "data")
    config = learn_config(data, root, "autoencoder.decoder_epochs=1", "classifier.epochs=1",
                          "run.keep_checkpoints=1")
    run, state = root / "run", root / "state"
    assert train(["--config", str(config), "--output", str(run)]) == 0
    assert learn(["--state", str(state), "--data", str(data["t0"]), "--config", str(config)]) == 0
    (root / "bad").mkdir()
    bad = _data_files(root / "bad")
    bad |= _config_files(root / "bad", config, bad) | _foreign(root / "bad", run, state)
    return {"root": root, "config": config, "run": run, "state": state, **data, **bad}


def snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file and directory under ``roots``: (mtime, SHA-256) of a file, a mark of a dir."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            out[str(p)] = ((p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
                           if p.is_file() else (0, "dir"))
    return out


@dataclass
class Case:
    job: str  # a module of jobs/
    kind: str
    variant: str
    argv: str  # with {key} for world's paths and {out}, a fresh place under the test's tmp
    words: str  # what the one line must say

    @property
    def id(self) -> str:
        return f"{self.job}-{self.kind}-{self.variant}"


# Labelled-data rows, for every job that reads labelled images: (kind, variant, file key, words).
DATA_ROWS = [
    ("shape", "32x32", "shape", "(1, 32, 32)"),
    ("channels", "rgb", "channels", "(3, 28, 28)"),
    ("dataset", "cifar_like", "cifar_like", "(3, 32, 32)"),
    ("corrupt", "parquet", "corrupt", "not a readable Parquet file"),
    ("corrupt", "image", "corrupt_image", "undecodable image"),
    ("corrupt", "folder_image", "folder_corrupt", "undecodable image"),
    ("empty", "file", "empty", "empty"),
    ("empty", "no_rows", "no_rows", "no rows"),
    ("empty", "folder_image", "folder_empty", "undecodable image"),
    ("columns", "no_label", "no_label", "no 'label' column"),
    ("columns", "no_image", "no_image", "no image column"),
    ("columns", "image_type", "image_type", "expected image bytes"),
    ("columns", "both_images", "both_images", "both an 'img' and an 'image' column"),
    ("labels", "float", "float_labels", "expected integers"),
    ("labels", "string", "string_labels", "expected integers"),
    ("labels", "negative", "negative_labels", "label -1"),
    ("labels", "beyond", "big_labels", "label 9"),
]
PREDICT_SKIPS = {"no_label", "negative", "beyond"}  # labels are optional for predict


def _data_cases() -> list[Case]:
    cases = []
    for kind, variant, key, words in DATA_ROWS:
        cases += [Case("learn", kind, variant, f"--state {{state}} --data {{{key}}}", words),
                  Case("evaluate", f"state-{kind}", variant,
                       f"--state {{state}} --data {{{key}}} --output {{out}}", words)]
        if key.startswith("folder"):
            continue  # the run's stream is Parquet: a folder is the state jobs' input
        # train: a training file of another shape than the (valid) test file is the mismatch
        cases += [Case("train", kind, variant, f"--config {{config}} --output {{out}} "
                       f"--set stream.path={{{key}}}", words),
                  Case("evaluate", f"run-{kind}", variant, f"--checkpoint {{run}} --output {{out}} "
                       f"--set stream.path={{{key}}} --set stream.test_path={{{key}}}", words)]
        if variant not in PREDICT_SKIPS:
            cases.append(Case("predict", kind, variant,
                              f"--state {{state}} --data {{{key}}} --output {{out}}", words))
    return cases


_T = "--config {config} --output {out}"
_L = "--state {state} --data {t1}"
_EV = "--data {t0_test} --output {out}"
_CMP = "--strategies finetune --seeds 0 --output {out}"
CASES: list[Case] = _data_cases() + [
    Case("train", "dataset", "resume_other",
         "--config {config} --output {run} --set stream.tasks=[[0],[1,2,3]]",
         "different config"),
    Case("train", "checkpoint", "v99", "--config {config} --output {run_v99}", "state version 99"),
    Case("train", "checkpoint", "corrupt", "--config {config} --output {run_corrupt}", "unreadable state"),
    Case("train", "checkpoint", "empty", "--config {config} --output {run_empty}", "unreadable state"),
    Case("train", "config", "set_type", f"{_T} --set classifier.epochs=abc", "classifier.epochs"),
    Case("train", "config", "yaml_list", "--config {config_list} --output {out}",
         "top level must be a mapping"),
    Case("train", "config", "yaml_type", "--config {config_epochs} --output {out}", "classifier.epochs"),
    Case("train", "config", "missing", "--config {root}/none.yaml --output {out}", "cannot read config"),
    Case("train", "config", "unknown_key", f"{_T} --set classifier.epoch=3", "classifier.epoch"),
    Case("train", "corrupt", "config", "--config {config_corrupt} --output {out}", "malformed YAML"),
    Case("train", "empty", "config", "--config {config_empty} --output {out}", "empty config file"),
    Case("learn", "shape", "test_file", f"{_L} --test {{shape}}", "(1, 32, 32)"),
    Case("learn", "checkpoint", "newer_format", "--state {state_newer} --data {t1}",
         "newer than this BinPlay"),
    Case("learn", "checkpoint", "corrupt", "--state {state_corrupt} --data {t1}", "unreadable state"),
    Case("learn", "checkpoint", "empty", "--state {state_empty} --data {t1}", "unreadable state"),
    Case("learn", "checkpoint", "v99", "--state {state_v99} --data {t1}", "state version 99"),
    Case("learn", "checkpoint", "run_as_state", "--state {run} --data {t1}", "not a BinPlay state but a run"),
    Case("learn", "checkpoint", "file_as_state", "--state {random} --data {t1}", "not a BinPlay state"),
    Case("learn", "config", "set_type", f"{_L} --set classifier.epochs=abc", "classifier.epochs"),
    Case("learn", "config", "keep", f"{_L} --keep 0", "--keep"),
    Case("learn", "config", "yaml_list", "--state {out}/new --data {t0} --config {config_list}",
         "top level must be a mapping"),
    Case("learn", "corrupt", "config", "--state {out}/new --data {t0} --config {config_corrupt}",
         "malformed YAML"),
    Case("learn", "empty", "config", "--state {out}/new --data {t0} --config {config_empty}",
         "empty config file"),
    Case("learn", "corrupt", "first_learn", "--state {out}/new --data {corrupt} --config {config}",
         "not a readable Parquet file"),
    Case("evaluate", "run-dataset", "cifar10",
         "--checkpoint {run} --set stream.dataset=cifar10 --output {out}",
         "(3, 32, 32)"),
    Case("evaluate", "run-checkpoint", "missing", "--checkpoint {root}/none", "no saved state"),
    Case("evaluate", "run-checkpoint", "random_file", "--checkpoint {random}", "unreadable state"),
    Case("evaluate", "run-checkpoint", "corrupt", "--checkpoint {run_corrupt}", "unreadable state"),
    Case("evaluate", "run-checkpoint", "empty", "--checkpoint {run_empty}", "unreadable state"),
    Case("evaluate", "run-checkpoint", "v99", "--checkpoint {run_v99}", "state version 99"),
    Case("evaluate", "run-checkpoint", "plain_data", "--checkpoint {plain}",
         "not a state this BinPlay can use"),
    Case("evaluate", "run-checkpoint", "state_as_run", "--checkpoint {state}", "a learn state"),
    Case("evaluate", "run-config", "set_type", "--checkpoint {run} --set stream.test_per_class=abc",
         "stream.test_per_class"),
    Case("evaluate", "run-config", "not_stream", "--checkpoint {run} --set classifier.epochs=3", "stream.*"),
    Case("evaluate", "run-config", "tasks", "--checkpoint {run} --set stream.tasks=[[0,1]]", "stream.tasks"),
    Case("evaluate", "state-checkpoint", "missing", f"--state {{root}}/none {_EV}", "no published version"),
    Case("evaluate", "state-checkpoint", "newer_format", f"--state {{state_newer}} {_EV}", "newer than this"),
    Case("evaluate", "state-checkpoint", "corrupt", f"--state {{state_corrupt}} {_EV}", "unreadable state"),
    Case("evaluate", "state-checkpoint", "v99", f"--state {{state_v99}} {_EV}", "state version 99"),
    Case("evaluate", "state-checkpoint", "run_as_state", f"--state {{run}} {_EV}", "not a BinPlay state"),
    Case("evaluate", "state-checkpoint", "file_as_state", f"--state {{random}} {_EV}", "not a BinPlay state"),
    Case("evaluate", "state-config", "version_type", f"--state {{state}} {_EV} --version abc", "--version"),
    Case("evaluate", "state-config", "version_missing", f"--state {{state}} {_EV} --version 7",
         "version 7 not found"),
    Case("generate", "checkpoint", "missing_run", "--checkpoint {root}/none", "no saved state"),
    Case("generate", "checkpoint", "random_file", "--checkpoint {random}", "unreadable state"),
    Case("generate", "checkpoint", "corrupt_run", "--checkpoint {run_corrupt}", "unreadable state"),
    Case("generate", "checkpoint", "empty_run", "--checkpoint {run_empty}", "unreadable state"),
    Case("generate", "checkpoint", "v99_run", "--checkpoint {run_v99}", "state version 99"),
    Case("generate", "checkpoint", "plain_data", "--checkpoint {plain}", "not a state this BinPlay can use"),
    Case("generate", "checkpoint", "state_as_run", "--checkpoint {state}", "a learn state"),
    Case("generate", "checkpoint", "missing_state", "--state {root}/none", "no published version"),
    Case("generate", "checkpoint", "newer_state", "--state {state_newer}", "newer than this BinPlay"),
    Case("generate", "checkpoint", "corrupt_state", "--state {state_corrupt}", "unreadable state"),
    Case("generate", "checkpoint", "v99_state", "--state {state_v99}", "state version 99"),
    Case("generate", "checkpoint", "run_as_state", "--state {run}", "not a BinPlay state"),
    Case("generate", "config", "count_type", "--checkpoint {run} --count abc", "--count"),
    Case("generate", "config", "count_zero", "--checkpoint {run} --count 0 --output {out}", "--count"),
    Case("generate", "config", "task", "--checkpoint {run} --task 7 --output {out}", "task 7"),
    Case("generate", "config", "range", "--checkpoint {run} --start 50 --stop 10 --output {out}",
         "indices 50..10"),
    Case("predict", "checkpoint", "missing", "--state {root}/none --data {t0_test} --output {out}",
         "no published version"),
    Case("predict", "checkpoint", "newer_format", "--state {state_newer} --data {t0_test} --output {out}",
         "newer than this BinPlay"),
    Case("predict", "checkpoint", "corrupt", "--state {state_corrupt} --data {t0_test} --output {out}",
         "unreadable state"),
    Case("predict", "checkpoint", "v99", "--state {state_v99} --data {t0_test} --output {out}",
         "state version 99"),
    Case("predict", "checkpoint", "run_as_state", "--state {run} --data {t0_test} --output {out}",
         "not a BinPlay state"),
    Case("predict", "config", "batch_size", "--state {state} --data {t0_test} --output {out} --batch-size 0",
         "--batch-size"),
    Case("predict", "config", "batch_size_type",
         "--state {state} --data {t0_test} --output {out} --batch-size x",
         "--batch-size"),
    Case("predict", "corrupt", "folder_first_image",
         "--state {state} --data {predict_folder_corrupt} --output {out}", "undecodable image"),
    Case("predict", "empty", "folder", "--state {state} --data {predict_folder_empty} --output {out}",
         "no image files"),
    Case("compare", "corrupt", "parquet", f"--config {{config_corrupt_data}} {_CMP}",
         "not a readable Parquet file"),
    Case("compare", "columns", "no_label", f"--config {{config_no_label}} {_CMP}", "no 'label' column"),
    Case("compare", "labels", "float", f"--config {{config_float_labels}} {_CMP}", "expected integers"),
    Case("compare", "config", "set_type", f"--config {{config}} {_CMP} --set classifier.epochs=abc",
         "classifier.epochs"),
    Case("compare", "config", "yaml_list", f"--config {{config_list}} {_CMP}", "top level must be a mapping"),
    Case("compare", "corrupt", "config", f"--config {{config_corrupt}} {_CMP}", "malformed YAML"),
    Case("compare", "empty", "config", f"--config {{config_empty}} {_CMP}", "empty config file"),
    Case("compare", "config", "strategy", "--config {config} --strategies nope --output {out}",
         "unknown 'nope'"),
    Case("compare", "config", "seeds_type", "--config {config} --seeds a,b --output {out}", "--seeds"),
    Case("compare", "config", "memory_type", "--config {config} --memory-mb lots --output {out}",
         "--memory-mb"),
    Case("compare", "config", "strategy_config_form",
         "--config {config} --strategy-config er --output {out}", "--strategy-config"),
    Case("compare", "config", "strategy_config_unused",
         f"--config {{config}} {_CMP} --strategy-config er={{config}}", "not among the compared"),
    Case("compare", "checkpoint", "corrupt_run",
         "--config {config} --strategies finetune --output {cmp_corrupt}",
         "unreadable state"),
    Case("compare", "dataset", "resume_other", "--config {config} --strategies finetune --output {cmp_other}",
         "different config"),
    Case("tune", "config", "space_type", "--config {tune_epochs} --output {out}", "classifier.epochs"),
    Case("tune", "config", "overrides_type", "--config {tune_overrides} --output {out}", "classifier.epochs"),
    Case("tune", "config", "yaml_list", "--config {config_list} --output {out}",
         "top level must be a mapping"),
    Case("tune", "config", "missing_base", "--config {tune_missing_base} --output {out}",
         "cannot read training config"),
    Case("tune", "corrupt", "config", "--config {config_corrupt} --output {out}", "malformed YAML"),
    Case("tune", "empty", "config", "--config {config_empty} --output {out}", "Field required"),
    Case("tune", "corrupt", "base", "--config {tune_corrupt_base} --output {out}",
         "cannot read training config"),
    Case("tune", "corrupt", "parquet", "--config {tune_corrupt_data} --output {out}",
         "not a readable Parquet file"),
    Case("tune", "columns", "no_label", "--config {tune_no_label} --output {out}", "no 'label' column"),
    Case("tune", "labels", "float", "--config {tune_float_labels} --output {out}", "expected integers"),
    Case("tune", "checkpoint", "other_search", "--config {tune_ok} --output {tune_other}",
         "holds another search"),
]


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    """Bad input fails before Ray starts: starting it fails the test."""
    import ray

    from binplay.ray_train import cluster

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for a bad input")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(cluster, "ensure_ray", refuse)


def run_job(job: str, argv: list[str], capsys) -> tuple[int, str]:
    """``jobs.<job>.main(argv)`` in this process: (exit code, stderr); argparse's refusals
    raise SystemExit, whose code is the job's."""
    capsys.readouterr()
    try:
        code = importlib.import_module(f"jobs.{job}").main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_the_table_covers_every_job_and_kind():
    jobs = {c.job if c.job != "evaluate" else f"evaluate-{c.kind.split('-')[0]}" for c in CASES}
    assert jobs == {"train", "learn", "evaluate-run", "evaluate-state", "generate", "predict",
                    "compare", "tune"}
    kinds = {c.kind.split("-")[-1] for c in CASES}
    assert kinds == {"shape", "channels", "dataset", "corrupt", "empty", "columns", "labels",
                     "checkpoint", "config"}
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(world, case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # default outputs (evaluation-vNNNN/, generated-...) land here
    paths = {key: str(path) for key, path in world.items()} | {"out": str(tmp_path / "out")}
    argv = case.argv.format_map(paths).split()
    before = snapshot(world["root"], tmp_path)
    code, err = run_job(case.job, argv, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert case.words in err, err
    assert snapshot(world["root"], tmp_path) == before
