"""Connect to Ray: the cluster named by RAY_ADDRESS / ray.address, or an embedded local one.

The embedded instance keeps its dashboard on: without the dashboard's state API,
Ray Train's placement-group cleaner cannot see a dead controller and leaks its
resources (docs/RAY-NOTES.md, "Dashboard"). Start-up is timed because it is paid on every job.
"""

from __future__ import annotations

import os
import time

from binplay.config import BinPlayConfig, ConfigError

# A resource deadlock must fail, not retry forever (Ray's defaults: 60 s, then forever).
WORKER_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
DEFAULT_WORKER_START_TIMEOUT_S = "180"
READ_TASK_CPUS = 0.1  # what each Ray Data read task asks for
# Seen on 2 CPUs: with 0.5 CPU left beside the workers Ray Data's reads never started
# ("Cluster resources are not enough ... may hang forever"); with 1.0 left they ran.
DATA_CPU_HEADROOM = 1.0


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
    # Workers plus a sliver for Ray Data's read tasks: without it the reads wait forever.
    need_cpu = cfg.ray.num_workers * cfg.ray.cpus_per_worker + DATA_CPU_HEADROOM
    # Autoscaling clusters may grow; only an embedded/static cluster can be judged here.
    if not os.environ.get("RAY_ADDRESS") and need_cpu > total.get("CPU", 0):
        raise ConfigError(
            f"ray.cpus_per_worker: {cfg.ray.num_workers} workers x {cfg.ray.cpus_per_worker} CPU "
            f"+ {DATA_CPU_HEADROOM} for Ray Data reads exceed the {total.get('CPU', 0)} CPUs of the "
            f"local Ray; lower ray.cpus_per_worker or ray.num_workers"
        )
    if cfg.ray.use_gpu and total.get("GPU", 0) < 1 and not os.environ.get("RAY_ADDRESS"):
        raise ConfigError("ray.use_gpu: true but this Ray cluster has no GPU")
