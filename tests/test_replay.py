"""The replay seam without Ray: the trainer's index plan, indices -> batches, the feed."""

from __future__ import annotations

import pytest
import torch

from binplay.codes import index_codes
from binplay.config import load_config
from binplay.context import TrainContext
from binplay.data.stream import build_stream
from binplay.engine import run_stream
from binplay.ledger import Ledger, TaskRecord
from binplay.replay import InlineReplay, ReplayFeed, ReplayJob, ReplayPlan, generate
from binplay.run_models import build_models
from binplay.scoring import soft_targets

SHAPE = (1, 28, 28)


def _ledger() -> Ledger:
    ledger = Ledger()
    ledger.add(TaskRecord(0, 1, 40, (0, 1), ((0, 1, 25), (1, 26, 40))))
    ledger.add(TaskRecord(1, 41, 100, (2, 3), ((2, 41, 70), (3, 71, 100))))
    return ledger


def _cfg(*extra: str):
    return load_config(None, ["stream.order=class", "codes.task_bits=0", "codes.class_bits=4",
                              "codes.bits_per_part=8", "codes.primes=[3,5,7,11]",
                              "autoencoder.width=8", "stream.tasks=[[0,1],[2,3]]", *extra])


def _job(targets: str = "none", seed: int = 0, *extra: str) -> ReplayJob:
    cfg = _cfg(*extra)
    torch.manual_seed(seed)
    models = build_models(cfg, SHAPE, 4)
    return ReplayJob.bind(cfg, SHAPE, 4, _ledger(), models["decoder"], models["classifier"],
                          targets, (0, 1, 2, 3))


def test_plan_draws_only_past_indices_each_step_on_its_own():
    ledger = _ledger()
    plan = ReplayPlan(ledger, (0, 2, "decoder", 3, 0), count=64)
    steps = [plan.indices(s) for s in range(20)]
    drawn = torch.cat(steps)
    assert int(drawn.min()) >= 1 and int(drawn.max()) <= ledger.total  # only the ledger's ranges
    assert len(drawn.unique()) > 90  # uniform over all 100 past samples, not a few
    # A step's draw depends on nothing drawn before it: asked later, alone, it is the same.
    assert torch.equal(plan.indices(7), steps[7])
    assert not torch.equal(steps[7], steps[8])
    other = ReplayPlan(ledger, (0, 2, "decoder", 4, 0), count=64)  # the next epoch
    assert not torch.equal(other.indices(7), steps[7])


def test_plan_share_draws_a_binomial_count():
    plan = ReplayPlan(_ledger(), (1, 1, "decoder", 0, 0), batch=100, share=0.3)
    sizes = [len(plan.indices(s)) for s in range(200)]
    assert 27 < sum(sizes) / len(sizes) < 33 and len(set(sizes)) > 5
    assert len(ReplayPlan(Ledger(), (1,), count=5).indices(0)) == 0  # nothing to replay yet


def test_a_batch_is_recomputed_from_its_indices_alone():
    job = _job("soft")
    indices = torch.tensor([1, 17, 40, 41, 99])
    batch = generate(job, indices)
    codes = index_codes(indices, bits_per_part=8, primes=[3, 5, 7, 11])
    classes = torch.tensor([0, 0, 1, 2, 3])
    assert torch.equal(batch.codes[:, 4:], codes)  # the index part: a pure function of i
    assert torch.equal(batch.codes[:, :4].argmax(dim=1), classes)  # class bits from the ranges
    assert torch.equal(batch.images, job.decoder(batch.codes))
    mask = torch.ones(4, dtype=torch.bool)
    assert torch.equal(batch.targets, soft_targets(job.classifier, batch.images, mask))
    ledger_targets = generate(_job("ledger"), indices).targets
    assert torch.equal(ledger_targets.argmax(dim=1), classes)
    assert generate(_job("none"), indices).targets is None


def test_ledger_labels_drop_regenerations_the_frozen_classifier_doubts():
    indices = torch.arange(1, 101)
    job = _job("ledger")
    plain = generate(job, indices)
    probs = soft_targets(job.classifier, plain.images, torch.ones(4, dtype=torch.bool))
    own = probs.gather(1, plain.targets.argmax(dim=1, keepdim=True)).squeeze(1)
    floor = float(own.median())  # an untrained classifier: about half the rows fall below
    kept = generate(_job("ledger", 0, "stream.order=class", "classifier.ledger_labels=true",
                         f"classifier.replay_min_confidence={floor}"), indices)
    assert torch.equal(kept.images, plain.images)  # the batch keeps its shape and images
    rows = kept.targets.sum(dim=1)
    assert torch.equal(rows.bool(), own >= floor)  # exactly the doubted rows are zeroed
    assert 0 < int(rows.sum()) < len(indices)
    assert torch.equal(kept.targets[rows.bool()], plain.targets[rows.bool()])


def test_a_shipped_job_decodes_bit_identically():
    """What an actor does: rebuild the models from the payload, then generate."""
    job = _job("soft")
    shipped = ReplayJob.from_payload(job.to_payload())
    indices = ReplayPlan(job.ledger, (0,), count=33).indices(0)
    a, b = generate(job, indices), generate(shipped, indices)
    for name in ("codes", "images", "targets"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_bound_job_does_not_follow_the_live_model():
    cfg = _cfg()
    decoder = build_models(cfg, SHAPE, 4)["decoder"]
    job = ReplayJob.bind(cfg, SHAPE, 4, _ledger(), decoder)
    before = generate(job, torch.tensor([3, 50])).images
    with torch.no_grad():
        for p in decoder.parameters():
            p.add_(1.0)
    assert torch.equal(generate(job, torch.tensor([3, 50])).images, before)


class RecordingSource(InlineReplay):
    def __init__(self):
        super().__init__()
        self.submitted: list[int] = []
        self.binds: list[ReplayJob] = []

    def bind(self, job):
        self.binds.append(job)
        super().bind(job)

    def submit(self, indices):
        self.submitted.append(int(indices[0]))
        return super().submit(indices)


def test_feed_keeps_requests_in_flight_and_serves_steps_in_order():
    source, plan = RecordingSource(), ReplayPlan(_ledger(), (5,), count=8)
    source.bind(_job())
    feed = ReplayFeed(source, plan, steps=5, in_flight=2)
    first = feed.batch(0)
    assert len(source.submitted) == 3  # step 0, and steps 1 and 2 ahead of it
    assert torch.equal(first.indices, plan.indices(0))
    assert torch.equal(feed.batch(1).indices, plan.indices(1))
    for step in (2, 3, 4):
        feed.batch(step)
    assert len(source.submitted) == 5  # never beyond the epoch's last step
    assert feed.metrics()["replay_samples"] == 40
    with pytest.raises(RuntimeError, match="out of order"):
        feed.batch(1)


def test_a_request_may_carry_several_steps_and_each_step_gets_its_own_batch():
    """replay.steps_per_request: 7 steps in requests of 3 -> 3 requests; every step still
    gets exactly its planned indices and their images (decoded in a larger batch)."""
    job, plan = _job("soft"), ReplayPlan(_ledger(), (5,), count=8)
    single = RecordingSource()
    single.bind(job)
    one = ReplayFeed(single, plan, steps=7, in_flight=1)
    expected = [one.batch(s) for s in range(7)]
    source = RecordingSource()
    source.bind(job)
    feed = ReplayFeed(source, plan, steps=7, in_flight=1, steps_per_request=3)
    first = feed.batch(0)
    assert len(source.submitted) == 2  # steps 0-2, and 3-5 ahead of them
    got = [first] + [feed.batch(s) for s in range(1, 7)]
    assert len(source.submitted) == 3 and len(single.submitted) == 7
    for a, b in zip(got, expected):
        assert torch.equal(a.indices, b.indices) and torch.equal(a.codes, b.codes)
        assert torch.allclose(a.images, b.images, atol=1e-6)
        assert torch.allclose(a.targets, b.targets, atol=1e-6)
    assert feed.metrics()["replay_samples"] == 56
    skipping = ReplayFeed(source, plan, steps=7, in_flight=1, steps_per_request=3)
    assert torch.equal(skipping.batch(4).indices, plan.indices(4))  # steps 0-3 skipped
    with pytest.raises(RuntimeError, match="out of order"):
        skipping.batch(2)


def test_every_rehearsing_phase_goes_through_the_source_bound_once_per_phase(tiny, tmp_path):
    source, lines = RecordingSource(), []
    cfg = tiny()
    run_stream(cfg, build_stream(cfg, tmp_path / "stream"),
               TrainContext(log=lines.append, replay=source))
    # Task 1 rehearses nothing; task 2: warm-up, assignment, decoder, classifier.
    assert len(source.binds) == 4
    assert [j.targets for j in source.binds] == ["none", "none", "none", "soft"]
    assert all(j.ledger.total == 96 for j in source.binds)  # task 1's range only
    waits = [line for line in lines if "replay wait" in line]
    assert len(waits) == sum(1 for line in lines if "task 2/2 |" in line)  # every phase of task 2
    assert not any("replay wait" in line for line in lines if "task 1/2 |" in line)


def test_replay_actors_are_counted_in_what_a_run_books():
    from binplay.config import ConfigError
    from binplay.ray_train.cluster import check_fits, replay_cpus

    base = ["ray.num_workers=1", "ray.cpus_per_worker=0.75"]
    assert replay_cpus(_cfg(*base)) == 0  # inline
    actors = _cfg(*base, "replay.mode=actors", "replay.actors=2", "replay.cpus_per_actor=0.125")
    assert replay_cpus(actors) == 0.25
    check_fits(actors, total_cpus=2)  # 0.75 + 0.25 + 1 CPU kept for Ray Data reads
    more = _cfg(*base, "replay.mode=actors", "replay.actors=2", "replay.cpus_per_actor=0.5")
    with pytest.raises(ConfigError, match="1 for replay actors"):
        check_fits(more, total_cpus=2)
    # Where replay is decoded does not change the math: a run may resume in the other mode.
    assert actors.fingerprint() == _cfg(*base).fingerprint()


def test_gpu_workers_and_gpu_actors_must_fit_the_gpus_together():
    """A whole-GPU worker leaves no room for GPU actors on a 1-GPU machine; Ray would
    wait on them forever, so the run is refused first, with a fraction as the way out."""
    from binplay.config import ConfigError
    from binplay.ray_train.cluster import check_fits, replay_gpus

    gpu_actors = ["ray.num_workers=1", "ray.cpus_per_worker=1", "ray.use_gpu=true",
                  "replay.mode=actors", "replay.actors=2", "replay.gpus_per_actor=0.25"]
    assert replay_gpus(_cfg(*gpu_actors)) == 0.5
    with pytest.raises(ConfigError, match=r"1 workers x 1 GPU \+ 0.5 for replay actors exceed the 1 GPUs"):
        check_fits(_cfg(*gpu_actors), total_cpus=8, total_gpus=1)
    check_fits(_cfg(*gpu_actors, "ray.gpus_per_worker=0.5"), total_cpus=8, total_gpus=1)
    with pytest.raises(ConfigError, match="exceed the 0 GPUs"):  # no GPU: actors never start
        check_fits(_cfg("replay.mode=actors", "replay.gpus_per_actor=0.5"), total_cpus=8,
                   total_gpus=0)
    check_fits(_cfg(*gpu_actors[:3]), total_cpus=8, total_gpus=1)  # inline replay



def test_the_drivers_omp_wait_policy_reaches_every_worker(monkeypatch):
    """Actors sharing a trainer's cores need its OpenMP threads to sleep, not spin, while it
    waits: a driver's OMP_WAIT_POLICY goes into the job's worker environment."""
    from binplay.ray_train.cluster import worker_env

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert "OMP_WAIT_POLICY" not in worker_env()
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert worker_env()["OMP_WAIT_POLICY"] == "PASSIVE"
