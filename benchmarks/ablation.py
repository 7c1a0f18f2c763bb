"""The paper's Table 1 ablation of the base network, on a configurable stream.

    BINPLAY_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/ablation.py \
        --config configs/split_mnist.yaml --set stream.train_per_class=1000

Three in-process runs that differ only in the classifier's switches:
  reference              : real new samples, hard labels for regenerated past samples
  + AE-processed inputs  : new samples passed through the autoencoder
  + soft targets         : ... and soft targets from the frozen classifier (BinPlay)
Prints average accuracy after the last task and wall time of each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from binplay.config import load_config
from binplay.runner import train_in_process
from binplay.storage import RunFiles

VARIANTS = {
    "reference": ["classifier.ae_processed_inputs=false", "classifier.soft_targets=false"],
    "+ AE-processed new samples": ["classifier.ae_processed_inputs=true",
                                   "classifier.soft_targets=false"],
    "+ soft targets (BinPlay)": ["classifier.ae_processed_inputs=true",
                                 "classifier.soft_targets=true"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    rows = []
    for name, switches in VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(args.config, [*args.set, *switches, "ray.num_workers=0",
                                            f"run.storage_path={tmp}"])
            started = time.time()
            train_in_process(cfg, RunFiles(cfg))
            report = json.loads((RunFiles(cfg).local / "report.json").read_text())
        rows.append((name, report["average_accuracy"], report["accuracy_matrix"][-1],
                     time.time() - started))
        print(f"{name}: {report['average_accuracy']:.2f}%", flush=True)
    print("| variant | average accuracy (%) | last row | wall (s) |")
    print("|---|---|---|---|")
    for name, avg, last, wall in rows:
        print(f"| {name} | {avg:.2f} | {' '.join(f'{a:.1f}' for a in last)} | {wall:.0f} |")


if __name__ == "__main__":
    main()
