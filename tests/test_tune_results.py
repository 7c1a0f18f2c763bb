"""A search's outcome from its trials' rows: the best, or a line saying why there is none."""

from __future__ import annotations

import pytest

from binplay.errors import TrainingFailed
from binplay.tune.results import TrialRow, pick_best, tied_with_best

DIVERGED = "task 1, classifier phase, epoch 1: the loss is nan (training diverged; ...)"


def _row(trial: str, lr: float, status: str, metric: dict[int, float] | None = None) -> TrialRow:
    return TrialRow(trial, {"classifier.lr": lr}, metric or {}, status=status,
                    error=DIVERGED if status == "error" else "")


def test_a_search_whose_every_trial_failed_names_no_best():
    rows = [_row("a", 1e30, "error"), _row("b", 1e35, "error")]
    with pytest.raises(TrainingFailed) as info:
        pick_best(rows)
    message = str(info.value)
    assert message.startswith("every trial failed (2 of 2)") and "no best" in message
    assert "training diverged" in message and "\n" not in message


def test_failed_trials_are_never_the_best():
    rows = [_row("a", 1e30, "error"), _row("b", 1e-3, "completed", {1: 90.0, 2: 80.0}),
            _row("c", 1e-9, "stopped early", {1: 95.0})]
    assert pick_best(rows) == ({"classifier.lr": 1e-3}, 80.0)
    with pytest.raises(TrainingFailed, match="no trial trained every tuned task"):
        pick_best([rows[0], rows[2]])  # not all failed: one was stopped early


def test_a_tie_keeps_the_earliest_trial_and_names_the_other():
    rows = [_row("a", 3e-4, "completed", {1: 88.0, 3: 54.5}), _row("b", 1e-3, "completed", {3: 50.0}),
            _row("c", 2e-3, "completed", {1: 89.0, 3: 54.5}), _row("d", 5e-3, "stopped early", {1: 99.0})]
    assert pick_best(rows) == ({"classifier.lr": 3e-4}, 54.5)
    assert tied_with_best(rows) == [{"classifier.lr": 2e-3}]
    rows[2].metric_per_task[3] = 54.4
    assert tied_with_best(rows) == []
