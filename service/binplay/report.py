"""Run reports: report.json, report.md and PNG figures, written from the final state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from binplay import metrics
from binplay.config import BinPlayConfig, StreamConfig
from binplay.data.sources import CLASS_NAMES, class_names
from binplay.memory import by_part, carried, classifier_bytes
from binplay.strategies import Memory

PAPER = {"mnist": 97.2, "fashion_mnist": 81.4, "cifar10": 63.3}
PAPER_TASKS = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
MB = 2**20


def paper_number(stream: StreamConfig) -> float | None:
    """The paper's BinPlay accuracy, only for the stream it was measured on (5 tasks of
    the standard split, every training image): anything else is not like with like."""
    if stream.tasks != PAPER_TASKS or stream.train_per_class or stream.test_per_class:
        return None
    return PAPER.get(stream.dataset)


def build_report(cfg: BinPlayConfig, state: dict[str, Any], memory: Memory,
                 image_shape: tuple[int, ...], wall_seconds: float,
                 paper_method: bool = False) -> dict[str, Any]:
    hist = state["history"]
    acc = hist["accuracy"]
    mb = memory.bytes / MB
    breakdown = carried(state)
    return {
        "name": cfg.name,
        "strategy": cfg.strategy,
        "dataset": cfg.stream.dataset,
        # For the figures: the shipped dataset's names, or the user's (folder names, label_name).
        "class_names": {str(k): v for k, v in class_names(cfg.stream.dataset, cfg.stream.path).items()},
        "tasks": cfg.stream.tasks,
        # Test accuracy: reported, never chosen on. Validation: what every choice reads.
        "average_accuracy": metrics.average_accuracy(acc),
        "val_average_accuracy": metrics.mean_known(hist["val_accuracy"][-1])
        if hist.get("val_accuracy") else None,
        "accuracy_matrix": acc,
        "val_accuracy_matrix": hist.get("val_accuracy", []),
        "val_fraction": cfg.stream.val_fraction,
        "forgetting": metrics.forgetting(acc),
        "bwt": metrics.backward_transfer(acc),
        # Every tensor the state carries into the next task, at its stored size, the
        # classifier aside (binplay.memory); joint adds the data it re-reads.
        "memory_kind": memory.kind,
        "memory_bytes": memory.bytes,
        "memory_mb": mb,
        "classifier_bytes": classifier_bytes(state),
        "memory_breakdown": breakdown,
        "memory_parts": by_part(breakdown),
        "memory_images": memory.images,
        "stores_past_data": memory.stores_data,
        "generative_memory_mb": None if memory.stores_data else mb,
        "equal_memory_buffer_images": metrics.equal_memory_buffer(mb, image_shape),
        "fidelity_psnr": hist["fidelity_psnr"],
        "fidelity_mse": hist["fidelity_mse"],
        # Per task after each task: % of its probe's regenerations the classifier files under
        # their original's class (absent from states written before it was measured).
        "regeneration_accuracy": hist.get("regeneration_accuracy", []),
        "sign_agreement": hist["sign_agreement"],
        "task_seconds": hist["task_seconds"],
        "wall_seconds": wall_seconds,
        "training_seconds": sum(hist["task_seconds"]),
        # Per task, seconds of each phase and of the evaluation after it (where time goes).
        "phase_seconds": hist.get("phase_seconds", []),
        "paper_average_accuracy": paper_number(cfg.stream) if paper_method else None,
        "config": cfg.model_dump(mode="json"),
    }


def phase_line(per_task: list[dict[str, float]]) -> str:
    """``; by phase: warmup 12 s, ...`` summed over the tasks (empty without a record)."""
    totals: dict[str, float] = {}
    for task in per_task:
        for phase, seconds in task.items():
            totals[phase] = totals.get(phase, 0.0) + seconds
    return ("; by phase: " + ", ".join(f"{p} {s:.0f} s" for p, s in totals.items())) if totals else ""


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(report: dict[str, Any]) -> str:
    acc, psnr = report["accuracy_matrix"], report["fidelity_psnr"]
    T = len(acc)
    head = "| after task | " + " | ".join(f"task {j + 1}" for j in range(T)) + " | mean |"
    sep = "|---" * (T + 2) + "|"
    held = f", {report['memory_images']} images" if report["memory_images"] is not None else ""
    stores = " (stores past data)" if report["stores_past_data"] else ""
    lines = [f"# Run `{report['name']}`: {report['strategy']} on {report['dataset']}, "
             f"{T} tasks", "",
             f"- average test accuracy after the last task: **{report['average_accuracy']:.2f}%**"
             + (f" (paper, same stream: {report['paper_average_accuracy']}%)"
                if report["paper_average_accuracy"] else ""),
             "- average validation accuracy (what choices read): "
             + (f"{report['val_average_accuracy']:.2f}%" if report.get("val_average_accuracy")
                is not None else "- (no validation split)"),
             f"- forgetting: {report['forgetting']:.2f} points; BWT: {report['bwt']:.2f}",
             f"- memory carried from task to task: {report['memory_kind']}, "
             f"{report['memory_bytes']:,} B = {report['memory_mb']:.2f} MB{held}{stores}; the "
             f"classifier beside it: {report['classifier_bytes']:,} B"
             + ("" if report["stores_past_data"] else
                f" = a raw buffer of {report['equal_memory_buffer_images']} images")]
    if report["sign_agreement"]:
        lines.append("- encoder sign agreement per task: "
                     + ", ".join(f"{100 * a:.1f}%" for a in report["sign_agreement"]))
    lines += [
             f"- wall time of this invocation: {report['wall_seconds']:.0f} s; training time "
             f"of all tasks, resumes included: {report['training_seconds']:.0f} s"
             + phase_line(report.get("phase_seconds", [])), "",
             "## Accuracy matrix A[t][j] (%)", "", head, sep]
    for t, row in enumerate(acc):
        cells = [_fmt(row[j]) if j < len(row) else "" for j in range(T)]
        lines.append(f"| {t + 1} | " + " | ".join(cells) + f" | {sum(row) / len(row):.1f} |")
    lines += ["", "## Regeneration fidelity PSNR (dB) of each task's probe", "", head, sep]
    lines += _task_rows(psnr, T)
    if any(v is not None for row in report.get("regeneration_accuracy", []) for v in row):
        lines += ["", "## Regenerations the classifier files under their class (%), each "
                  "task's probe", "", head, sep]
        lines += _task_rows(report["regeneration_accuracy"], T)
    return "\n".join(lines) + "\n"


def _task_rows(matrix: list[list[float | None]], tasks: int) -> list[str]:
    """One table row per task learnt: its value for each task so far, and their mean."""
    lines = []
    for t, row in enumerate(matrix):
        vals = [v for v in row if v is not None]
        mean = sum(vals) / len(vals) if vals else None
        cells = [_fmt(row[j]) if j < len(row) else "" for j in range(tasks)]
        lines.append(f"| {t + 1} | " + " | ".join(cells) + f" | {_fmt(mean)} |")
    return lines


def class_name(dataset: str, label: int, names: dict[str, str] | None = None) -> str:
    """A class's name: the report's ``class_names`` (the user's, for user data), else a
    shipped dataset's (``CLASS_NAMES``); ``c<label>`` where none was given."""
    if names and str(label) in names:
        return names[str(label)]
    shipped = CLASS_NAMES.get(dataset, [])
    return shipped[label] if 0 <= label < len(shipped) else f"c{label}"


def _sample_figure(grid: dict[str, Any], path: Path, plt, dataset: str = "",
                   names: dict[str, str] | None = None) -> None:
    """Each probe's original beside its regeneration, a row per task, titled with the class."""
    rows = len(grid["labels"])
    cols = max(len(classes) for _, classes in grid["labels"])
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(1.1 * 2 * cols, 1.35 * rows + 0.4),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (task_id, classes) in enumerate(grid["labels"]):
        for k, label in enumerate(classes):
            for side, key in enumerate(("original", "regenerated")):
                image = grid[key][r][k].permute(1, 2, 0).squeeze(-1).numpy()
                ax = axes[r][2 * k + side]
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
                ax.set_title(f"{'real' if side == 0 else 'regen'} {class_name(dataset, label, names)}",
                             fontsize=6)
        axes[r][0].text(-0.15, 0.5, f"task {task_id + 1}", transform=axes[r][0].transAxes,
                        ha="right", va="center", fontsize=8)
    fig.suptitle("original | regenerated from its code, per task (class in the title)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _figures(report: dict[str, Any], grids: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for t, grid in enumerate(grids):
        if grid["labels"]:
            _sample_figure(grid, out / f"samples_after_task_{t + 1}.png", plt, report["dataset"],
                           report.get("class_names"))
    acc = report["accuracy_matrix"]
    T = len(acc)
    full = torch.full((T, T), float("nan"))
    for t, row in enumerate(acc):
        full[t, : len(row)] = torch.tensor(row)
    fig, ax = plt.subplots(figsize=(1.2 * T + 2, 1.0 * T + 1.5))
    im = ax.imshow(full.numpy(), vmin=0, vmax=100, cmap="viridis")
    for t in range(T):
        for j in range(len(acc[t])):
            ax.text(j, t, f"{acc[t][j]:.0f}", ha="center", va="center", color="white")
    ax.set_xlabel("test task j")
    ax.set_ylabel("after training task t")
    ax.set_xticks(range(T), [str(j + 1) for j in range(T)])
    ax.set_yticks(range(T), [str(t + 1) for t in range(T)])
    fig.colorbar(im, ax=ax, label="accuracy %")
    fig.tight_layout()
    fig.savefig(out / "accuracy_matrix.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for j in range(T):
        xs = list(range(j + 1, T + 1))
        ax.plot(xs, [acc[t][j] for t in range(j, T)], marker="o", label=f"task {j + 1}")
    ax.set_xlabel("after training task")
    ax.set_xticks(range(1, T + 1))  # tasks are whole numbers
    ax.set_ylabel("test accuracy %")
    ax.set_ylim(0, 100)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy_curves.png", dpi=100)
    plt.close(fig)


def write_report(report: dict[str, Any], grids: list[dict[str, Any]], out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (out / "report.md").write_text(markdown(report))
    _figures(report, grids, out)
    return out / "report.json"
