"""Replay actors (``replay.mode: actors``): the same batches as inline, surviving a dead actor.

The first tests drive the actor pool directly from a client of the session's Ray head
(tests/replay_actor_probe.py); the last one runs whole jobs as subprocesses and compare the final
weights with an inline run, bit for bit (CPU, one torch thread everywhere).
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
import torch

from binplay.config import ReplayConfig
from binplay.state import load_state
from raytools import run_job, write_config

pytestmark = pytest.mark.ray
TESTS = Path(__file__).resolve().parent
PROBE_CASES = ("equal", "kill", "no_room")
ACTOR_PIDS = re.compile(r"replay: \d+ actor\(s\) ready .*pids ([\d, ]+)\)")


@pytest.fixture(scope="module")
def probe(ray_head) -> str:
    """Every case of tests/replay_actor_probe.py, run once in a client process of the session's
    head (Ray reads its auth token once per process, so this one stays Ray-free)."""
    code, out = run_job(["replay_actor_probe", *PROBE_CASES], {**ray_head["env"],
                        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])},
                        timeout=300)
    assert code == 0, out[-3000:]
    return out


def _case_passed(out: str, case: str) -> None:
    assert f"{case}: ok" in out, out[-3000:]


def test_actor_batches_equal_inline_bit_for_bit(probe):
    _case_passed(probe, "equal")


def test_a_killed_actor_is_restarted_and_its_requests_reissued(probe):
    _case_passed(probe, "kill")


def test_actors_that_cannot_start_say_so_in_one_line(probe):
    _case_passed(probe, "no_room")


def _final_weights(cfg, run_dir):
    state = load_state(run_dir / "checkpoint", cfg)
    assert state["task"] == 2
    return state["models"]


def _train(cfg, tmp_path, name, env, on_line=None):
    path = write_config(cfg, tmp_path / f"{name}.yaml")
    return run_job(["jobs.train", "--config", str(path), "--output", str(tmp_path / name)],
                   env, timeout=600, on_line=on_line)


def test_actors_run_equals_inline_despite_a_killed_actor_and_a_resume(ray_head, tiny, tmp_path):
    """Three in-process runs of the tiny stream, one torch thread: inline; actors with one
    actor SIGKILLed mid-decoder-phase; actors SIGKILLed (the whole job) mid-task 2 and
    re-run. All three end with the same weights, bit for bit."""
    from jobs.train import main as train

    cfg = tiny("run.threads=1", "ray.num_workers=0", "ray.checkpoint_every_epochs=3")
    # The inline run needs no Ray: it runs in this process (no job to start).
    path = write_config(cfg, tmp_path / "inline.yaml")
    assert train(["--config", str(path), "--output", str(tmp_path / "inline")]) == 0
    reference = _final_weights(cfg, tmp_path / "inline")

    actors = cfg.model_copy(update={"replay": ReplayConfig(mode="actors", actors=2)})
    killed: list[int] = []

    def kill_an_actor(line, proc):
        pids = ACTOR_PIDS.search(line)
        if pids:
            killed.append(int(pids[1].split(",")[0]))
        if "task 2/2 | decoder    | epoch   2/" in line and len(killed) == 1:
            os.kill(killed[0], signal.SIGKILL)
            killed.append(0)

    code, out = _train(actors, tmp_path, "actors", ray_head["env"], kill_an_actor)
    assert code == 0, out[-3000:]
    assert "replay: 2 actor(s) ready" in out
    assert len(killed) == 2, out[-3000:]  # the actor was found and killed mid-phase
    assert "replay wait" in out

    def kill_the_job(line, proc):
        if "task 2/2 | decoder    | epoch   8/" in line:  # after the checkpoint at epoch 6
            os.killpg(proc.pid, signal.SIGKILL)

    code, first = _train(actors, tmp_path, "resumed", ray_head["env"], kill_the_job)
    assert code != 0
    code, second = _train(actors, tmp_path, "resumed", ray_head["env"])
    assert code == 0 and "resuming task 2/2 at epoch" in second, second[-3000:]

    for run in ("actors", "resumed"):
        weights = _final_weights(cfg, tmp_path / run)
        for model, params in reference.items():
            for key, value in params.items():
                assert torch.equal(value, weights[model][key]), (run, model, key)
