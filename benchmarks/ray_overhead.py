"""Ray overhead: seconds from `jobs.train` start to the first training step, and samples/s
with the in-process loop, 1 Ray worker and 2 Ray workers on this machine.

    BINPLAY_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/ray_overhead.py

Runs a one-task split-MNIST job (classes {0,1}, 2,000 images per class) three ways and
parses the progress lines; prints medians of the per-epoch samples/s for each phase.
``--tasks 2 --checkpoint-every 2`` adds a second task and frequent checkpoints: what a task's
shard read and each checkpointing report cost on the Ray path.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EPOCH = re.compile(r"\| (warmup|assign|decoder|classifier) +\| epoch .*\|\s+(\d+) samples/s")
FIRST_STEP = re.compile(r"task 1/\d+ starts")
VARIANTS = {  # name -> overrides; names are what --variants takes (comma-separated)
    "in-process-2-threads": ["ray.num_workers=0", "run.threads=2"],
    "ray-1-worker-2-threads": ["ray.num_workers=1", "ray.cpus_per_worker=1", "run.threads=2"],
    "ray-2-workers-1-thread": ["ray.num_workers=2", "ray.cpus_per_worker=0.5", "run.threads=1"],
}


def run(overrides: list[str], workdir: Path, tasks: int = 1,
        checkpoint_every: int = 100) -> dict[str, float]:
    streams = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]][:tasks]
    sets = ["stream.dataset=mnist", f"stream.tasks={streams}", "stream.train_per_class=2000",
            "stream.test_per_class=200", "autoencoder.warmup_epochs=2",
            "autoencoder.assignment_epochs=2", "autoencoder.decoder_epochs=3",
            "classifier.epochs=2", f"ray.checkpoint_every_epochs={checkpoint_every}",
            f"run.storage_path={workdir / 'ray'}", *overrides]
    cmd = [sys.executable, "-m", "jobs.train", "--config", "configs/split_mnist.yaml",
           "--output", str(workdir / "out")]
    for item in sets:
        cmd += ["--set", item]
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first_step, rates = None, {}
    for line in proc.stdout:  # type: ignore[union-attr]
        if first_step is None and FIRST_STEP.search(line):
            first_step = time.time() - started
        match = EPOCH.search(line)
        if match:
            rates.setdefault(match.group(1), []).append(float(match.group(2)))
    if proc.wait() != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}")
    out = {"to_first_step_s": first_step or float("nan"), "total_s": time.time() - started}
    out.update({f"{phase}_samples_per_s": statistics.median(v) for phase, v in rates.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--tasks", type=int, default=1, choices=range(1, 6))
    parser.add_argument("--checkpoint-every", type=int, default=100,
                        help="ray.checkpoint_every_epochs (default: phase ends only)")
    args = parser.parse_args()
    results = {}
    for name in args.variants.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = run(VARIANTS[name], Path(tmp), args.tasks, args.checkpoint_every)
        print(f"{name}: {results[name]}", flush=True)
    keys = list(next(iter(results.values())))
    print("| metric | " + " | ".join(results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{results[n].get(key, float('nan')):.1f}"
                                         for n in results) + " |")


if __name__ == "__main__":
    main()
