"""The figures of a comparison (``binplay.compare``): test accuracy against the memory
carried, and against the seconds a run trained. Both draw ``compare.summarise``'s rows:
one point per (strategy, memory setting), mean over its seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from binplay.compare import sized_by_memory
from binplay.strategies import STRATEGIES


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    return plt, fig, ax


def _finish(plt, fig, ax, summary: list[dict[str, Any]], path: Path, title: str) -> None:
    for s in summary:  # fine-tuning and joint keep no memory: a level, not a curve
        if STRATEGIES[s["strategy"]].bound:
            ax.axhline(s["mean"], linestyle="--", linewidth=1, color="grey")
            ax.annotate(s["strategy"], (0.01, s["mean"]), xycoords=("axes fraction", "data"),
                        va="bottom", fontsize=8, color="grey")
    ax.set_ylabel("test accuracy after the last task (%)")
    if title:
        ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:  # fine-tuning and joint alone draw no curve
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _curves(summary: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The sized strategies' summary rows, by strategy, in the order of their memory."""
    out: dict[str, list[dict[str, Any]]] = {}
    for s in sorted(summary, key=lambda s: s["memory_mb"]):
        if sized_by_memory(s["strategy"]):
            out.setdefault(s["strategy"], []).append(s)
    return dict(sorted(out.items()))


def plot_accuracy_vs_memory(summary: list[dict[str, Any]], path: Path, dataset: str = "") -> None:
    """Test accuracy against the MB carried, one curve per sized strategy (error bars: sd over
    the seeds that ran, n beside each point), the bounds as levels."""
    from matplotlib.ticker import FixedLocator, NullLocator

    plt, fig, ax = _figure()
    for strategy, points in _curves(summary).items():
        ax.errorbar([s["memory_mb"] for s in points], [s["mean"] for s in points],
                    yerr=[s["std"] for s in points], marker="o", capsize=3, label=strategy)
        for s in points:
            if len(s["seeds"]) > 1:
                ax.annotate(f"n={len(s['seeds'])}", (s["memory_mb"], s["mean"]), fontsize=7,
                            textcoords="offset points", xytext=(4, -10))
    ax.set_xscale("log")
    sizes: list[float] = []
    for size in sorted({round(s["memory_mb"], 2) for s in summary if sized_by_memory(s["strategy"])}):
        if sizes and size <= sizes[-1] * 1.08:  # sizes a few % apart (0.51, 0.53) share a tick
            sizes.pop()
        sizes.append(size)
    ax.xaxis.set_major_locator(FixedLocator(sizes))  # the sizes run, not powers of ten
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{x:g}" for x in sizes])
    ax.set_xlabel("memory carried from task to task (MB; the classifier beside it)")
    _finish(plt, fig, ax, summary, path,
            f"{dataset}: mean +- sd over seeds (n where more than one)" if dataset else "")


def plot_accuracy_vs_time(summary: list[dict[str, Any]], path: Path, dataset: str = "") -> None:
    """Test accuracy against the seconds a run trained (mean over seeds), one point per memory
    setting labelled with it, joined in the order of memory: how long each method takes to
    reach each accuracy on the machine (and load) the runs had."""
    plt, fig, ax = _figure()
    for strategy, points in _curves(summary).items():
        xs = [s["seconds_per_run"] for s in points]
        ax.plot(xs, [s["mean"] for s in points], marker="o", label=strategy)
        for s in points:
            ax.annotate(s["memory_setting"], (s["seconds_per_run"], s["mean"]), fontsize=7,
                        textcoords="offset points", xytext=(4, -10))
    ax.set_xscale("log")
    ax.set_xlabel("training seconds per run (mean over seeds; log scale)")
    _finish(plt, fig, ax, summary, path,
            f"{dataset}: time to each accuracy (seconds depend on the machine and its load)"
            if dataset else "")
