"""Tune's logger callbacks for ``run.tracker: none``.

Tune adds its own TensorBoard logger to every search unless one is given (Ray 2.60,
``ray/tune/utils/callback.py``); giving it this one, which writes nothing, keeps a search
under ``run.tracker: none`` free of event files. Tune's CSV and JSON loggers stay: they are
what the search's results are read back from. Imported only where Ray is (a search).
"""

from __future__ import annotations

from ray.tune.logger import TBXLoggerCallback


class NoTensorBoard(TBXLoggerCallback):
    """Stands in for Tune's TensorBoard logger and writes nothing (a module-level class:
    Tune pickles a search's callbacks with its state, for a resume)."""

    def log_trial_start(self, trial) -> None:
        pass

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        pass

    def log_trial_end(self, trial, failed: bool = False) -> None:
        pass
