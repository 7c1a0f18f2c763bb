"""Where and how a run executes: Ray, the replay source, the run's files and tracker. None of
it changes what a run computes, so none of it enters the fingerprint.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from binplay.config.fields import BINPLAY_ONLY, _Strict, setting


class RayConfig(_Strict):
    num_workers: int = Field(1, ge=0, description="0 runs in-process without Ray")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(
        1.0, gt=0, description="GPUs each worker books with use_gpu; a fraction leaves room "
        "on the same GPU for replay actors (replay.gpus_per_actor)")
    max_failures: int = Field(2, ge=0)
    checkpoint_every_epochs: int = Field(5, ge=1)
    address: str | None = Field(None, description="cluster to join; default RAY_ADDRESS or local")
    worker_niceness: int = Field(
        0, ge=0, le=19, description="scheduling niceness of an embedded local Ray's worker "
        "processes (Train workers, Tune trials, replay actors); Ray's own default, 15, "
        "hands the cores to any other process on the machine, so a Ray run beside an "
        "in-process one starved; a cluster's nodes keep the niceness they were started with")


class ReplayConfig(_Strict):
    """Where rehearsal batches are decoded: in the training process, or by Ray actors.

    Both draw the same indices and produce the same batches (codes are a pure function of
    the index), so the mode is left out of the config fingerprint."""

    mode: Literal["inline", "actors"] = setting(
        "inline", description="inline: decode in the training process; actors: Ray actors decode "
        "while the worker trains (each worker keeps `in_flight` requests outstanding); only a "
        "strategy that regenerates from codes has anything to decode", readers=BINPLAY_ONLY)
    actors: int = Field(1, ge=1, description="replay actors per training worker")
    cpus_per_actor: float = Field(0.25, ge=0, description="CPUs each actor books (fractional)")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs each actor books (fractional)")
    in_flight: int = Field(2, ge=1, description="requests kept outstanding per worker (prefetch)")
    steps_per_request: int = Field(
        1, ge=1, description="training steps whose past samples one request carries (decoded "
        "as one batch): fewer, larger requests where a request's overhead outweighs its work")
    max_restarts: int = Field(3, ge=0, description="restarts of a dead actor before the run fails")
    start_timeout_s: float = Field(
        120.0, gt=0, description="seconds the actors may take to start before the job says so")
    nice: int = Field(
        0, ge=0, le=19, description="scheduling niceness of the actor processes, at least "
        "their Ray worker's (ray.worker_niceness on an embedded Ray): 19 lets them decode "
        "mostly on cycles the trainer leaves idle, where they share its cores")


class RunConfig(_Strict):
    storage_path: str = Field(
        "runs", description="runs live in <storage_path>/<name>: checkpoints, stream, report; "
        "a local path, a shared volume or a URI (s3://, gs://)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, gt=0, description="torch threads per process")
    fidelity_samples: int = Field(256, gt=0)
    ray_logs: bool = Field(
        False, description="show Ray's own INFO lines (each report, checkpoint and prepared "
        "model); off: only the run's progress, summaries, warnings and errors")
    keep_checkpoints: int | None = Field(
        2, ge=1, description="Ray Train checkpoints kept (the latest ones; the newest is never "
        "deleted, so resume and the jobs always find it); null keeps every one")
    tracker: Literal["tensorboard", "mlflow", "none"] = Field(
        "tensorboard", description="where a run's metrics go (binplay.tracking): TensorBoard "
        "event files (offline), an MLflow store or server (needs the mlflow package), or none")
    tracking_uri: str | None = Field(
        None, description="tensorboard: a log directory shared by runs (events go to "
        "<tracking_uri>/<name>; default <run>/tensorboard, a learn's <state>/tensorboard); "
        "mlflow: the tracking server or store (default a file store <run>/mlruns)")
