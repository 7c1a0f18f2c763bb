"""What `make demo` prints: the run's own lines and warnings, none of Ray's bookkeeping."""

from __future__ import annotations

import logging
import os
import re

import pytest
from eventtools import scalars
from test_jobs import _fashion_mnist_available

from raytools import run_job

# Ray puts "(RayTrainWorker pid=N)" (coloured) before the lines of the worker that trains.
WORKER = r"(?:(?:\x1b\[\d+m)?\(RayTrainWorker pid=\d+(?:, ip=[\d.]+)?\)(?:\x1b\[0m)? )?"
OWN_LINES = [
    r"stream ready in [\d.]+s: \d+ tasks .*",
    r"ray ready in [\d.]+s: embedded local Ray \(\d+ CPUs.*\)(, dashboard http\S+)?",
    WORKER + r"task \d+/\d+ starts \(\w+\): classes \[[\d, ]+\], indices \d+\.\.\d+, .*",
    WORKER + r"task \d+/\d+ \| \w+ +\| epoch +\d+/\d+ +\| loss [\d.]+ \| .* samples/s"
    r"( \| replay wait +\d+%)? \| ETA [\d:]+",
    WORKER + r"task \d+: code mapping frozen, encoder sign agreement [\d.]+% of bits .*",
    WORKER + r"task \d+/\d+ done \| test accuracy per task: .*",
    r"ray train fit finished in [\d.]+s",
    r"average accuracy after the last task: [\d.]+% \| report: \S+/report\.json",
]
# Real warnings always pass: Python's (file:line: XWarning: ...) and loggers' (WARNING).
WARNINGS = [r".*\b\w*Warning: .*", r".*\bWARNING\b.*", r"\s+warnings\.warn\(.*"]
# Ray's notices that came as warnings or errors without being about the run (quiet.py).
RAY_NOTICES = ["exclude_resources", "Progress bars disabled", "PreemptionWatcher",
               "Token authentication is enabled"]


def unexpected_lines(output: str) -> list[str]:
    allowed = [re.compile(p) for p in OWN_LINES + WARNINGS]
    return [line for line in output.splitlines()
            if line.strip() and not any(p.fullmatch(line) for p in allowed)]


def test_allow_list_lets_no_ray_bookkeeping_through():
    worker = "\x1b[36m(RayTrainWorker pid=26987)\x1b[0m "
    own = (f"{worker}task 2/3 | decoder    | epoch   1/15  | loss 0.0423 |    0.34 s |     1699 "
           f"samples/s | replay wait  35% | ETA 0:00:08")
    ray = ["\x1b[36m(TrainController pid=26823)\x1b[0m Requesting resources: {'CPU': 0.75} * 1",
           f"{worker}Setting up process group for: env:// [rank=0, world_size=1]",
           f"{worker}Reporting training result 3: TrainingReport(checkpoint=None, metrics={{}})",
           "\x1b[36m(TrainController pid=1)\x1b[0m [2026-12-06 10:33:03,174 E 26823 26867] "
           "core_worker.cc:2465: Actor with class name: 'PreemptionWatcher' and ID: '3d' has "
           "constructor arguments in the object store and max_restarts > 0"]
    assert unexpected_lines("\n".join([own, *ray])) == ray


@pytest.mark.ray
@pytest.mark.slow
def test_demo_prints_only_the_runs_own_lines_and_tracks_its_metrics(tmp_path):
    """`make demo` on an embedded local Ray (shortened): every line is the run's own or a
    warning, and the rank-0 worker wrote the run's TensorBoard events."""
    if not _fashion_mnist_available():
        pytest.skip("Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)  # an embedded local Ray, as `make demo` from a fresh clone
    out = tmp_path / "smoke"
    # One task of the demo, shorter: Ray's lines come from starting Ray, Train's worker group
    # and Ray Data's reads, reports and checkpoints, which a task has as the demo's three do.
    code, log = run_job(["jobs.train", "--config", "configs/smoke.yaml", "--output", str(out),
                         "--set", "stream.tasks=[[0,1]]", "--set", "stream.train_per_class=60",
                         "--set", "stream.test_per_class=20", "--set", "autoencoder.decoder_epochs=2",
                         "--set", "classifier.epochs=2"], env)
    assert code == 0, log[-3000:]
    assert unexpected_lines(log) == [], log
    assert [n for n in RAY_NOTICES if n in log] == [], log
    assert "task 1/1 done" in log and "samples/s" in log
    events = scalars(out / "tensorboard")
    assert len(events["loss/decoder"]) == 2 and list(events["accuracy/test_average"]) == [1]


def test_setup_hook_quiets_a_worker_unless_ray_logs_are_asked(monkeypatch):
    from binplay.ray_train import quiet

    names = ["ray.train._internal.session", "ray.data._internal.progress"]
    before = {name: logging.getLogger(name).level for name in [*quiet.ray_info_loggers(), *names]}
    try:
        for name in before:
            logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger().setLevel(logging.INFO)
        monkeypatch.setenv(quiet.SHOW_ENV, "1")
        monkeypatch.setenv(quiet.PIN_ENV, "0")
        quiet.setup_worker()
        assert logging.getLogger(names[0]).isEnabledFor(logging.INFO)
        monkeypatch.setattr("threading.excepthook", lambda args: None)
        monkeypatch.setenv(quiet.SHOW_ENV, "0")
        quiet.setup_worker()
        assert not logging.getLogger(names[0]).isEnabledFor(logging.INFO)
        assert not logging.getLogger(names[1]).isEnabledFor(logging.WARNING)  # its hints only
        assert logging.getLogger(names[1]).isEnabledFor(logging.ERROR)
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def test_a_ray_warning_with_a_traceback_it_calls_harmless_is_one_warning_line(monkeypatch):
    """Under CPU load Ray Train's controller logged "Failed to send resource request ... safe
    to ignore" with a 30-line traceback in `make demo`; quieted, it is one allowed line."""
    import io

    from binplay.ray_train import quiet

    logger = logging.getLogger(quiet.ONE_LINE_WARNINGS[0])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "filters", [])
    try:
        quiet.quiet_ray_logs()
        quiet.quiet_ray_logs()  # idempotent: one filter, one line
        try:
            raise TimeoutError("GetTimeoutError")
        except TimeoutError:
            logger.warning("Failed to send resource request for train-1. If this only happens "
                           "transiently, it's safe to ignore this error.", exc_info=True)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "Traceback" not in stream.getvalue(), lines
    worker = "\x1b[36m(TrainController pid=7)\x1b[0m "
    assert unexpected_lines(worker + lines[0]) == [] and "Failed to send resource request" in lines[0]
    assert len([f for f in logger.filters if isinstance(f, quiet.OneLineWarning)]) == 1
