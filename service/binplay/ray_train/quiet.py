"""Ray's own bookkeeping kept out of a run's output; ``run.ray_logs: true`` brings it back.

A run prints its progress lines, task summaries, where its results are, and real warnings
and errors. Left alone, Ray adds a line per report ("Reporting training result N:
TrainingReport(...)"), per checkpoint ("Checkpoint successfully created at"), per
prepared model ("Moving model to device"), the train controller's resource requests and
worker-group start ("Requesting resources", "Started training worker group"), "Setting up
process group", Ray Data's progress-bar hints and a deprecation warning about Ray's own
internal use of ``ExecutionOptions.exclude_resources``. Each is quieted by the means Ray
supports, and each only below WARNING, except the two named hints; a warning Ray logs with
a traceback it calls safe to ignore (``ONE_LINE_WARNINGS``) keeps its message on one line:

- the driver: ``ray.init(logging_level=WARNING)`` (the ``ray`` logger);
- Ray Train's controller and workers: ``ray.train.RunConfig(logging_config=...)``;
- every worker process at start: ``setup_worker`` as Ray's ``worker_process_setup_hook``
  (it runs before Ray Train configures a worker's loggers, so ``train_loop_per_worker``
  repeats ``quiet_ray_logs``).

(``ray.init(logging_config=...)`` would also do, but it drops the ``(RayTrainWorker
pid=...)`` prefix that says which process printed a line.) On an embedded local Ray the
train controller's ``PreemptionWatcher`` is off: it watches for nodes being drained,
which one machine never sees, and its start logs a core-worker error line that is not an
error of the run (``RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=0``, Ray's own switch, left as
the environment sets it); and Ray's notice that it turned token authentication on by
default is left out (its logger at ERROR while the embedded Ray starts), the run's
"ray ready" line saying so instead. (Setting ``RAY_AUTH_MODE=token`` would silence it
too, but only before Ray reads its config at import: set later, the head refused its
own driver.)
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager

RAY_LOGGERS = ("ray.train", "ray.data", "ray.tune")
# Loggers that say nothing but hints at WARNING level ("Progress bars disabled. To enable...").
HINT_LOGGERS = ("ray.data._internal.progress",)
# Ray Train's own call into Ray Data warns about an option the run never sets.
RAY_INTERNAL_DEPRECATIONS = (r"`ExecutionOptions\.exclude_resources` is deprecated",)

# Ray Train's controller renews its resource request with the autoscaling coordinator every
# few seconds; under CPU load a renewal times out and Ray logs it with a 30-line traceback while
# saying it is safe to ignore when transient (seen in `make demo` beside other training). It
# stays a warning, on one line that says it is one.
ONE_LINE_WARNINGS = ("ray.train.v2._internal.execution.scaling_policy.autoscaling_coordinator_client",)

HOOK = "binplay.ray_train.quiet.setup_worker"
SHOW_ENV = "BINPLAY_RAY_LOGS"  # "1": the run asked for Ray's lines (run.ray_logs)
PIN_ENV = "BINPLAY_PIN_RAY_ADDRESS"  # "1": name this Ray in every worker (searches)
# An embedded Ray's settings, unless the environment sets them.
EMBEDDED_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}
# Notices an embedded Ray logs at WARNING while it starts that are not about the run.
EMBEDDED_NOTICES = ("ray._private.authentication.authentication_token_setup",)


def ray_info_loggers() -> list[str]:
    """The loggers whose INFO lines are Ray's bookkeeping, not the run's."""
    names = list(RAY_LOGGERS)
    try:  # Train v2's report lines come from a logger named by its module's file path
        from ray.train.v2._internal.execution import context

        names.append(context.__file__)
    except ImportError:
        pass
    return names


class OneLineWarning(logging.Filter):
    """A record's traceback dropped and its message marked ``WARNING:`` on one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            message = " ".join(record.getMessage().split())
            record.msg, record.args = f"WARNING: {message}", ()
            record.exc_info, record.exc_text = None, None
        return True


def quiet_ray_logs(show: bool = False) -> None:
    """Raise Ray's bookkeeping loggers to WARNING in this process (``show``: leave them)."""
    if show:
        return
    for name in ray_info_loggers():
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in HINT_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ONE_LINE_WARNINGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineWarning) for f in logger.filters):
            logger.addFilter(OneLineWarning())
    for message in RAY_INTERNAL_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)


def _ignore_interrupted_signaler(previous):
    """Ray Data's file listing interrupts its own pool when the listing is done; when that
    lands between the pool's join and its last put, the pool's completion-signaler thread
    dies of the ``InterruptedError`` it was sent (seen once in six demo runs: a 12-line
    traceback mid-run, the read complete and the run unharmed). Exactly that thread and
    error are dropped; every other thread's exception goes to the previous hook."""

    def hook(args) -> None:
        name = getattr(args.thread, "name", "") or ""
        if not (issubclass(args.exc_type, InterruptedError)
                and name.endswith("/completion-signaler")):
            previous(args)

    return hook


def setup_worker() -> None:
    """Ray's ``worker_process_setup_hook``: every worker process of the job runs it first."""
    import threading

    if os.environ.get(PIN_ENV) == "1":
        from binplay.ray_train.cluster import pin_gcs_address

        pin_gcs_address()
    show = os.environ.get(SHOW_ENV) == "1"
    quiet_ray_logs(show)
    if not show:
        threading.excepthook = _ignore_interrupted_signaler(threading.excepthook)


def hook_env(show: bool, pin_address: bool) -> dict[str, str]:
    """What ``setup_worker`` reads, for the job's ``runtime_env``."""
    return {SHOW_ENV: "1" if show else "0", PIN_ENV: "1" if pin_address else "0"}


@contextmanager
def embedded_start(show: bool):
    """While an embedded Ray starts: its defaults set and its notices quiet."""
    for key, value in EMBEDDED_ENV.items():
        os.environ.setdefault(key, value)
    loggers = [logging.getLogger(name) for name in EMBEDDED_NOTICES]
    levels = [logger.level for logger in loggers]
    if not show:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def ray_logging_level(show: bool) -> int:
    """``ray.init``'s level for the driver's ``ray`` logger."""
    return logging.INFO if show else logging.WARNING


def train_logging_config(show: bool):
    """Ray Train's: the controller's and workers' ``ray.train`` lines at WARNING."""
    import ray.train

    return ray.train.LoggingConfig(log_level="INFO" if show else "WARNING")
