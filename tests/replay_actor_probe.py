"""Client-side checks of the replay actor pool, run by tests/test_replay_actors.py.

    RAY_ADDRESS=... python -m replay_actor_probe equal|kill|no_room

Each case asserts and prints "<case>: ok"; a failed assertion exits non-zero.
"""

from __future__ import annotations

import sys

import ray
import torch
from test_replay import _job

from binplay.config import ReplayConfig
from binplay.replay import InlineReplay, ReplayFeed, ReplayPlan


def _pool(**overrides):
    from binplay.replay.actors import ActorReplay

    cfg = ReplayConfig(mode="actors", **{"actors": 2, "cpus_per_actor": 0.25, **overrides})
    return ActorReplay(cfg, log=print)


def _feed(source, job, steps, in_flight, per_request=1):
    source.bind(job)
    plan = ReplayPlan(job.ledger, (0, 1, "classifier", 0, 0), count=48)
    return ReplayFeed(source, plan, steps, in_flight, steps_per_request=per_request)


def _same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for name in ("indices", "codes", "images", "targets"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name


def equal() -> None:
    """An actor's batches (codes, images, soft targets) equal inline generation."""
    job = _job("soft")
    inline = [_feed(InlineReplay(), job, 6, 2).batch(s) for s in range(6)]
    pool = _pool(nice=19)  # niceness changes when the actors run, not what they compute
    try:
        feed = _feed(pool, job, 6, 2)
        remote = [feed.batch(s) for s in range(6)]
        nice = [int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])
                for pid in pool.pids]  # field 19 of stat: the process's nice value
    finally:
        pool.close()
    _same(inline, remote)
    assert nice == [19, 19], nice
    assert feed.metrics()["replay_samples"] == 6 * 48
    # Requests of several steps: the same requests inline and on the actors, the same tensors.
    inline = [_feed(InlineReplay(), job, 7, 1, per_request=3).batch(s) for s in range(7)]
    pool = _pool()
    try:
        feed = _feed(pool, job, 7, 1, per_request=3)
        _same(inline, [feed.batch(s) for s in range(7)])
    finally:
        pool.close()


def kill() -> None:
    """Killing an actor with requests in flight: restarted, re-issued, same batches."""
    job = _job("ledger")
    inline = [_feed(InlineReplay(), job, 8, 4).batch(s) for s in range(8)]
    pool = _pool()
    try:
        feed = _feed(pool, job, 8, 4)
        got = [feed.batch(0)]  # steps 1..4 are now in flight, 1 and 3 on actor 1
        ray.kill(pool.actors[1], no_restart=False)
        got += [feed.batch(s) for s in range(1, 8)]
    finally:
        pool.close()
    _same(inline, got)


def no_room() -> None:
    from binplay.replay.actors import ReplayError

    try:
        _pool(actors=1, cpus_per_actor=64, start_timeout_s=2)
    except ReplayError as exc:
        assert "did not start within 2 s" in str(exc) and "\n" not in str(exc), str(exc)
        print(f"error line: {exc}")
    else:
        raise AssertionError("an actor that cannot be placed was reported as started")


if __name__ == "__main__":
    # Every case named runs in this one client (a client costs seconds to start); each ends
    # in "<case>: ok" or "<case>: failed" and its traceback, and the others still run.
    import traceback

    ray.init(log_to_driver=False)
    try:
        for case in sys.argv[1:]:
            try:
                {"equal": equal, "kill": kill, "no_room": no_room}[case]()
            except Exception:  # noqa: BLE001 - reported per case; the test reads the line
                print(f"{case}: failed\n{traceback.format_exc()}", flush=True)
            else:
                print(f"{case}: ok", flush=True)
    finally:
        ray.shutdown()
