"""Run reports: report.json, report.md and PNG figures, written from the final state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from binplay import metrics
from binplay.config import BinPlayConfig
from binplay.models.autoencoder import parameter_megabytes

PAPER = {"mnist": 97.2, "fashion_mnist": 81.4, "cifar10": 63.3}


def build_report(cfg: BinPlayConfig, state: dict[str, Any], decoder: torch.nn.Module,
                 image_shape: tuple[int, ...], wall_seconds: float) -> dict[str, Any]:
    hist = state["history"]
    acc = hist["accuracy"]
    mb = parameter_megabytes(decoder)
    return {
        "name": cfg.name,
        "dataset": cfg.stream.dataset,
        "tasks": cfg.stream.tasks,
        "average_accuracy": metrics.average_accuracy(acc),
        "accuracy_matrix": acc,
        "forgetting": metrics.forgetting(acc),
        "bwt": metrics.backward_transfer(acc),
        "generative_memory_mb": mb,
        "equal_memory_buffer_images": metrics.equal_memory_buffer(mb, image_shape),
        "fidelity_psnr": hist["fidelity_psnr"],
        "fidelity_mse": hist["fidelity_mse"],
        "sign_agreement": hist["sign_agreement"],
        "task_seconds": hist["task_seconds"],
        "wall_seconds": wall_seconds,
        "training_seconds": sum(hist["task_seconds"]),
        "paper_average_accuracy": PAPER.get(cfg.stream.dataset),
        "config": cfg.model_dump(mode="json"),
    }


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(report: dict[str, Any]) -> str:
    acc, psnr = report["accuracy_matrix"], report["fidelity_psnr"]
    T = len(acc)
    head = "| after task | " + " | ".join(f"task {j + 1}" for j in range(T)) + " | mean |"
    sep = "|---" * (T + 2) + "|"
    lines = [f"# BinPlay run `{report['name']}` ({report['dataset']})", "",
             f"- average accuracy after the last task: **{report['average_accuracy']:.2f}%**"
             + (f" (paper: {report['paper_average_accuracy']}%)"
                if report["paper_average_accuracy"] else ""),
             f"- forgetting: {report['forgetting']:.2f} points; BWT: {report['bwt']:.2f}",
             f"- generative memory (decoder, fp32): {report['generative_memory_mb']:.2f} MB "
             f"= a raw buffer of {report['equal_memory_buffer_images']} images",
             "- encoder sign agreement per task: "
             + ", ".join(f"{100 * a:.1f}%" for a in report["sign_agreement"]),
             f"- wall time of this invocation: {report['wall_seconds']:.0f} s; training time "
             f"of all tasks, resumes included: {report['training_seconds']:.0f} s", "",
             "## Accuracy matrix A[t][j] (%)", "", head, sep]
    for t, row in enumerate(acc):
        cells = [_fmt(row[j]) if j < len(row) else "" for j in range(T)]
        lines.append(f"| {t + 1} | " + " | ".join(cells) + f" | {sum(row) / len(row):.1f} |")
    lines += ["", "## Regeneration fidelity PSNR (dB) of each task's probe", "", head, sep]
    for t, row in enumerate(psnr):
        vals = [v for v in row if v is not None]
        mean = sum(vals) / len(vals) if vals else None
        cells = [_fmt(row[j]) if j < len(row) else "" for j in range(T)]
        lines.append(f"| {t + 1} | " + " | ".join(cells) + f" | {_fmt(mean)} |")
    return "\n".join(lines) + "\n"


def _figures(report: dict[str, Any], grids: list[torch.Tensor], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid, save_image

    for t, grid in enumerate(grids):
        flat = grid.flatten(0, 1).float() / 255.0
        save_image(make_grid(flat, nrow=grid.shape[1], padding=2, pad_value=1.0),
                   out / f"samples_after_task_{t + 1}.png")
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
    ax.set_ylabel("test accuracy %")
    ax.set_ylim(0, 100)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy_curves.png", dpi=100)
    plt.close(fig)


def write_report(report: dict[str, Any], grids: list[torch.Tensor], out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (out / "report.md").write_text(markdown(report))
    _figures(report, grids, out)
    return out / "report.json"
