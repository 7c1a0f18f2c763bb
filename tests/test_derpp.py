"""DER++ and ER-ACE, each one file in strategies/: their buffers, losses and memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_engine import _run

from binplay.memory import MB, carried_bytes
from binplay.strategies.derpp import DerppStrategy


def test_derpp_buffer_holds_images_labels_and_the_logits_of_their_time(tiny, tmp_path, monkeypatch):
    logits_at_end: dict[int, torch.Tensor] = {}
    real = DerppStrategy.end_task

    def record(self, run, *args):
        from binplay.data.shards import read_shards

        _, images, _ = read_shards(run.shards.train)
        logits_at_end[run.t] = self._logits(run, images)
        real(self, run)

    monkeypatch.setattr(DerppStrategy, "end_task", record)
    cfg = tiny("strategy=derpp", "derpp.memory_mb=0.03", "classifier.epochs=2")
    state = _run(cfg, tmp_path)
    buffer = state["buffer"]
    per_sample = 784 + 1 + 4 * 4  # pixels, a uint8 label, 4 fp32 logits
    assert len(buffer["labels"]) == int(0.03 * MB) // per_sample
    assert buffer["images"].dtype == torch.uint8 and buffer["labels"].dtype == torch.uint8
    assert buffer["logits"].shape == (len(buffer["labels"]), 4)
    assert carried_bytes(state) == len(buffer["labels"]) * per_sample
    # Each sample's logits are those the classifier gave it at the end of its own task.
    first = buffer["labels"] < 2
    assert first.any() and (~first).any()
    from binplay.data.shards import read_shards
    from binplay.data.stream import build_stream

    manifest = build_stream(cfg, tmp_path / "stream")
    for t, task in enumerate(manifest.tasks):
        _, images, _ = read_shards(task.train)
        rows = [int((images == x).flatten(1).all(1).nonzero()[0]) for x in buffer["images"][
            (buffer["labels"] >= 2 * t) & (buffer["labels"] < 2 * t + 2)]]
        held = buffer["logits"][(buffer["labels"] >= 2 * t) & (buffer["labels"] < 2 * t + 2)]
        assert torch.allclose(held, logits_at_end[t][rows])


def test_derpp_loss_adds_logit_matching_and_buffer_labels(tiny, tmp_path):
    metrics: list[dict] = []  # each epoch's terms, read from the mid-task checkpoints

    def save(st, m):
        if st is not None and st.get("phase_metrics"):
            metrics.extend(st["phase_metrics"])

    _run(tiny("strategy=derpp", "derpp.memory_mb=0.03", "classifier.epochs=2", "derpp.alpha=0.3",
              "derpp.beta=0.7", "ray.checkpoint_every_epochs=1"), tmp_path / "b", save=save)
    late = [m for m in metrics if m["phase"] == "classifier" and "logits_mse" in m]
    assert late, "task 2 trains with the DER++ terms"
    for m in late:
        assert m["loss"] == pytest.approx(m["current"] + 0.3 * m["logits_mse"] + 0.7 * m["buffer_ce"],
                                          rel=1e-4)


def test_derpp_section_counts_for_derpp_only(tiny):
    assert tiny("strategy=derpp", "derpp.alpha=0.9").fingerprint() != \
        tiny("strategy=derpp").fingerprint()
    assert tiny("strategy=derpp").fingerprint() != tiny().fingerprint()


@pytest.mark.slow
def test_derpp_against_er_at_the_same_bytes(tmp_path):
    from binplay.launch import train
    from conftest import small_mnist

    acc = {}
    for strategy in ("er", "derpp"):
        cfg = small_mnist(tmp_path, "[[0,1],[2,3],[4,5]]", f"strategy={strategy}", f"name={strategy}",
                          f"{strategy}.memory_mb=0.05")
        report = json.loads(Path(train(cfg)).read_text())
        assert report["memory_bytes"] <= 0.05 * MB
        acc[strategy] = report["average_accuracy"]
    print(acc)
    # Measured (seeds 0, 1): DER++ 91.67, 89.17; ER 90.50, 91.17; fine-tuning ~33. DER++ does
    # not beat ER on this small stream (issue 27's note); it must learn as a rehearsal does.
    assert acc["derpp"] > 75.0 and acc["derpp"] > acc["er"] - 5.0
