"""Where a run's wall time goes: seconds per phase and task, BinPlay against ER, on a preset.

    .venv/bin/python benchmarks/phase_times.py --config configs/split_mnist.yaml \
        --strategies binplay,er --tasks 2 --output /tmp/phase-times

Each strategy trains the preset's first ``--tasks`` tasks in this process (no Ray, one
torch thread unless ``--threads``), as ``jobs.compare`` would run it (each strategy with
the settings it reads; ER's buffer sized to BinPlay's carried bytes). The run's report
already times every phase (``phase_seconds``: the sum of its epochs, and the evaluation
after each task); this script prints them side by side with each phase's share and the
ratio of the two wall times. Run it alone on the machine: any other process makes the
seconds meaningless. Prints figures only; no thresholds.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from binplay.config import config_from_dict, for_strategy, load_preset
from binplay.launch import train


def phase_table(report: dict) -> dict[str, float]:
    """Seconds per phase over the run's tasks (the report's ``phase_seconds``)."""
    totals: dict[str, float] = defaultdict(float)
    for task in report.get("phase_seconds", []):
        for phase, seconds in task.items():
            totals[phase] += seconds
    return dict(totals)


def run_one(tree: dict, strategy: str, tasks: int, threads: int, out: Path,
            extra: list[str] | None = None) -> dict:
    """Train ``strategy`` on the first ``tasks`` tasks of ``tree`` in this process; its wall
    time, phase seconds, accuracy, carried bytes and whole report."""
    stream = tree.get("stream", {})
    all_tasks = stream.get("tasks") or [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    sets = [f"strategy={strategy}", f"stream.tasks={json.dumps(all_tasks[:tasks])}",
            "ray.num_workers=0", f"run.threads={threads}", f"run.storage_path={out}",
            f"name=phase-{strategy}", "run.tracker=none", *(extra or [])]
    cfg = config_from_dict(for_strategy(tree, strategy), sets, source="phase_times")
    started = time.perf_counter()
    report = json.loads(Path(train(cfg)).read_text())
    return {"wall": time.perf_counter() - started, "phases": phase_table(report),
            "accuracy": report.get("average_accuracy"), "memory_bytes": report.get("memory_bytes"),
            "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/split_mnist.yaml")
    parser.add_argument("--strategies", default="binplay,er")
    parser.add_argument("--tasks", type=int, default=2, help="the preset's first N tasks")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="config override (repeatable)")
    parser.add_argument("--output", default=None, help="where the runs go (default: a temp dir)")
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    tree = load_preset(args.config, args.set, strategies)
    out = Path(args.output or tempfile.mkdtemp(prefix="phase-times-"))
    torch.set_num_threads(args.threads)
    print(f"# {args.config}, first {args.tasks} task(s), {args.threads} thread(s), in-process; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    results = {s: run_one(tree, s, args.tasks, args.threads, out / s) for s in strategies}
    print("| strategy | phase | seconds | share of wall |")
    print("|---|---|---|---|")
    for strategy, r in results.items():
        for phase, seconds in sorted(r["phases"].items(), key=lambda kv: -kv[1]):
            print(f"| {strategy} | {phase} | {seconds:.1f} | {100 * seconds / r['wall']:.0f}% |")
        print(f"| {strategy} | **wall** (accuracy {r['accuracy']:.2f}%, carried "
              f"{r['memory_bytes']:,} B) | {r['wall']:.1f} | 100% |")
    if len(strategies) == 2:
        a, b = strategies
        print(f"wall time {a} / {b}: {results[a]['wall'] / results[b]['wall']:.2f}x")


if __name__ == "__main__":
    main()
