"""Ray's own INFO lines kept out of a run's output; ``run.ray_logs: true`` brings them back.

A run prints its progress lines, task summaries, where its results are, and real warnings
and errors. Ray Train's workers otherwise add a line per report ("Reporting training
result N: TrainingReport(...)"), per checkpoint ("Checkpoint successfully created at"),
per prepared model ("Moving model to device") and Ray Data's hints. Those loggers are
raised to WARNING in the driver and in each training worker; warnings and errors still
pass. (Lines of Ray's own processes, the train controller's among them, are Ray's.)
"""

from __future__ import annotations

import logging

RAY_LOGGERS = ("ray.train", "ray.data")


def ray_info_loggers() -> list[str]:
    """The loggers whose INFO lines are Ray's bookkeeping, not the run's."""
    names = list(RAY_LOGGERS)
    try:  # Train v2's report lines come from a logger named by its module's file path
        from ray.train.v2._internal.execution import context

        names.append(context.__file__)
    except ImportError:
        pass
    return names


def quiet_ray_logs(show: bool = False) -> None:
    """Raise Ray's bookkeeping loggers to WARNING in this process (``show``: leave them)."""
    if show:
        return
    for name in ray_info_loggers():
        logging.getLogger(name).setLevel(logging.WARNING)
