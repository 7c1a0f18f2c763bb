"""The whole in-process loop on tiny synthetic data: reports, resume, what the state keeps."""

import json

import pytest
import torch

from binplay.context import TrainContext
from binplay.data.stream import build_stream
from binplay.engine import run_stream
from binplay.runner import train_in_process
from binplay.state import TASK_SCOPED, StateError, load_state, save_state, state_bytes
from binplay.storage import RunFiles

REPORT_FILES = ["report.json", "report.md", "accuracy_matrix.png", "accuracy_curves.png",
                "samples_after_task_1.png", "samples_after_task_2.png"]


def _run(cfg, out, **ctx_kwargs):
    manifest = build_stream(cfg, out / "stream")
    return run_stream(cfg, manifest, TrainContext(log=lambda line: None, **ctx_kwargs))


def test_tiny_run_writes_full_report(tiny, tmp_path):
    cfg = tiny()
    path = train_in_process(cfg, RunFiles(cfg))
    run_dir = tmp_path / "runs" / "tiny"  # <run.storage_path>/<name>
    assert path == f"{run_dir}/report.json"
    for name in REPORT_FILES:
        assert (run_dir / name).is_file(), name
    assert (run_dir / "checkpoint" / "state.pt").is_file()
    report = json.loads((run_dir / "report.json").read_text())
    for key in ["average_accuracy", "accuracy_matrix", "forgetting", "bwt",
                "generative_memory_mb", "fidelity_psnr", "wall_seconds", "config"]:
        assert key in report
    assert len(report["accuracy_matrix"]) == 2 and len(report["accuracy_matrix"][1]) == 2
    phases = report["phase_seconds"]  # where each task's time went
    assert [set(p) for p in phases] == [{"warmup", "assign", "decoder", "classifier", "evaluate"}] * 2
    for per_phase, task_total in zip(phases, report["task_seconds"], strict=True):
        assert 0 < sum(per_phase.values()) <= task_total + 1e-6
    assert "by phase: warmup" in (run_dir / "report.md").read_text()
    assert report["average_accuracy"] > 50.0  # 4 easy classes; chance on a 2-task stream is 25-50
    assert report["config"]["name"] == "tiny"


def test_regeneration_accuracy_compares_each_probes_class_with_the_classifiers(
        tiny, tmp_path, monkeypatch):
    """Each task's probe regenerations are scored against their original's class: with a
    classifier that always answers class 0, task 1 ({0, 1}) scores its share of class 0
    and task 2 ({2, 3}) scores 0; a trained one scores its regenerations well."""
    from binplay import evaluation

    cfg = tiny()
    train_in_process(cfg, RunFiles(cfg))
    trained = json.loads((tmp_path / "runs" / "tiny" / "report.json").read_text())
    rows = trained["regeneration_accuracy"]
    assert [len(r) for r in rows] == [1, 2] and min(rows[1]) > 50.0  # chance: 25-50
    assert "Regenerations the classifier files" in (tmp_path / "runs" / "tiny" / "report.md").read_text()

    monkeypatch.setattr(evaluation, "predict", lambda model, images, seen: torch.zeros(
        len(images), dtype=torch.long))
    cfg = tiny("name=always0", "autoencoder.decoder_epochs=1", "classifier.epochs=1",
               "run.fidelity_samples=64")  # a probe of 64: about half of task 1 is class 0
    train_in_process(cfg, RunFiles(cfg))
    report = json.loads((tmp_path / "runs" / "always0" / "report.json").read_text())
    first, second = report["regeneration_accuracy"][1]
    assert 20.0 < first < 80.0 and second == 0.0


def test_uri_storage_publishes_the_run(tiny, tmp_path):
    cfg = tiny(f"run.storage_path=file://{tmp_path}/remote", "autoencoder.decoder_epochs=1",
               "classifier.epochs=1")
    files = RunFiles(cfg)
    assert files.remote == f"file://{tmp_path}/remote/tiny" and files.local != tmp_path / "remote"
    where = train_in_process(cfg, files)
    assert where == f"file://{tmp_path}/remote/tiny/report.json"
    published = tmp_path / "remote" / "tiny"
    assert (published / "report.json").is_file() and (published / "report.md").is_file()
    assert sorted(p.name for p in (published / "stream").iterdir())[:2] == ["stream.config.json",
                                                                           "stream.json"]


def test_state_keeps_nothing_per_sample(tiny, tmp_path, synthetic_data):
    small = _run(tiny("stream.train_per_class=12"), tmp_path / "small")
    large = _run(tiny("stream.train_per_class=48"), tmp_path / "large")
    for state in (small, large):
        assert not set(TASK_SCOPED) & set(state), "task-scoped entries survived the task"
        assert [len(t["classes"]) for t in state["ledger"]["tasks"]] == [2, 2]
    # 4x the samples (144 more images, 113 kB of pixels) must not grow the state.
    # Only the last digits of the ledger's integers and of float metrics may differ.
    growth = len(state_bytes(large)) - len(state_bytes(small))
    assert abs(growth) < 2048, growth
    assert large["ledger"]["tasks"][-1]["last_index"] == 4 * 48


def test_resume_after_crash_matches_uninterrupted_run(tiny, tmp_path):
    cfg = tiny("autoencoder.decoder_epochs=3", "ray.checkpoint_every_epochs=1")
    reference = _run(cfg, tmp_path / "ref")

    saved = []

    def crash_after_five(state, metrics):
        if state is not None:
            save_state(state, tmp_path / "ckpt")
            saved.append(metrics)
        if len(saved) == 5 + 9:  # in task 2, after some decoder epochs
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(cfg, tmp_path / "crashed", save=crash_after_five)
    partial = load_state(tmp_path / "ckpt", cfg)
    assert partial["task"] == 1 and partial["cursor"] > 0  # stopped inside the second task
    assert partial["task_elapsed"] > 0
    partial["task_elapsed"] = 1000.0  # as if the first attempt had run this long
    resumed = _run(cfg, tmp_path / "crashed", resume_state=partial)
    assert resumed["history"]["task_seconds"][1] >= 1000.0  # time before the crash counts
    assert "task_elapsed" not in resumed  # task-scoped: gone at the task's end
    assert resumed["history"]["accuracy"] == reference["history"]["accuracy"]
    for name in ("decoder", "classifier"):
        for key, value in reference["models"][name].items():
            assert torch.allclose(value.float(), resumed["models"][name][key].float()), key


def test_resume_refuses_another_config(tiny, tmp_path):
    cfg = tiny()
    state = _run(cfg, tmp_path / "a")
    save_state(state, tmp_path / "ckpt")
    with pytest.raises(StateError, match="different config"):
        load_state(tmp_path / "ckpt", tiny("seed=7"))
    state["version"] = 99
    save_state(state, tmp_path / "ckpt2")
    with pytest.raises(StateError, match="another BinPlay version"):
        load_state(tmp_path / "ckpt2", cfg)


def test_unreadable_state(tmp_path):
    (tmp_path / "state.pt").write_bytes(b"garbage")
    with pytest.raises(StateError, match="unreadable state"):
        load_state(tmp_path)


# First-epoch loss of every phase of the tiny config, one torch thread, and the relative
# tolerance each holds across CPU kernels. Measured under ATEN_CPU_CAPABILITY=default, avx2
# and avx512 (AMD EPYC, after issue 25's encoder reset): task 1's warm-up and assignment
# start from fixed weights and agree to the printed digit everywhere, so they are pinned
# tight; every later phase inherits trained weights, and float sums in another order move
# it (task 1's classifier by 12% between default and avx2): each is pinned at the midpoint
# of the measured values with twice their relative half-spread (at least 0.5%). A silent
# change of the math moves task 1's first phases at once, the later ones past their band.
PINNED_FIRST_EPOCH_LOSS = {  # (task, phase): (loss, relative tolerance)
    (1, "warmup"): (0.1732, 2e-3), (1, "assign"): (36.8924, 2e-3),
    (1, "decoder"): (0.16045, 0.005), (1, "classifier"): (0.3422, 0.12),
    (2, "warmup"): (0.09315, 0.005), (2, "assign"): (36.7475, 0.009),
    (2, "decoder"): (0.0543, 0.023), (2, "classifier"): (1.1312, 0.06),
}


def test_first_epoch_losses_are_pinned(tiny, tmp_path):
    import re

    lines: list[str] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = tiny()
        run_stream(cfg, build_stream(cfg, tmp_path / "stream"), TrainContext(log=lines.append))
    finally:
        torch.set_num_threads(threads)
    pattern = re.compile(r"task (\d)/2 \| (\w+)\s*\| epoch   1/\d+\s*\| loss ([\d.]+)")
    seen = {(int(m[1]), m[2]): float(m[3]) for m in map(pattern.search, lines) if m}
    assert seen.keys() == PINNED_FIRST_EPOCH_LOSS.keys()
    for key, (pinned, rel) in PINNED_FIRST_EPOCH_LOSS.items():
        assert seen[key] == pytest.approx(pinned, rel=rel, abs=2e-4), key


def test_uri_run_resumes_from_its_published_checkpoint(tiny, tmp_path, capsys):
    cfg = tiny(f"run.storage_path=file://{tmp_path}/remote", "autoencoder.decoder_epochs=1",
               "classifier.epochs=1")
    train_in_process(cfg, RunFiles(cfg))
    assert (tmp_path / "remote" / "tiny" / "checkpoint" / "state.pt").is_file()
    capsys.readouterr()
    again = RunFiles(cfg)  # a new staging directory, as on another machine
    assert not (again.local / "checkpoint").exists()
    train_in_process(cfg, again)
    assert "run already complete (2 tasks)" in capsys.readouterr().out


def test_worker_count_may_change_only_at_a_task_boundary(tiny, tmp_path):
    from binplay.state import check_resume_workers

    state = _run(tiny(), tmp_path / "a")
    state["world_size"] = 2
    check_resume_workers(state, 1, "ckpt")  # task boundary (cursor 0): any count continues
    state["cursor"] = 3
    with pytest.raises(StateError, match="mid-task with 2 worker"):
        check_resume_workers(state, 1, "ckpt")
    check_resume_workers(state, 2, "ckpt")


def test_images_the_models_cannot_take_fail_on_the_driver(tiny):
    from binplay.config import ConfigError
    from binplay.run_models import check_models_fit

    check_models_fit(tiny(), (1, 28, 28), 4)
    with pytest.raises(ConfigError, match=r"images of shape \(1, 30, 30\) do not fit"):
        check_models_fit(tiny(), (1, 30, 30), 4)


def test_a_worker_domain_error_becomes_one_line():
    from binplay.errors import TrainingFailed, worker_error

    class Wrapped(Exception):  # what Ray puts around a worker's exception
        def __init__(self, cause):
            super().__init__("Traceback (most recent call last):\n  ...")
            self.cause = cause

    err = worker_error({1: Wrapped(StateError("ckpt: checkpoint was written by a different "
                                              "config\nmore")), 0: Wrapped(KeyError("x"))})
    assert isinstance(err, StateError)
    assert str(err) == "ckpt: checkpoint was written by a different config (worker 1)"
    other = worker_error({0: Wrapped(ZeroDivisionError("division by zero"))})
    assert isinstance(other, TrainingFailed) and "\n" not in str(other)
    assert str(other).startswith("worker 0 failed: ZeroDivisionError: division by zero")


def test_report_sets_the_paper_beside_its_own_stream_only(tiny):
    from binplay.config import load_config
    from binplay.report import paper_number

    assert paper_number(load_config("configs/split_mnist.yaml").stream) == 97.2
    assert paper_number(load_config("configs/smoke.yaml").stream) is None  # 3 tasks, subset
    assert paper_number(load_config("configs/split_mnist.yaml",
                                    ["stream.train_per_class=1000"]).stream) is None


def test_a_diverged_loss_stops_the_run_in_one_line(tiny, tmp_path):
    from binplay.errors import TrainingFailed

    cfg = tiny("classifier.lr=1e30", "autoencoder.decoder_epochs=1")
    with pytest.raises(TrainingFailed, match=r"^task \d, classifier phase, epoch \d: the loss is nan") as err:
        _run(cfg, tmp_path)
    assert "\n" not in str(err.value) and "learning rate" in str(err.value)
