"""Draws docs/figures/accuracy_vs_memory_split_mnist_issue26.png from the split-MNIST runs
docs/RESULTS.md records (issue 26), with the plot `jobs.compare` uses.

Why not `jobs.compare --no-train`: these runs were trained across several sessions and most
of their run directories are gone; their test accuracies after task 5 are in RESULTS.md,
each beside the command that produced it. This file copies those numbers, run by run; it
trains and measures nothing.

    PYTHONPATH=service .venv/bin/python docs/figures/split_mnist_issue26.py
"""

from __future__ import annotations

from pathlib import Path

from binplay.compare import summarise
from binplay.compare_figures import plot_accuracy_vs_memory
from binplay.memory import MB

# (strategy, bytes carried, test % after task 5 per seed 0, 1, 2 that ran), from RESULTS.md:
# "Accuracy against memory, split-MNIST" and the 3-seed table at 594,576 B. Fine-tuning and
# joint training are left out: their levels (about 20 and 99) would flatten the curves.
RUNS: list[tuple[str, int, list[float]]] = [
    ("binplay", 260_582, [92.13]),                  # 64 decoder channels, hidden 51
    ("er", 261_405, [92.83]),                       # configs/baselines/split_mnist_er.yaml
    ("derpp", 261_525, [92.89]),                    # configs/baselines/split_mnist_derpp.yaml
    ("binplay", 594_576, [97.43, 97.54, 97.36]),    # configs/split_mnist.yaml
    ("er", 594_245, [95.48, 95.24, 95.43]),
    ("derpp", 594_000, [96.24, 96.09, 96.05]),
    ("binplay", 1_043_836, [97.64, 97.68, 97.71]),
    ("er", 1_047_975, [96.93, 96.71, 96.59]),
    ("derpp", 1_048_575, [97.32, 97.57, 97.40]),
    ("binplay", 2_096_388, [97.79]),
    ("er", 2_096_735, [97.58]),
    ("derpp", 2_097_150, [97.89]),
]


def rows() -> list[dict]:
    out = []
    for strategy, carried, accuracies in RUNS:
        for seed, accuracy in enumerate(accuracies):
            out.append({"strategy": strategy, "seed": seed, "memory_setting": f"{carried} B",
                        "memory_mb": carried / MB, "average_accuracy": accuracy,
                        "val_average_accuracy": None, "classifier_bytes": 1_050_904,
                        "stores_past_data": strategy != "binplay", "training_seconds": 0.0})
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("accuracy_vs_memory_split_mnist_issue26.png")
    plot_accuracy_vs_memory(summarise(rows()), path, "mnist")
    print(f"-> {path}")
