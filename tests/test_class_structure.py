"""Class-structured streams (beyond the paper; docs/RESULTS.md): each class of a task owns an
index sub-range kept in the ledger, the codes carry class bits, a sample takes a code of its
own class, and a regenerated index knows its class from the ledger alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_engine import _run

from binplay.assignment import GroupedCodeBook, greedy_reference
from binplay.codes import stream_codes
from binplay.config import ConfigError
from binplay.data.shards import read_shards
from binplay.data.stream import build_stream
from binplay.ledger import Ledger, TaskRecord

CLASSY = ("stream.order=class", "codes.class_bits=4", "codes.task_bits=0")


def test_class_ordered_stream_records_class_ranges(tiny, tmp_path):
    manifest = build_stream(tiny(*CLASSY), tmp_path / "stream")
    for task in manifest.tasks:
        index, _, labels = read_shards(task.train)
        assert [r[0] for r in task.class_ranges] == task.classes
        for cls, first, last in task.class_ranges:  # each range holds exactly its class
            inside = (index >= first) & (index <= last)
            assert set(labels[inside].tolist()) == {cls} and int(inside.sum()) == 48


def test_ledger_class_ranges_reproduce_the_class_of_every_index(tiny, tmp_path):
    state = _run(tiny(*CLASSY), tmp_path / "run")
    ledger = Ledger.from_dict(state["ledger"])
    manifest = build_stream(tiny(*CLASSY), tmp_path / "stream")
    index = torch.cat([read_shards(t.train)[0] for t in manifest.tasks])
    labels = torch.cat([read_shards(t.train)[2] for t in manifest.tasks])
    assert torch.equal(ledger.class_of(index), labels)  # from a few integers per class
    assert sum(len(t["class_ranges"]) for t in state["ledger"]["tasks"]) == 4


def test_ledger_refuses_ranges_that_do_not_tile_the_task():
    ledger = Ledger()
    with pytest.raises(ValueError, match="class ranges must tile"):
        ledger.add(TaskRecord(0, 1, 10, (0, 1), ((0, 1, 4), (1, 6, 10))))
    with pytest.raises(ValueError, match="no class ranges"):
        Ledger([TaskRecord(0, 1, 10, (0, 1))]).class_of(torch.tensor([3]))


def test_codes_carry_one_hot_class_bits(tiny):
    cfg = tiny(*CLASSY)
    codes = stream_codes(torch.tensor([1, 2, 3]), torch.zeros(3, dtype=torch.long), cfg.codes,
                         torch.tensor([0, 3, 3]))
    assert codes.shape == (3, cfg.codes.latent_dim)
    assert codes[:, :4].tolist() == [[1, -1, -1, -1], [-1, -1, -1, 1], [-1, -1, -1, 1]]
    with pytest.raises(ValueError, match="class of each index is needed"):
        stream_codes(torch.tensor([1]), torch.zeros(1, dtype=torch.long), cfg.codes)


def test_grouped_assignment_is_alg1_within_each_class():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 2, (40, 16), generator=gen).float() * 2 - 1
    groups = torch.tensor([0] * 25 + [1] * 15)
    z = torch.randn(30, 16, generator=gen)
    z_groups = torch.tensor([0] * 20 + [1] * 10)[torch.randperm(30, generator=gen)]
    chosen = GroupedCodeBook(codes, groups, candidates=2).assign(z, z_groups)
    assert torch.equal(groups[chosen], z_groups)  # every sample inside its own class
    assert len(set(chosen.tolist())) == 30  # globally unique
    for g in (0, 1):  # and within a class exactly the literal Alg. 1
        rows = (groups == g).nonzero().squeeze(1)
        ref = greedy_reference(z[z_groups == g], codes[rows])
        assert rows[ref].tolist() == chosen[z_groups == g].tolist()


def test_frozen_mapping_keeps_every_sample_in_its_class(tiny, tmp_path):
    from binplay.context import TrainContext
    from binplay.engine import run_stream

    saved = []
    cfg = tiny(*CLASSY, "ray.checkpoint_every_epochs=100")
    manifest = build_stream(cfg, tmp_path / "stream")
    run_stream(cfg, manifest, TrainContext(log=lambda line: None,
                                           save=lambda s, m: saved.append(
                                               [x.clone() for x in s["mapping"]]) if s and "mapping" in s
                                           else None))
    index0, _, labels0 = read_shards(manifest.tasks[0].train)
    code_index = saved[0][0]  # task 1: stream index of the code each row (index order) took
    ranges = manifest.tasks[0].class_ranges
    code_class = np.select([(code_index >= f).numpy() & (code_index <= last).numpy()
                            for _, f, last in ranges], [c for c, _, _ in ranges])
    assert code_class.tolist() == labels0.tolist()


def test_ledger_labels_train_past_samples_toward_their_range_class(tiny, tmp_path):
    state = _run(tiny(*CLASSY, "classifier.ledger_labels=true", "classifier.norm=group"),
                 tmp_path / "run")
    assert len(state["history"]["accuracy"]) == 2
    assert sum(state["history"]["accuracy"][-1]) / 2 > 50.0


def test_class_structure_needs_a_class_ordered_stream(tiny):
    with pytest.raises(ConfigError, match="codes.class_bits needs stream.order: class"):
        tiny("codes.class_bits=4")
    with pytest.raises(ConfigError, match="cannot hold 4 classes"):
        tiny("stream.order=class", "codes.class_bits=3")
    with pytest.raises(ConfigError, match="ledger_labels needs stream.order: class"):
        tiny("classifier.ledger_labels=true")
    with pytest.raises(ConfigError, match="replay_min_confidence needs classifier.ledger_labels"):
        tiny("classifier.replay_min_confidence=0.5")


def test_binplay_reads_at_most_samples_per_class_and_baselines_read_all(tiny, tmp_path):
    sub = build_stream(tiny("autoencoder.samples_per_class=12"), tmp_path / "binplay")
    assert [t.size for t in sub.tasks] == [24, 24]  # 2 classes x 12 per task
    full = build_stream(tiny("strategy=er"), tmp_path / "er")
    assert [t.size for t in full.tasks] == [96, 96]
    with pytest.raises(ConfigError, match="autoencoder.samples_per_class: applies to strategy "
                                          "binplay only, not er"):
        tiny("autoencoder.samples_per_class=12", "strategy=er")  # never ignored in silence
    again = build_stream(tiny("autoencoder.samples_per_class=20"), tmp_path / "binplay")
    assert [t.size for t in again.tasks] == [40, 40]  # another limit: the stream is rebuilt


def test_unmemorised_samples_reach_the_classifier_without_an_index(tiny, tmp_path, classifier_calls):
    """classifier.unmemorised_inputs: the decoder memorises 12 per class, the classifier also
    reads the task's other samples (real), which take no index, no code, no ledger entry."""
    from binplay.ray_train.worker import rank_rows

    cfg = tiny(*CLASSY, "autoencoder.samples_per_class=12", "classifier.unmemorised_inputs=true",
               "classifier.epochs=1")
    manifest = build_stream(cfg, tmp_path / "stream")
    full = build_stream(tiny(*CLASSY, "strategy=er"), tmp_path / "er")
    for task, every in zip(manifest.tasks, full.tasks):
        assert task.size == 24 and task.unmemorised == 72
        index, images, labels = read_shards(task.train)
        assert int((index > 0).sum()) == 24 and sorted((-index[index < 0]).tolist()) == list(range(1, 73))
        assert set(labels[index < 0].tolist()) == set(task.classes)
        all_images = read_shards(every.train)[1]  # together: the whole task, once
        key = lambda x: sorted(map(bytes, x.reshape(len(x), -1).numpy()))  # noqa: E731
        assert key(images) == key(all_images)
        ranks = torch.stack([rank_rows(index, r, 2) for r in range(2)])  # Ray workers' split
        assert torch.equal(ranks.sum(0), torch.ones(len(index), dtype=torch.long))
        assert 0 < int(ranks[0][index < 0].sum()) < 72
    state = _run(cfg, tmp_path / "run")
    # Task 1: 24 reconstructions, then the 72 real unmemorised images.
    inputs, steps = classifier_calls[0]["inputs"], classifier_calls[0]["steps"]
    on_grid = lambda x: torch.allclose(x * 255, (x * 255).round(), atol=1e-4)  # noqa: E731
    assert len(inputs) == 96 and on_grid(inputs[24:]) and not on_grid(inputs[:24])
    assert steps == -(-96 // cfg.classifier.batch_size)
    assert [(t["first_index"], t["last_index"]) for t in state["ledger"]["tasks"]] == [(1, 24), (25, 48)]
    with pytest.raises(ConfigError, match="unmemorised_inputs needs autoencoder.samples_per_class"):
        tiny("classifier.unmemorised_inputs=true")


def test_reconstructed_share_repeats_reconstructions_beside_the_real_images(tiny, tmp_path,
                                                                             classifier_calls):
    """classifier.reconstructed_share: 24 reconstructions beside 96 real images (24 memorised
    + 72 unmemorised) are repeated 4 times, so they are half of the current inputs."""
    from binplay.train.classifier import reconstruction_copies

    assert reconstruction_copies(None, 24, 96) == 1 and reconstruction_copies(0.5, 24, 96) == 4
    assert reconstruction_copies(0.2, 24, 24) == 1  # never fewer than one copy
    cfg = tiny(*CLASSY, "autoencoder.samples_per_class=12", "classifier.unmemorised_inputs=true",
               "classifier.mix_real_inputs=true", "classifier.reconstructed_share=0.5",
               "classifier.epochs=1")
    _run(cfg, tmp_path / "run")
    inputs, steps = classifier_calls[0]["inputs"], classifier_calls[0]["steps"]
    on_grid = lambda x: torch.allclose(x * 255, (x * 255).round(), atol=1e-4)  # noqa: E731
    assert len(inputs) == 4 * 24 + 24 + 72 and on_grid(inputs[96:]) and not on_grid(inputs[:24])
    assert all(torch.equal(inputs[:24], inputs[24 * k:24 * (k + 1)]) for k in range(1, 4))
    # The rows current_loss_classes tells apart: reconstructions first, unmemorised last.
    assert classifier_calls[0]["reconstructed"] == 4 * 24 and classifier_calls[0]["unmemorised"] == 72
    assert steps == -(-192 // cfg.classifier.batch_size)
    with pytest.raises(ConfigError, match="reconstructed_share needs classifier.mix_real_inputs"):
        tiny("classifier.reconstructed_share=0.5")
