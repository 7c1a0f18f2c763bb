"""The honest yardstick (issue 25): memory is what the saved state carries, the encoder does
not cross tasks, no image or per-sample record sits in a checkpoint, choices read a
validation split that is never trained on, and the baselines replay as published."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_engine import _run

from binplay.config import ConfigError, load_config
from binplay.data.shards import read_shards
from binplay.data.stream import build_stream, task_rows, validation_count
from binplay.data.types import ImageSet
from binplay.launch import train
from binplay.memory import carried, carried_bytes, classifier_bytes
from binplay.state import STATE_FILE, load_state, save_state
from binplay.strategies.binplay import BinPlayStrategy, fresh_encoder

SHAPE = (1, 28, 28)
MLP_INT8 = ("autoencoder.preset=mlp", "autoencoder.hidden=32", "autoencoder.channels=16",
            "autoencoder.store=int8")


def _all_tensors(value, path=""):
    """Every tensor under ``value`` with its path, found independently of binplay.memory."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _all_tensors(v, f"{path}/{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _all_tensors(v, f"{path}/{i}")


@pytest.mark.parametrize("strategy", ["binplay", "er", "dgr"])
def test_memory_is_every_tensor_the_saved_state_carries(strategy, tiny, tmp_path):
    sets = {"binplay": MLP_INT8, "er": ("er.memory_mb=0.02",),
            "dgr": ("dgr.memory_mb=0.15", "dgr.epochs=1")}[strategy]
    cfg = tiny(f"strategy={strategy}", *sets, "autoencoder.decoder_epochs=2", "classifier.epochs=1")
    report = json.loads(Path(train(cfg)).read_text())
    saved = torch.load(tmp_path / "runs" / "tiny" / "checkpoint" / STATE_FILE, weights_only=True)
    every = dict(_all_tensors(saved))
    kept = {p: t.numel() * t.element_size() for p, t in every.items()
            if not p.startswith("models/classifier/")}
    assert report["memory_bytes"] == sum(kept.values()) > 0
    assert report["memory_breakdown"] == kept
    assert report["classifier_bytes"] == sum(t.numel() * t.element_size() for p, t in every.items()
                                             if p.startswith("models/classifier/"))
    assert report["classifier_bytes"] == classifier_bytes(saved) > 0
    # A tensor added to the carried state later is counted without anyone remembering to.
    saved["extra"] = {"kept": torch.zeros(10, dtype=torch.float16)}
    assert carried_bytes(saved) == report["memory_bytes"] + 20
    if strategy == "binplay":  # the decoder at its stored size, no encoder
        assert "models/encoder" not in report["memory_parts"]
        assert any(saved["models"]["decoder"][k].dtype == torch.int8 for k in saved["models"]["decoder"])
        assert set(report["memory_parts"]) == {"models/decoder"}
    if strategy == "er":  # images and labels, one byte each
        assert report["memory_parts"] == {"buffer/images": report["memory_images"] * 784,
                                          "buffer/labels": report["memory_images"]}


def test_encoder_is_fresh_at_every_task_unless_carried(tiny, tmp_path, monkeypatch):
    starts: dict[int, dict[str, torch.Tensor]] = {}
    real = BinPlayStrategy.begin_task

    def record(self, run, fresh):
        real(self, run, fresh)
        starts[run.t] = {k: v.clone() for k, v in run.models["encoder"].state_dict().items()}

    monkeypatch.setattr(BinPlayStrategy, "begin_task", record)
    cfg = tiny("autoencoder.decoder_epochs=1", "classifier.epochs=1")
    state = _run(cfg, tmp_path / "reset")
    assert sorted(starts) == [0, 1]
    for t, weights in starts.items():
        expected = fresh_encoder(cfg, SHAPE, t).state_dict()
        for key, value in expected.items():
            assert torch.equal(weights[key], value), (t, key)
    assert not torch.equal(starts[0][next(iter(starts[0]))], starts[1][next(iter(starts[1]))])
    assert "encoder" not in state["models"]
    assert not any(p.startswith("models/encoder") for p in carried(state))

    carry = tiny("autoencoder.decoder_epochs=1", "classifier.epochs=1",
                 "autoencoder.encoder_carry=true")
    starts.clear()
    kept = _run(carry, tmp_path / "carry")
    first_end = kept["models"]["encoder"]  # carried: the trained encoder enters task 2
    assert not torch.equal(starts[1][next(iter(starts[1]))], fresh_encoder(
        carry, SHAPE, 1).state_dict()[next(iter(starts[1]))])
    encoder_bytes = sum(t.numel() * t.element_size() for t in first_end.values())
    assert carried_bytes(kept) == carried_bytes(state) + encoder_bytes


def _no_past_data(state: dict, samples_per_task: int, where: str) -> None:
    """No image tensor anywhere; at a task boundary no tensor or list as long as a task."""
    boundary = state.get("cursor", 0) == 0
    assert "measurement" not in state and "probes" not in state, where
    assert "grids" not in state.get("history", {}), where
    for path, t in _all_tensors(state):
        assert not (t.dim() >= 3 and tuple(t.shape[-3:]) == SHAPE), f"{where}: image at {path}"
        if boundary and not path.startswith(("models/", "optim/")):
            assert t.numel() < samples_per_task, f"{where}: per-sample tensor at {path}"

    def lists(value, path=""):
        if isinstance(value, list):
            yield path, value
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                yield from lists(v, f"{path}/{i}")
        if isinstance(value, dict):
            for k, v in value.items():
                yield from lists(v, f"{path}/{k}")

    if boundary:
        for path, items in lists({k: v for k, v in state.items() if k != "config"}):
            assert len(items) < samples_per_task, f"{where}: per-sample list at {path}"


def test_no_image_or_per_sample_record_in_any_checkpoint(tiny, tmp_path):
    cfg = tiny("ray.checkpoint_every_epochs=1", "autoencoder.decoder_epochs=2", "classifier.epochs=2")
    dirs: list[Path] = []

    def save(state, metrics):
        if state is not None:
            dirs.append(save_state(state, tmp_path / f"ckpt{len(dirs):02d}").parent)

    _run(cfg, tmp_path / "run", save=save)
    assert len(dirs) > 6
    for d in dirs:
        raw = torch.load(d / STATE_FILE, weights_only=True)
        _no_past_data(raw, 96, str(d))
        assert (d / "measurement.pt").is_file()  # kept apart, for the report only
    grids = load_state(dirs[-1])["measurement"]["grids"]
    assert grids and grids[-1]["original"]  # the report still gets its originals


def test_learn_versions_hold_no_image_or_per_sample_record(tmp_path, capsys):
    from jobs.learn import main
    from learntools import learn_config, task_files

    files = task_files(tmp_path / "data")
    config = learn_config(files, tmp_path, "stream.val_fraction=0.1")
    for k in range(2):
        assert main(["--state", str(tmp_path / "state"), "--data", str(files[f"t{k}"]),
                     "--test", str(files["test"]),
                     *(["--config", str(config)] if k == 0 else [])]) == 0
    ledger = json.loads((tmp_path / "state" / "versions" / "v0002" / "ledger.json").read_text())
    for version in sorted((tmp_path / "state" / "versions").iterdir()):
        raw = torch.load(version / STATE_FILE, weights_only=True)
        _no_past_data(raw, 48, str(version))
        assert not (version / "measurement.pt").exists()
        assert "encoder" not in raw["models"]
        # The version's ledger gives the same memory figure as jobs.train's report.
        task = ledger["tasks"][int(version.name[1:]) - 1]
        assert task["metrics"]["memory_bytes"] == carried_bytes(raw) > 0
        assert task["metrics"]["classifier_bytes"] == classifier_bytes(raw)


def _labelled(n_per_class: int, classes: list[int]) -> ImageSet:
    labels = np.repeat(classes, n_per_class)
    images = torch.arange(len(labels)).view(-1, 1, 1, 1).to(torch.uint8)
    return ImageSet(images, torch.from_numpy(labels), "synthetic")


def test_validation_split_is_stratified_disjoint_and_seeded(tiny):
    data = _labelled(40, [0, 1])
    cfg = tiny("stream.val_fraction=0.2")
    rows = task_rows(data, [0, 1], cfg)
    assert not set(rows.train) & set(rows.val)  # disjoint
    assert len(rows.train) + len(rows.val) == 80
    labels = data.labels.numpy()
    assert [int((labels[rows.val] == c).sum()) for c in (0, 1)] == [8, 8]  # stratified
    again = task_rows(data, [0, 1], tiny("stream.val_fraction=0.2"))
    assert np.array_equal(again.val, rows.val) and np.array_equal(again.train, rows.train)
    other = task_rows(data, [0, 1], tiny("stream.val_fraction=0.2", "seed=3"))
    assert not np.array_equal(other.val, rows.val)  # drawn from the seed
    assert not np.array_equal(rows.val, np.concatenate([np.arange(8), np.arange(40, 48)]))
    # BinPlay's samples_per_class cuts after the split: its validation rows are ER's.
    capped = task_rows(data, [0, 1], tiny("stream.val_fraction=0.2",
                                          "autoencoder.samples_per_class=10"))
    assert np.array_equal(capped.val, rows.val) and len(capped.train) == 20
    assert [validation_count(n, 0.1) for n in (0, 1, 2, 5, 100)] == [0, 0, 1, 1, 10]


def test_validation_images_are_never_trained_on(tiny, tmp_path, classifier_calls):
    cfg = tiny("stream.val_fraction=0.25", "autoencoder.decoder_epochs=1", "classifier.epochs=1")
    manifest = build_stream(cfg, tmp_path / "stream")
    for task in manifest.tasks:
        _, train_x, _ = read_shards(task.train)
        _, val_x, val_y = read_shards(task.val)
        assert len(val_y) == 2 * 12 and len(train_x) == 2 * 36
        seen = {bytes(x.numpy()) for x in train_x}
        assert not any(bytes(x.numpy()) in seen for x in val_x)
    state = _run(cfg, tmp_path)
    trained = torch.cat([c["inputs"] for c in classifier_calls])
    for task in manifest.tasks:
        _, val_x, _ = read_shards(task.val)
        val = val_x.float() / 255.0
        assert not any(bool((trained - v).abs().amax(dim=(1, 2, 3)).eq(0).any()) for v in val)
    assert len(state["history"]["val_accuracy"]) == 2 and None not in state["history"]["val_accuracy"][1]


def test_search_chooses_on_validation_accuracy(tiny, tmp_path):
    from binplay.ray_train.worker import tune_metrics
    from binplay.tune.config import METRIC, load_search
    from binplay.tune.trainable import _report_from_file

    assert METRIC == "val_average_accuracy"
    report = {"accuracy_matrix": [[90.0], [80.0, 70.0]], "val_accuracy_matrix": [[91.0], [60.0, 50.0]]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    final = _report_from_file(str(tmp_path / "report.json"))
    assert final[METRIC] == 55.0 and final["average_accuracy"] == 75.0
    last = {"tasks_done": 0, "average_accuracy": 0.0, "val_average_accuracy": 0.0}
    mid = tune_metrics({"task": 0, "average_accuracy": 90.0, "val_average_accuracy": 91.0}, last)
    assert tune_metrics({"task": 1, "cursor": 3}, last)[METRIC] == mid[METRIC] == 91.0
    base = tmp_path / "base.yaml"
    base.write_text(json.dumps(tiny().model_dump(mode="json")))
    search = tmp_path / "search.yaml"
    search.write_text(json.dumps({"name": "s", "base": str(base),
                                  "space": {"classifier.lr": {"grid": [0.001]}}}))
    with pytest.raises(ConfigError, match="val_fraction: a search chooses on validation"):
        load_search(search)


def test_dgr_replays_the_generator_from_before_the_task(tiny, tmp_path, monkeypatch):
    from binplay.strategies import dgr

    drawn: list[torch.nn.Module] = []
    real = dgr.vae.sample

    def spy(vae, n, generator, device="cpu"):
        drawn.append(vae)
        return real(vae, n, generator, device)

    monkeypatch.setattr(dgr.vae, "sample", spy)
    captured = {}
    real_begin = dgr.GenerativeReplayStrategy.begin_task

    def begin(self, run, fresh):
        real_begin(self, run, fresh)
        captured[run.t] = (run.models["generator"], run.frozen.get("generator"),
                           {k: v.clone() for k, v in run.models["generator"].state_dict().items()})

    monkeypatch.setattr(dgr.GenerativeReplayStrategy, "begin_task", begin)
    _run(tiny("strategy=dgr", "dgr.memory_mb=0.15", "dgr.epochs=1", "classifier.epochs=1"), tmp_path)
    live, frozen, before = captured[1]
    assert drawn and all(m is frozen for m in drawn)  # both phases: the pre-task scholar
    assert all(m is not live for m in drawn)
    for key, value in frozen.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_baseline_refuses_binplay_switches_and_compare_drops_them(tiny):
    with pytest.raises(ConfigError, match="classifier.ledger_labels: applies to strategy binplay only"):
        load_config("configs/smoke.yaml", ["strategy=er"])
    from binplay.compare import run_config

    base = load_config("configs/split_mnist.yaml").model_dump(mode="json")
    er = run_config(base, "er", 0, None, Path("runs"))
    assert er.classifier.distill_current == 0.0 and not er.classifier.mix_real_inputs
    assert run_config(base, "binplay", 0, None, Path("runs")).classifier.distill_current == 1.0


def test_standard_er_replays_a_batch_the_size_of_the_current_one(tiny, tmp_path, classifier_calls):
    from binplay.strategies.er import ReplayBufferStrategy

    cfg = tiny("strategy=er", "er.memory_mb=0.02", "er.batch_size=16", "er.epochs=2")
    er = ReplayBufferStrategy(cfg)
    assert er.classifier_config().batch_size == 16 and er.classifier_config().epochs == 2
    assert [er.past_per_step(t) for t in range(4)] == [0, 16, 16, 16]
    balanced = ReplayBufferStrategy(tiny("strategy=er", "er.replay_batch=balanced"))
    assert [balanced.past_per_step(t) for t in range(3)] == [0, 32, 64]
    _run(cfg, tmp_path)
    assert len(classifier_calls) == 4
    assert [c["n_past"] for c in classifier_calls] == [0, 0, 16, 16]
    assert all(c["batch"] == 16 for c in classifier_calls)


def test_reservoir_buffer_is_a_uniform_sample_of_the_stream():
    from binplay.strategies.buffer import reservoir_buffer

    counts = torch.zeros(4)
    for seed in range(200):
        gen = torch.Generator().manual_seed(seed)
        images, labels = torch.zeros(0, 1, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.uint8)
        seen = 0
        for c in range(4):  # four tasks of 50 samples of one class each
            new_x = torch.full((50, 1, 1, 1), c, dtype=torch.uint8)
            new_y = torch.full((50,), c, dtype=torch.uint8)
            images, labels = reservoir_buffer(images, labels, seen, new_x, new_y, 20, gen)
            seen += 50
        assert len(labels) == 20 and torch.equal(images.view(-1), labels)
        counts += torch.bincount(labels.long(), minlength=4)
    share = counts / counts.sum()
    assert bool((share - 0.25).abs().max() < 0.05), share  # each class a quarter, not the last


@pytest.mark.slow
def test_dgr_and_er_beat_finetuning_on_a_real_stream(tmp_path):
    from conftest import small_mnist

    # Two tasks: on three tasks of 300 images a class DGR drops the first task to 0-6% by
    # the third, however long its VAE trains (40 and 120 epochs measured; issue 25's note).
    acc = {}
    for strategy, sets in {"finetune": [], "er": ["er.memory_mb=0.2"],
                           "dgr": ["dgr.memory_mb=1", "dgr.epochs=40"]}.items():
        cfg = small_mnist(tmp_path, "[[0,1],[2,3]]", f"strategy={strategy}", f"name={strategy}", *sets)
        acc[strategy] = json.loads(Path(train(cfg)).read_text())["average_accuracy"]
    print(acc)  # measured on 3 tasks' first two: finetune ~48, ER 96.5, DGR 89-90
    assert acc["finetune"] < 55.0  # the last task only: half the stream
    assert acc["er"] > acc["finetune"] + 35.0
    assert acc["dgr"] > acc["finetune"] + 25.0


def test_a_state_of_the_previous_format_loads_and_a_learn_extends_it(tmp_path, capsys):
    """Version-1 states (probes and grids inside, the encoder carried, configs without the
    fields of issue 25) are migrated on load: they keep what they did (encoder_carry)."""
    from binplay.inference import SavedRun
    from binplay.models.build import autoencoder_for
    from jobs.learn import main
    from learntools import learn_config, task_files

    files = task_files(tmp_path / "data")
    config = learn_config(files, tmp_path)
    state_dir = tmp_path / "state"
    assert main(["--state", str(state_dir), "--data", str(files["t0"]), "--config", str(config)]) == 0
    path = state_dir / "versions" / "v0001" / STATE_FILE
    old = torch.load(path, weights_only=True)
    old["version"] = 1
    old["models"]["encoder"] = autoencoder_for(load_config(str(config)), SHAPE)[0].state_dict()
    old["probes"] = {0: {"code_index": [1, 2], "stream_index": [2, 1]}}
    old["history"]["grids"] = []
    for section, key in (("autoencoder", "encoder_carry"), ("stream", "val_fraction"),
                         ("er", "replay_batch"), ("er", "sampling")):
        del old["config"][section][key]
    del old["config"]["derpp"]
    torch.save(old, path)
    import hashlib

    manifest = json.loads((path.parent / "manifest.json").read_text())  # its digest, as written
    manifest["files"][STATE_FILE] = {"size": path.stat().st_size,
                                     "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (path.parent / "manifest.json").write_text(json.dumps(manifest))
    migrated = load_state(path)
    assert migrated["version"] == 2 and migrated["config"]["autoencoder"]["encoder_carry"] is True
    assert migrated["measurement"]["probes"] and "probes" not in migrated
    run = SavedRun(path)
    assert run.cfg.autoencoder.encoder_carry and run.cfg.stream.val_fraction == 0.0
    assert main(["--state", str(state_dir), "--data", str(files["t1"])]) == 0, capsys.readouterr().err
    extended = torch.load(state_dir / "versions" / "v0002" / STATE_FILE, weights_only=True)
    assert "encoder" in extended["models"]  # it carried its encoder, and still does
    assert extended["config"]["autoencoder"]["encoder_carry"] is True
