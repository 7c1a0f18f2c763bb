"""The errors a user can act on: each carries one line that names the problem.

Jobs print them on one line and exit 2 (bad input: config, data, checkpoint) or 1
(training itself failed). ``one_line`` digs a domain error out of the wrappers that
Ray puts around an exception raised inside a worker.
"""

from __future__ import annotations

from binplay.codes import CapacityError
from binplay.config import ConfigError
from binplay.data.sources import DataError
from binplay.state import StateError

DOMAIN_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, StateError, CapacityError)


class TrainingFailed(RuntimeError):
    """Training stopped for a reason that is not bad input (the message says where)."""


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: Ray's RayTaskError keeps the original in ``.cause``."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def worker_error(failures: dict[int, BaseException]) -> Exception:
    """One error for a failed worker group: the first domain error as itself (exit 2), or
    ``TrainingFailed`` naming the rank and the exception."""
    for rank, exc in sorted(failures.items()):
        cause = root_cause(exc)
        for kind in (*DOMAIN_ERRORS, TrainingFailed):
            if isinstance(cause, kind):
                return kind(f"{first_line(cause)} (worker {rank})")
    rank, exc = sorted(failures.items())[0]
    cause = root_cause(exc)
    return TrainingFailed(f"worker {rank} failed: {type(cause).__name__}: {first_line(cause)} "
                          f"(the Ray log above has the traceback)")
