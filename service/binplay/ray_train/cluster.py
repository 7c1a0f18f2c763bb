"""Connect to Ray: the cluster named by RAY_ADDRESS / ray.address, or an embedded local one.

The embedded instance keeps its dashboard on: without the dashboard's state API,
Ray Train's placement-group cleaner cannot see a dead controller and leaks its
resources (RAY-NOTES.md). Start-up is timed because it is paid on every job.
"""

from __future__ import annotations

import os
import time

from binplay.config import BinPlayConfig, ConfigError

# A resource deadlock must fail, not retry forever (Ray's defaults: 60 s, then forever).
WORKER_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
DEFAULT_WORKER_START_TIMEOUT_S = "180"


def worker_env() -> dict[str, str]:
    return {
        WORKER_START_TIMEOUT_ENV: os.environ.get(WORKER_START_TIMEOUT_ENV,
                                                 DEFAULT_WORKER_START_TIMEOUT_S),
        # Ray Data's progress bars become hundreds of blank lines in job logs.
        "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    }


def ensure_ray(cfg: BinPlayConfig, log=print) -> float:
    """Initialise Ray once per process; returns the seconds it took."""
    import ray

    if ray.is_initialized():
        return 0.0
    started = time.time()
    os.environ.update(worker_env())
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address and address.startswith(("http://", "https://")):
        raise ConfigError(f"RAY_ADDRESS={address} is a dashboard URL: submit this job with "
                          f"`ray job submit`, or point RAY_ADDRESS at the cluster (host:6379)")
    if address:
        ray.init(address=address, runtime_env={"env_vars": worker_env()})
        where = f"cluster at {address}"
    else:
        # "local": never attach to some other Ray started on this machine by accident.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=True,
                 dashboard_host="127.0.0.1", runtime_env={"env_vars": worker_env()})
        where = f"embedded local Ray ({os.cpu_count()} CPUs)"
    seconds = time.time() - started
    log(f"ray ready in {seconds:.1f}s: {where}")
    return seconds


def check_fits(cfg: BinPlayConfig) -> None:
    """Refuse a worker group that can never be placed, instead of waiting on it."""
    import ray

    total = ray.cluster_resources()
    need_cpu = cfg.ray.num_workers * cfg.ray.cpus_per_worker
    # Autoscaling clusters may grow; only an embedded/static cluster can be judged here.
    if not os.environ.get("RAY_ADDRESS") and need_cpu > total.get("CPU", 0):
        raise ConfigError(
            f"ray: {cfg.ray.num_workers} workers x {cfg.ray.cpus_per_worker} CPU need {need_cpu} "
            f"CPUs, the local Ray has {total.get('CPU', 0)}; lower ray.cpus_per_worker"
        )
    if cfg.ray.use_gpu and total.get("GPU", 0) < 1 and not os.environ.get("RAY_ADDRESS"):
        raise ConfigError("ray.use_gpu: true but this Ray cluster has no GPU")
