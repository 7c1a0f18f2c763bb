"""Use one version of a state: load it, score images, accuracy per class and per task.

A version's state.pt is copied to a local directory and read by ``inference.SavedRun``
(``torch.load(weights_only=True)``: loading never runs code from the file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from binplay.data.types import ImageSet
from binplay.inference import SavedRun
from binplay.scoring import class_mask, masked_logits, score
from binplay.versions.store import StateStore


def open_version(store: StateStore, version: int | None, workdir: str | Path) -> tuple[int, SavedRun]:
    """(version number, its models ready to use); the latest when ``version`` is None."""
    chosen = store.resolve(version)
    path = store.fetch_state(chosen, Path(workdir) / f"v{chosen:04d}")
    return chosen, SavedRun(path, origin=store.location(f"versions/v{chosen:04d}/{path.name}"))


def image_shape(run: SavedRun) -> tuple[int, int, int]:
    c, h, w = (int(d) for d in run.state["image_shape"])
    return c, h, w


@torch.no_grad()
def probabilities(run: SavedRun, images: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Class probabilities (N, head) of uint8 images; classes never learnt get 0."""
    seen = class_mask(run.ledger.classes, run.state["num_classes"], run.device)
    classifier = run.models["classifier"].eval()
    parts = [torch.softmax(masked_logits(classifier(images[s:s + batch].to(run.device).float() / 255),
                                         seen), dim=1).cpu()
             for s in range(0, len(images), batch)]
    return torch.cat(parts) if parts else torch.empty(0, run.state["num_classes"])


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def accuracy_report(run: SavedRun, data: ImageSet) -> dict[str, Any]:
    """Accuracy per class (every label in ``data``) and per learnt task (the rows of its
    classes); labels of classes no task has learnt are counted apart, as misses."""
    seen = class_mask(run.ledger.classes, run.state["num_classes"], run.device)
    scores = score(run.models["classifier"], seen, [("data", (data.images, data.labels))])
    per_class = {str(c): _rounded(a) for c, a in scores.per_class().items()}
    within = {task.task_id: scores.within(task.classes) for task in run.ledger.tasks}
    per_task = {str(t): _rounded(a) for t, a in within.items() if a is not None}
    learnt = set(run.ledger.classes)
    unknown = sorted(c for c in set(data.labels.tolist()) if c not in learnt)
    return {"samples": len(data.labels), "accuracy": _rounded(scores.overall()),
            "accuracy_per_class": per_class, "accuracy_per_task": per_task,
            "average_task_accuracy": (round(sum(per_task.values()) / len(per_task), 4)
                                      if per_task else None),
            "classes_not_learnt": unknown, **scores.confusion_report(run.state["num_classes"])}


def write_evaluation(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """evaluation.json and evaluation.md (the same numbers as tables)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Evaluation of {result['state']} version {result['version']}", "",
             f"- data: `{result['data']}` ({result['samples']} images)",
             f"- accuracy: **{result['accuracy']}%**, mean over tasks: "
             f"{result['average_task_accuracy']}%", "",
             "| task | classes | accuracy % |", "|---|---|---|"]
    for task in result["tasks"]:
        acc = result["accuracy_per_task"].get(str(task["task_id"]), "-")
        lines.append(f"| {task['task_id']} | {task['classes']} | {acc} |")
    lines += ["", "| class | accuracy % |", "|---|---|"]
    lines += [f"| {c} | {a} |" for c, a in result["accuracy_per_class"].items()]
    if result["most_confused"]:
        lines += ["", "| most confused: class | taken for | images | % of the class |",
                  "|---|---|---|---|"]
        lines += [f"| {m['true']} | {m['predicted']} | {m['count']} | {m['percent_of_class']} |"
                  for m in result["most_confused"]]
    if result["classes_not_learnt"]:
        lines += ["", f"Classes in the data that no task has learnt: {result['classes_not_learnt']}"]
    (out / "evaluation.md").write_text("\n".join(lines) + "\n")
    return out / "evaluation.json", out / "evaluation.md"
