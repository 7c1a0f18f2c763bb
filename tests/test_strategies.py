"""Baselines in the same harness: fine-tuning forgets, joint is the upper bound, ER and DGR
stay within their byte budgets."""

from __future__ import annotations

import json

import pytest
import torch
from test_engine import _run

from binplay.compare import size_for_budget
from binplay.launch import train
from binplay.memory import binplay_carried_bytes
from binplay.models.build import MB, binplay_decoder_bytes
from binplay.strategies.buffer import balanced_buffer, image_bytes
from conftest import require


def test_balanced_buffer_stays_within_capacity_and_holds_every_class():
    gen = torch.Generator().manual_seed(0)
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2)
    buf_x, buf_y = images[:0], torch.zeros(0, dtype=torch.int64)
    for task in range(3):  # classes 2t, 2t+1; 20 samples each
        labels = torch.tensor([2 * task] * 20 + [2 * task + 1] * 20)
        before = {c: buf_x[buf_y == c].clone() for c in buf_y.unique().tolist()}
        buf_x, buf_y = balanced_buffer(buf_x, buf_y, images, labels, capacity=17, gen=gen)
        assert len(buf_y) == min(17, 40 * (task + 1))
        counts = torch.bincount(buf_y).tolist()
        assert set(buf_y.tolist()) == set(range(2 * task + 2))  # every class seen is held
        assert max(counts) - min(counts) <= 1  # balanced
        for c, held in before.items():  # an old class keeps a prefix of what it held
            assert torch.equal(buf_x[buf_y == c], held[: int((buf_y == c).sum())])


def test_finetune_forgets_and_joint_is_the_upper_bound(tiny, tmp_path):
    results = {}
    for strategy in ("finetune", "joint"):
        state = _run(tiny(f"strategy={strategy}"), tmp_path / strategy)
        results[strategy] = state["history"]["accuracy"][-1]
    finetune, joint = results["finetune"], results["joint"]
    print(f"after task 2: finetune {finetune}, joint {joint}")  # measured: [46.9, 100], [100, 100]
    assert finetune[0] < joint[0] - 40.0  # fine-tuning forgets the first task
    assert sum(joint) / 2 > sum(finetune) / 2 + 20.0
    assert min(joint) > 90.0


def test_er_buffer_within_budget_and_every_class(tiny, tmp_path):
    budget_mb = 0.02  # 20,971 bytes: 26 images of 28x28 (+ labels)
    state = _run(tiny("strategy=er", f"er.memory_mb={budget_mb}"), tmp_path / "er")
    buffer = state["buffer"]
    held = len(buffer["labels"]) * image_bytes((1, 28, 28))
    assert held <= budget_mb * MB
    assert len(buffer["labels"]) == int(budget_mb * MB) // image_bytes((1, 28, 28))
    assert sorted(buffer["labels"].unique().tolist()) == [0, 1, 2, 3]
    assert buffer["images"].dtype == torch.uint8


def test_er_auto_budget_is_binplay_decoder(tiny, tmp_path):
    cfg = tiny("strategy=er")
    state = _run(cfg, tmp_path / "er")
    capacity = binplay_decoder_bytes(cfg, (1, 28, 28)) // image_bytes((1, 28, 28))
    assert len(state["buffer"]["labels"]) == min(capacity, 192)  # the tiny stream has 192


def test_dgr_generator_within_budget(tiny, tmp_path):
    cfg = tiny("strategy=dgr", "dgr.memory_mb=0.3", "dgr.epochs=1")
    path = train(cfg)
    report = json.loads(open(path).read())
    assert report["memory_bytes"] <= 0.3 * MB
    assert report["memory_kind"].startswith("VAE, encoder and decoder")
    assert not report["stores_past_data"]
    state = _run(cfg, tmp_path / "dgr")
    assert "generator" in state["models"] and len(state["history"]["accuracy"]) == 2


def test_size_for_budget_is_the_widest_compact_decoder_that_fits(tiny):
    cfg = tiny("stream.image_shape=[1,28,28]")
    for mb in (0.1, 0.5, 2.0):
        field, width = size_for_budget(cfg, int(mb * MB))
        fits = binplay_decoder_bytes(cfg.model_copy(update={"autoencoder": cfg.autoencoder.model_copy(
            update={"width": width})}), (1, 28, 28))
        wider = binplay_decoder_bytes(cfg.model_copy(update={"autoencoder": cfg.autoencoder.model_copy(
            update={"width": width + 1})}), (1, 28, 28))
        assert field == "width" and fits <= mb * MB < wider


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["binplay", "finetune", "joint", "er", "er_ace", "derpp", "dgr"])
def test_each_strategy_completes_the_smoke_stream(strategy, tmp_path):
    import yaml

    from binplay.config import config_from_dict, for_strategy
    from binplay.data.sources import DEBIAN_FMNIST
    from conftest import MIRROR

    if not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file():
        require(MIRROR / "FashionMNIST" / "raw", "Fashion-MNIST")
    tree = yaml.safe_load(open("configs/smoke.yaml"))
    tree = for_strategy(tree, strategy)  # as jobs.compare runs a baseline of a BinPlay preset
    cfg = config_from_dict(tree, [f"strategy={strategy}", "ray.num_workers=0",
                                  f"run.storage_path={tmp_path}"]
                           + ["dgr.epochs=3"] * (strategy == "dgr"))
    report = json.loads(open(train(cfg)).read())
    assert len(report["accuracy_matrix"]) == 3
    if strategy == "finetune":
        assert report["average_accuracy"] < 40.0  # forgets the first two tasks
    if strategy in ("joint", "er", "derpp"):
        assert report["average_accuracy"] > 75.0
    if strategy == "er_ace":  # measured 61.0: with 8 epochs a task it starves the newest task
        assert report["average_accuracy"] > 50.0  # (fine-tuning: 33)
    if strategy in ("binplay", "dgr"):
        assert report["memory_bytes"] <= binplay_carried_bytes(cfg, (1, 28, 28))
        assert not report["stores_past_data"]


def test_compare_reads_finished_runs_and_plots_memory_sizes(tiny, tmp_path, capsys):
    from binplay.compare import compare

    base = tiny("stream.image_shape=[1,28,28]", "autoencoder.decoder_epochs=1",
                "classifier.epochs=1", "stream.val_fraction=0.2").model_dump(mode="json")
    out = tmp_path / "cmp"
    first = compare(base, ["er", "finetune"], [0], [0.05, None], out, log=lambda line: None)
    assert [r["name"] for r in first["runs"]] == ["er-0.05mb-s0", "finetune-0.05mb-s0", "er-auto-s0"]
    assert (out / "accuracy_vs_memory.png").stat().st_size > 1000
    assert (out / "accuracy_vs_time.png").stat().st_size > 1000
    text = (out / "compare.md").read_text()
    tables = text.split("## Time to reach each accuracy")
    assert tables[0].count("| er ") == 4  # 2 sizes x (Table 2, Table 3)
    assert tables[1].count("| er |") >= 1 and "| finetune |" not in tables[1]
    lines: list[str] = []
    again = compare(base, ["er", "finetune"], [0], [0.05, None], out, log=lines.append)
    assert all("finished earlier" in line for line in lines) and len(lines) == 3
    assert again["summary"] == first["summary"]


def test_time_frontier_keeps_the_cheapest_setting_to_each_validation_accuracy():
    from binplay.compare import time_frontier

    def row(strategy: str, setting: str, seconds: float, val: float) -> dict:
        return {"strategy": strategy, "memory_setting": setting, "seconds_per_run": seconds,
                "val_mean": val, "mean": val - 1}

    summary = [row("binplay", "1 MB", 150, 77.0), row("binplay", "0.5 MB", 200, 80.0),
               row("binplay", "0.25 MB", 100, 78.0), row("binplay", "2 MB", 210, 80.0),
               row("er", "1 MB", 30, 70.0), row("finetune", "auto", 5, 20.0)]
    frontier = [(s["strategy"], s["memory_setting"]) for s in time_frontier(summary)]
    # 1 MB costs more than 0.25 MB for less; 2 MB costs more than 0.5 MB for no more
    assert frontier == [("binplay", "0.25 MB"), ("binplay", "0.5 MB"), ("er", "1 MB")]


def test_compare_runs_a_strategy_from_its_own_config_and_summarises_without_training(
        tiny, tmp_path):
    """A tuned baseline's own config (configs/baselines/) is what its runs read; --no-train
    reads what finished and names the rest; another stream is refused before any run."""
    from binplay.compare import compare
    from binplay.config import ConfigError

    base = tiny("stream.image_shape=[1,28,28]", "classifier.epochs=1").model_dump(mode="json")
    tuned = tiny("stream.image_shape=[1,28,28]", "strategy=er", "er.epochs=2",
                 "er.replay_batch=balanced").model_dump(mode="json")
    out = tmp_path / "cmp"
    first = compare(base, ["er", "finetune"], [0], [0.05], out, log=lambda line: None,
                    own={"er": tuned})
    reports = {p.parent.name: json.loads(p.read_text()) for p in out.glob("runs/*/report.json")}
    assert reports["er-0.05mb-s0"]["config"]["er"]["epochs"] == 2
    assert reports["er-0.05mb-s0"]["config"]["er"]["replay_batch"] == "balanced"
    assert reports["finetune-0.05mb-s0"]["config"]["classifier"]["epochs"] == 1

    lines: list[str] = []
    summary = compare(base, ["er", "finetune"], [0, 1], [0.05], out, log=lines.append,
                      own={"er": tuned}, train_missing=False)
    assert sorted(p.parent.name for p in out.glob("runs/*/report.json")) == sorted(reports)
    assert lines[-1] == "compare: not finished, left out: er-0.05mb-s1, finetune-0.05mb-s1"
    assert summary["summary"] == first["summary"]
    with pytest.raises(ConfigError, match="no finished run"):
        compare(base, ["er"], [0], [0.5], tmp_path / "empty", log=lambda line: None,
                train_missing=False)
    assert not (tmp_path / "empty").exists()  # a refused summary leaves nothing behind

    other = tiny("stream.image_shape=[1,28,28]", "stream.tasks=[[0,1]]").model_dump(mode="json")
    with pytest.raises(ConfigError, match=r"stream\.tasks differs"):
        compare(base, ["er"], [0], [0.05], tmp_path / "other", own={"er": other})
    wider = tiny("stream.image_shape=[1,28,28]", "autoencoder.width=16").model_dump(mode="json")
    with pytest.raises(ConfigError, match="other bytes"):
        compare(base, ["er"], [0], [0.05], tmp_path / "wider", own={"er": wider})
    assert not (tmp_path / "other").exists() and not (tmp_path / "wider").exists()


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_decoder_lr_schedule_sets_each_decoder_epochs_lr(tiny, tmp_path, monkeypatch, schedule):
    """BEYOND-PAPER `autoencoder.decoder_lr_schedule`: cosine falls from decoder_lr at each
    task's first decoder epoch; constant (the paper) keeps decoder_lr."""
    import math

    from binplay.strategies import binplay as strategy

    seen: list[float] = []
    original = strategy.ae.decoder_epoch

    def spy(decoder, *, opt, **kw):
        seen.append(opt.param_groups[0]["lr"])
        return original(decoder, opt=opt, **kw)

    monkeypatch.setattr(strategy.ae, "decoder_epoch", spy)
    _run(tiny("autoencoder.decoder_epochs=4", "autoencoder.decoder_lr=0.002", "classifier.epochs=1",
              f"autoencoder.decoder_lr_schedule={schedule}"), tmp_path)
    cosine = [0.002 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    expected = cosine if schedule == "cosine" else [0.002] * 4
    assert seen == pytest.approx(expected * 2)  # both tasks start again at decoder_lr


def test_feature_loss_reads_the_frozen_pre_task_classifier_trunk(tiny, tmp_path, monkeypatch):
    """BEYOND-PAPER `autoencoder.feature_loss_weight`: the decoder's loss adds the distance of
    the classifier trunk's features, taken from the classifier as it stands before each
    task's classifier phase (task 2: the one task 1 trained), frozen; 0 passes none."""
    from binplay.strategies import binplay as strategy

    calls: list[dict] = []
    original = strategy.ae.decoder_epoch

    def spy(decoder, **kw):
        out = original(decoder, **kw)
        trunk = kw["features"]
        calls.append({"loss": out["loss"], "weight": kw["feature_weight"],
                      "weights": None if trunk is None else
                      [p.detach().clone() for p in trunk.parameters()],
                      "frozen": trunk is None or not any(p.requires_grad for p in trunk.parameters())})
        return out

    monkeypatch.setattr(strategy.ae, "decoder_epoch", spy)
    _run(tiny("autoencoder.decoder_epochs=2", "classifier.epochs=1", "name=pixels"), tmp_path)
    pixels = calls[:]
    calls.clear()
    _run(tiny("autoencoder.decoder_epochs=2", "classifier.epochs=1", "name=features",
              "autoencoder.feature_loss_weight=1.0"), tmp_path / "f")
    assert all(c["weights"] is None for c in pixels)
    assert all(c["weight"] == 1.0 and c["frozen"] for c in calls) and len(calls) == 4
    task1, task2 = calls[0]["weights"], calls[2]["weights"]
    assert all(torch.equal(a, b) for a, b in zip(task1, calls[1]["weights"], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(task1, task2, strict=True))  # trained
    assert calls[0]["loss"] > pixels[0]["loss"]  # the same first epoch, plus the feature term


def test_mix_real_inputs_gives_the_classifier_reconstructions_and_real_images(tiny, tmp_path,
                                                                              classifier_calls):
    """The split-MNIST preset's switch: each current image twice, decoded and real."""
    cfg = tiny("classifier.mix_real_inputs=true", "classifier.epochs=1")
    _run(cfg, tmp_path)
    inputs, labels = classifier_calls[0]["inputs"], classifier_calls[0]["labels"]  # task 1
    assert len(inputs) == 2 * 96 and torch.equal(labels[:96], labels[96:])
    on_grid = lambda x: torch.allclose(x * 255, (x * 255).round(), atol=1e-4)  # noqa: E731
    assert on_grid(inputs[96:]) and not on_grid(inputs[:96])  # real pixels vs decoded ones


def test_compare_runs_every_registered_strategy(tiny, tmp_path, capsys):
    """Issue 27's acceptance 4 on a tiny stream: one preset, every strategy, the settings
    each does not read dropped for it (config.for_strategy), one compare.md."""
    import yaml

    from binplay.strategies import STRATEGIES
    from jobs.compare import main

    # A BinPlay preset with a BinPlay-only switch and DER++'s and DGR's settings.
    cfg = tiny("autoencoder.decoder_epochs=2", "classifier.epochs=1",
               "classifier.distill_current=0.5")
    tree = cfg.model_dump(mode="json")
    tree["derpp"]["alpha"] = 0.2
    config = tmp_path / "preset.yaml"
    config.write_text(yaml.safe_dump(tree))
    out = tmp_path / "cmp"
    assert main(["--config", str(config), "--strategies", ",".join(STRATEGIES), "--seeds", "0",
                 "--output", str(out), "--set", "dgr.epochs=1"]) == 0
    summary = {row["strategy"]: row for row in
               json.loads((out / "compare.json").read_text())["summary"]}
    assert set(summary) == set(STRATEGIES)
    configs = {json.loads(p.read_text())["config"]["strategy"]: json.loads(p.read_text())["config"]
               for p in out.glob("runs/*/report.json")}
    assert set(configs) == set(STRATEGIES)
    for name, run in configs.items():
        assert (run["dgr"]["epochs"] == 1) == (name == "dgr"), name
        assert (run["derpp"]["alpha"] == 0.2) == (name == "derpp"), name
        assert (run["classifier"]["distill_current"] == 0.5) == (name == "binplay"), name


@pytest.mark.parametrize("compute", ["fp32", "bf16"])
def test_decoder_compute_runs_the_decoder_phase_forward_in_bf16_only_when_set(
        tiny, tmp_path, monkeypatch, compute):
    """BEYOND-PAPER `autoencoder.decoder_compute: bf16`: the trained decoder's forward in the
    decoder phase runs under bf16 autocast (its transposed convs output bf16), its weights and
    Adam stay fp32, and the phase still learns; fp32 (the paper) runs no bf16 at all."""
    from binplay.strategies import binplay as strategy

    seen: list[dict] = []
    original = strategy.ae.decoder_epoch

    def spy(decoder, **kw):
        dtypes: set[torch.dtype] = set()
        hooks = [m.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
                 for m in decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
        out = original(decoder, **kw)
        for hook in hooks:
            hook.remove()
        seen.append({"loss": out["loss"], "dtypes": dtypes,
                     "weights": {p.dtype for p in decoder.parameters()}})
        return out

    monkeypatch.setattr(strategy.ae, "decoder_epoch", spy)
    _run(tiny("autoencoder.decoder_epochs=6", "classifier.epochs=1",
              f"autoencoder.decoder_compute={compute}"), tmp_path)
    want = torch.bfloat16 if compute == "bf16" else torch.float32
    assert all(s["dtypes"] == {want} and s["weights"] == {torch.float32} for s in seen)
    assert len(seen) == 12 and seen[5]["loss"] < 0.8 * seen[0]["loss"]  # task 1 learns
