"""Replay actors vs inline replay: epoch time and the trainer's wait for replay, per phase.

    BINPLAY_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/replay_actors.py \\
        --config configs/smoke.yaml --out /tmp/bench/replay_actors

Trains the same stream in-process (``ray.num_workers=0``) once per mode:
``inline`` at 1 and at 2 torch threads, and ``actors`` (each actor 1 thread; the trainer
at each of ``--trainer-threads``) for each ``--actors`` count. Only tasks after the first rehearse, so the
figures are the medians over the epochs of those tasks, per phase: seconds per epoch, and
the share of it the trainer spent waiting for replay (decoding inline; collecting an
actor's result otherwise). Run it alone: timings shared with other work are worthless.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"task (\d+)/\d+ \| (\w+)\s*\| epoch .*\|\s+([\d.]+) s \|.*replay wait\s+(\d+)%")


def run(config: str, sets: list[str], out: Path,
        env: dict[str, str]) -> dict[str, tuple[float, float, int]]:
    """Train once; per phase: (median seconds per epoch, median wait %, epochs)."""
    cmd = [sys.executable, "-m", "jobs.train", "--config", config, "--output", str(out),
           "--set", "ray.num_workers=0", *[a for s in sets for a in ("--set", s)]]
    log = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, **env})
    if log.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{log.stdout[-3000:]}{log.stderr[-3000:]}")
    seconds, waits = defaultdict(list), defaultdict(list)
    for m in map(LINE.search, log.stdout.splitlines()):
        if m and int(m[1]) > 1:
            seconds[m[2]].append(float(m[3]))
            waits[m[2]].append(float(m[4]))
    return {p: (statistics.median(seconds[p]), statistics.median(waits[p]), len(seconds[p]))
            for p in seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/smoke.yaml")
    parser.add_argument("--set", action="append", default=[], help="extra overrides")
    parser.add_argument("--actors", default="1,2", help="actor counts to measure")
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--trainer-threads", default="1,2", help="trainer threads beside actors")
    parser.add_argument("--inline-threads", default="2,1", help="torch threads of the inline modes")
    parser.add_argument("--skip-inline", action="store_true", help="measure the actor modes only")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of every training process (OMP_WAIT_POLICY=PASSIVE)")
    parser.add_argument("--out", default="/tmp/bench/replay_actors")
    args = parser.parse_args()
    modes = {} if args.skip_inline else {
        f"inline, {t} thread(s)": ["replay.mode=inline", f"run.threads={t}"]
        for t in map(int, args.inline_threads.split(","))}
    for n in map(int, args.actors.split(",")):
        for threads in map(int, args.trainer_threads.split(",")):
            modes[f"actors x{n} (0.25 CPU), trainer {threads} thread(s)"] = [
                "replay.mode=actors", f"run.threads={threads}", f"replay.actors={n}",
                f"replay.in_flight={args.in_flight}"]
    env = dict(kv.split("=", 1) for kv in args.env)
    results = {}
    for i, (name, sets) in enumerate(modes.items()):
        results[name] = run(args.config, sets + args.set, Path(args.out) / f"mode{i}", env)
        figures = ", ".join(f"{p} {s:.2f} s {w:.0f}%" for p, (s, w, _) in results[name].items())
        print(f"done: {name}: {figures}", flush=True)  # kept if a time limit cuts the table
    phases = list(next(iter(results.values())))
    base = next(iter(results.values()))
    print("\n| mode | " + " | ".join(f"{p}: s/epoch, wait %" for p in phases) + " |")
    print("|---|" + "---|" * len(phases))
    for name, res in results.items():
        cells = [f"{res[p][0]:.2f} s ({res[p][0] / base[p][0]:.2f}x), {res[p][1]:.0f}%"
                 for p in phases]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nmedians over {', '.join(f'{p}: {base[p][2]}' for p in phases)} epochs "
          f"(tasks 2+); ratios against the first mode")


if __name__ == "__main__":
    main()
