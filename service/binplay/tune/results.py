"""A finished search as files: trials.csv / trials.md, metric_per_task.png and best.yaml.

The winner is chosen among configurations whose trials trained every tuned task: the
average accuracy over the tasks seen so far falls as tasks are added, so a trial ASHA
stopped early would look better than one that finished.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from binplay.config import BinPlayConfig
from binplay.errors import TrainingFailed, first_line, root_cause
from binplay.tune.config import METRIC, TIME_ATTR


@dataclass
class TrialRow:
    trial_id: str
    params: dict[str, Any]
    metric_per_task: dict[int, float] = field(default_factory=dict)  # tasks done -> metric
    wall_seconds: float = 0.0
    status: str = "completed"  # completed, stopped early, error
    error: str = ""

    @property
    def final(self) -> float | None:
        return self.metric_per_task[max(self.metric_per_task)] if self.metric_per_task else None


def rows_from_results(grid, tasks: int) -> list[TrialRow]:
    """One row per trial of a ``ResultGrid``; ``tasks`` is how many tasks a trial tunes on."""
    rows = []
    for result in grid:
        params = dict(result.config or {})
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        row = TrialRow(str(trial_id), params)
        df = result.metrics_dataframe
        if df is not None and TIME_ATTR in df:
            for done, metric in zip(df[TIME_ATTR], df[METRIC]):
                row.metric_per_task[int(done)] = float(metric)  # a restart repeats: keep the last
            row.wall_seconds = float(df["time_total_s"].max()) if "time_total_s" in df else 0.0
        if result.error is not None:  # the trial's own one line (a diverged loss, ...)
            row.status, row.error = "error", first_line(root_cause(result.error))[:200]
        elif max(row.metric_per_task, default=0) < tasks:
            row.status = "stopped early"
        rows.append(row)
    return sorted(rows, key=lambda r: r.trial_id)


def _completed_means(rows: list[TrialRow]) -> dict[str, float]:
    """Mean final metric per configuration (JSON of its params, seed aside), in trial order."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        if row.status == "completed" and row.final is not None:
            key = json.dumps({k: v for k, v in row.params.items() if k != "seed"}, sort_keys=True)
            groups.setdefault(key, []).append(row.final)
    return {key: sum(finals) / len(finals) for key, finals in groups.items()}


def pick_best(rows: list[TrialRow]) -> tuple[dict[str, Any], float]:
    """Parameters (seed aside) whose completed trials have the highest mean final metric.

    A tie keeps the configuration of the earliest trial (``tied_with_best`` names the others).
    """
    means = _completed_means(rows)
    if not means:
        failed = [r for r in rows if r.status == "error"]
        if rows and len(failed) == len(rows):
            raise TrainingFailed(f"every trial failed ({len(rows)} of {len(rows)}), so there is "
                                 f"no best; the first: {failed[0].error} (trials.md has each)")
        raise TrainingFailed("no trial trained every tuned task (see trials.md for errors)")
    key = max(means, key=means.__getitem__)
    return json.loads(key), means[key]


def tied_with_best(rows: list[TrialRow]) -> list[dict[str, Any]]:
    """The other configurations whose mean final metric equals the winner's.

    Validation accuracy moves in steps of one image, so on a small held-out set two draws can
    score exactly the same; the search then says so rather than hiding a coin toss.
    """
    means = _completed_means(rows)
    if not means:
        return []
    winner = max(means, key=means.__getitem__)
    return [json.loads(k) for k, m in means.items() if k != winner and abs(m - means[winner]) < 1e-9]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_tables(rows: list[TrialRow], tasks: int, out: Path) -> None:
    keys = sorted({k for r in rows for k in r.params})
    header = ["trial_id", *keys, *[f"{METRIC}_task_{t}" for t in range(1, tasks + 1)],
              "wall_seconds", "stopped_early", "status", "error"]
    with open(out / "trials.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for r in rows:
            writer.writerow([r.trial_id, *[r.params.get(k, "") for k in keys],
                             *[r.metric_per_task.get(t, "") for t in range(1, tasks + 1)],
                             f"{r.wall_seconds:.1f}", r.status == "stopped early", r.status, r.error])
    lines = ["| " + " | ".join(h for h in header if h != "error") + " |",
             "|" + "---|" * (len(header) - 1)]
    for r in rows:
        cells = [r.trial_id, *[_fmt(r.params.get(k, "")) for k in keys],
                 *[f"{r.metric_per_task[t]:.2f}" if t in r.metric_per_task else "-"
                   for t in range(1, tasks + 1)],
                 f"{r.wall_seconds:.1f}", "yes" if r.status == "stopped early" else "no",
                 r.status + (f": {r.error}" if r.error else "")]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "trials.md").write_text(
        f"# Trials\n\n{METRIC}: % over the tasks seen so far, after each task "
        f"(ASHA's time attribute: {TIME_ATTR}).\n\n" + "\n".join(lines) + "\n")


def plot_metric(rows: list[TrialRow], tasks: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        if not r.metric_per_task:
            continue
        xs = sorted(r.metric_per_task)
        label = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(r.params.items()))
        ax.plot(xs, [r.metric_per_task[x] for x in xs], marker="o",
                linestyle="--" if r.status != "completed" else "-", label=label)
    ax.set_xlabel("task")
    ax.set_ylabel(f"{METRIC} (%)")
    ax.set_xticks(range(1, tasks + 1))
    ax.set_title("search: average accuracy after each task (dashed: stopped early)")
    if ax.lines:  # a search whose every trial failed has nothing to label
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "metric_per_task.png", dpi=100)
    plt.close(fig)


def write_best(cfg: BinPlayConfig, out: Path) -> Path:
    """A complete training config that ``jobs.train --config`` accepts as it is."""
    path = out / "best.yaml"
    text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    path.write_text("# written by jobs.tune: the winning configuration, the whole stream\n" + text)
    return path
