"""A run's metrics in a standard tracker: TensorBoard event files (default, offline) or MLflow.

The process that prints a run's progress lines owns its tracker (the job's own process
in-process, the rank-0 worker under Ray Train), so what the tracker shows is what was
printed. Nothing here feeds back into training: events are written from numbers already
computed, and writing them changes none.

Written with tensorboardX's ``SummaryWriter`` (``run.tracker: tensorboard``) into
``<run>/tensorboard/`` (a learn: ``<state>/tensorboard/``; ``run.tracking_uri``: a log
directory shared by runs, ``<uri>/<name>/``), or through Ray's ``setup_mlflow``
(``run.tracker: mlflow``, only where the mlflow package is installed). Tags:

- each epoch, step = its position in the run (task x epochs per task + epoch, from 1):
  ``loss/<phase>``, ``samples_per_s/<phase>``, ``epoch_seconds/<phase>``,
  ``replay_wait/<phase>`` (share of the epoch spent waiting for rehearsal batches);
- each task, step = the number of tasks learnt: ``accuracy/test_average``,
  ``accuracy/val_average``, ``accuracy/test_task_<j>``, ``accuracy/val_task_<j>``,
  ``psnr/task_<j>``, ``psnr/mean``, ``regen_accuracy/task_<j>`` and ``regen_accuracy/mean``
  (% of a task's probe regenerations the classifier files under their class),
  ``memory/carried_bytes``, ``memory/classifier_bytes``
  and ``last_loss/<phase>`` (the phase's final epoch). A Tune trial reports the same
  per-task scalars to Tune, whose own TensorBoard logger writes them into the trial's
  directory (``binplay.tune.trainable``; none under ``run.tracker: none``).
"""

from __future__ import annotations

import importlib.util
import tempfile
import uuid
from pathlib import Path
from typing import Any

from binplay import metrics as run_metrics
from binplay.config import BinPlayConfig, ConfigError
from binplay.storage import is_uri, run_root

TENSORBOARD_DIR, MLFLOW_DIR = "tensorboard", "mlruns"
TASK_GROUPS = ("accuracy", "psnr", "regen_accuracy", "memory", "last_loss")


def check_tracker(cfg: BinPlayConfig) -> None:
    """Refuse, on the driver and before anything starts, a tracker that cannot be opened."""
    if cfg.run.tracker == "mlflow" and importlib.util.find_spec("mlflow") is None:
        raise ConfigError("run.tracker: mlflow needs the `mlflow` package, which is not "
                          "installed (pip install mlflow); or use run.tracker=tensorboard")


def tracking_location(cfg: BinPlayConfig, root: str | None = None) -> str:
    """Where the run's tracker writes; ``root`` replaces the run's place (a learn's state)."""
    uri = cfg.run.tracking_uri
    if uri is not None and not is_uri(uri):
        uri = str(Path(uri).resolve())
    root = (root or run_root(cfg)).rstrip("/")
    if cfg.run.tracker == "mlflow":
        return uri or (f"{root}/{MLFLOW_DIR}" if is_uri(root) else f"file://{root}/{MLFLOW_DIR}")
    return f"{uri.rstrip('/')}/{cfg.name}" if uri else f"{root}/{TENSORBOARD_DIR}"


def tracked(metrics: dict[str, Any]) -> dict[str, float]:
    """The per-task scalars among a task end's metrics (what a Tune trial passes on)."""
    return {k: float(v) for k, v in metrics.items()
            if k.split("/")[0] in TASK_GROUPS and isinstance(v, (int, float))}


def task_scalars(metrics: dict[str, Any], memory_bytes: int, classifier_bytes: int,
                 last_loss: dict[str, float]) -> dict[str, float]:
    """A task end's numbers as flat scalars (tasks without test or validation rows left out)."""
    out: dict[str, float] = {"memory/carried_bytes": float(memory_bytes),
                             "memory/classifier_bytes": float(classifier_bytes)}
    for task_name, mean_name, key in (
            ("accuracy/test_task_", "accuracy/test_average", "accuracy_row"),
            ("accuracy/val_task_", "accuracy/val_average", "val_accuracy_row"),
            ("psnr/task_", "psnr/mean", "fidelity_psnr_row"),
            ("regen_accuracy/task_", "regen_accuracy/mean", "regeneration_accuracy_row")):
        row = metrics.get(key) or []
        out.update({f"{task_name}{j + 1}": float(v) for j, v in enumerate(row) if v is not None})
        mean = run_metrics.mean_known(row)
        if mean is not None:
            out[mean_name] = float(mean)
    out.update({f"last_loss/{phase}": loss for phase, loss in last_loss.items()})
    return out


class Tracker:
    """The tracker of ``run.tracker: none`` and of every rank but 0: it writes nothing, but
    still gives the per-task scalars to the caller (Tune reports them)."""

    def __init__(self) -> None:
        self.last_loss: dict[str, float] = {}

    def epoch(self, step: int, phase: str, loss: float, samples_per_s: float, seconds: float,
              replay_wait: float | None = None) -> None:
        self.last_loss[phase] = loss
        scalars = {f"loss/{phase}": loss, f"samples_per_s/{phase}": samples_per_s,
                   f"epoch_seconds/{phase}": seconds}
        if replay_wait is not None:
            scalars[f"replay_wait/{phase}"] = replay_wait / max(seconds, 1e-9)
        self.write(scalars, step)

    def task_end(self, task: int, metrics: dict[str, Any], memory_bytes: int,
                 classifier_bytes: int) -> dict[str, float]:
        """Write task ``task``'s numbers (0-based; logged at step task + 1) and return them."""
        if "accuracy_row" not in metrics:  # ranks other than 0 evaluate nothing
            return {}
        scalars = task_scalars(metrics, memory_bytes, classifier_bytes, self.last_loss)
        self.last_loss = {}
        self.write(scalars, task + 1)
        return scalars

    def write(self, scalars: dict[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    """tensorboardX's SummaryWriter, opened at the first event (a run that is already
    complete leaves no empty file). At a URI the events are written to a local directory
    and copied up after every write, so a run killed mid-task keeps its curves."""

    def __init__(self, location: str):
        super().__init__()
        self.location, self.writer = location, None
        self._tmp = tempfile.TemporaryDirectory(prefix="binplay-tb-") if is_uri(location) else None

    def write(self, scalars: dict[str, float], step: int) -> None:
        if self.writer is None:
            from tensorboardX import SummaryWriter

            # The file name has the second it was opened in: two runs into one log directory
            # within a second (two quick learns) would share it, and the second overwrite it.
            self.writer = SummaryWriter(self._tmp.name if self._tmp else self.location,
                                        filename_suffix=f".{uuid.uuid4().hex[:8]}")
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, global_step=step)
        # Flushed at once: a diverged or killed run's last epochs are the ones to look at.
        self.writer.flush()
        if self._tmp is not None:
            import pyarrow.fs as pafs

            fs, path = pafs.FileSystem.from_uri(self.location)
            fs.create_dir(path, recursive=True)
            pafs.copy_files(self._tmp.name, path, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=fs)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class MlflowTracker(Tracker):
    """An MLflow run opened with Ray's ``setup_mlflow`` (one per run; the config as params)."""

    def __init__(self, cfg: BinPlayConfig, location: str):
        super().__init__()
        from ray.air.integrations.mlflow import setup_mlflow
        from ray.tune.utils import flatten_dict

        # rank_zero_only=False: only rank 0 opens a tracker at all (open_tracker).
        self.mlflow = setup_mlflow(
            config=flatten_dict(cfg.model_dump(mode="json"), delimiter="."),
            tracking_uri=location, experiment_name=cfg.name, run_name=cfg.name,
            create_experiment_if_not_exists=True, rank_zero_only=False)

    def write(self, scalars: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics(scalars, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


def tune_callbacks(cfg: BinPlayConfig, search_dir: str) -> list:
    """A search's Tune callbacks for its tracker. TensorBoard needs none: Tune's default
    ``TBXLoggerCallback`` already writes every trial's reports into its directory. None: a
    TensorBoard logger that writes nothing, in place of Tune's. MLflow: Ray's
    ``MLflowLoggerCallback`` (one MLflow run per trial, on the search's driver)."""
    if cfg.run.tracker == "none":
        from binplay.tune.loggers import NoTensorBoard

        return [NoTensorBoard()]
    if cfg.run.tracker != "mlflow":
        return []
    check_tracker(cfg)
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = cfg.run.tracking_uri or f"file://{Path(search_dir).resolve()}/{MLFLOW_DIR}"
    return [MLflowLoggerCallback(tracking_uri=uri, experiment_name=Path(search_dir).name)]


def open_tracker(cfg: BinPlayConfig, is_main: bool, root: str | None = None) -> Tracker:
    """The tracker of this process: a writing one on rank 0 only. ``root``: where the run's
    tracking lives instead of its own place (jobs.learn: the state)."""
    if not is_main or cfg.run.tracker == "none":
        return Tracker()
    check_tracker(cfg)
    if cfg.run.tracker == "mlflow":
        return MlflowTracker(cfg, tracking_location(cfg, root))
    return TensorBoardTracker(tracking_location(cfg, root))
