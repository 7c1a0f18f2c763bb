"""What BinPlay's decoder holds per byte: fidelity and class identity of its regenerations
against the bytes carried, over a grid of decoder sizes and memorised samples.

    .venv/bin/python benchmarks/decoder_capacity.py --config configs/split_cifar10.yaml \
        --vary autoencoder.hidden=43,156,345 --vary autoencoder.samples_per_class=250,500,1000

Every combination of the ``--vary`` values (and the fixed ``--set`` overrides) trains
BinPlay on the preset's first ``--tasks`` tasks in this process, one torch thread unless
``--threads`` (``benchmarks/phase_times.py``'s runner). From each run's report it prints:
the bytes carried into the next task, the PSNR of the probe regenerations against their
originals and the % of them the classifier after the task files under their original's
class (both per task, after the last task), the accuracy on test and validation, and the
seconds of the decoder phase. The classifier that judges identity is the run's own,
trained on real images beside the regenerations (the preset's `mix_real_inputs`).
Prints figures only; no thresholds. Accuracy columns may be read with other runs on the
machine; the seconds only when it ran alone.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import torch
from phase_times import run_one

from binplay.config import load_preset


def _grid(varies: list[str]) -> list[list[str]]:
    """``key=v1,v2`` options -> every combination as a list of ``key=v`` overrides."""
    axes = []
    for vary in varies:
        key, _, values = vary.partition("=")
        if not key or not values:
            raise SystemExit(f"--vary {vary!r}: expected KEY=V1,V2,...")
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [list(combo) for combo in itertools.product(*axes)] or [[]]


def _row(sets: list[str], result: dict) -> str:
    report = result["report"]
    psnr = " ".join(f"{v:.1f}" for v in report["fidelity_psnr"][-1])
    regen = report.get("regeneration_accuracy") or [[]]
    identity = " ".join("-" if v is None else f"{v:.1f}" for v in regen[-1])
    val = report.get("val_average_accuracy")
    decoder_s = result["phases"].get("decoder", 0.0)
    return (f"| {' '.join(s.split('.')[-1] for s in sets) or 'preset'} | {result['memory_bytes']:,} | "
            f"{psnr} | {identity} | {result['accuracy']:.2f} ({'-' if val is None else f'{val:.2f}'}) "
            f"| {decoder_s:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/split_cifar10.yaml")
    parser.add_argument("--tasks", type=int, default=1, help="the preset's first N tasks")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vary", action="append", default=[],
                        help="KEY=V1,V2,... a grid axis (repeatable; every combination runs)")
    parser.add_argument("--set", action="append", default=[], help="fixed override (repeatable)")
    parser.add_argument("--output", default=None, help="where the runs go (default: a temp dir)")
    args = parser.parse_args()
    tree = load_preset(args.config, args.set, ["binplay"])
    out = Path(args.output or tempfile.mkdtemp(prefix="decoder-capacity-"))
    torch.set_num_threads(args.threads)
    rows = []
    for i, sets in enumerate(_grid(args.vary)):
        result = run_one(tree, "binplay", args.tasks, args.threads, out / f"run{i}", sets)
        rows.append(_row(sets, result))
        print(rows[-1], flush=True)  # as it goes, between the runs' progress lines
    print(f"\n# {args.config}, first {args.tasks} task(s), {args.threads} thread(s), fixed: "
          f"{' '.join(args.set) or 'none'}")
    print("| setting | carried B | PSNR dB per task | regenerations filed right % | test % (val) "
          "| decoder s |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
