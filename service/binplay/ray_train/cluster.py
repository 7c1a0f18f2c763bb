"""Connect to Ray: the cluster named by RAY_ADDRESS / ray.address, or an embedded local one.

The embedded instance keeps its dashboard on: without the dashboard's state API,
Ray Train's placement-group cleaner cannot see a dead controller and leaks its
resources (docs/RAY-NOTES.md, "Dashboard"). Start-up is timed because it is paid on every job.
"""

from __future__ import annotations

import os
import time

from binplay.config import BinPlayConfig, ConfigError
from binplay.ray_train.quiet import HOOK, embedded_start, hook_env, ray_logging_level

# A resource deadlock must fail, not retry forever (Ray's defaults: 60 s, then forever).
WORKER_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
DEFAULT_WORKER_START_TIMEOUT_S = "180"
# Train's controller takes a worker's report (its queue holds one) only when it polls, every
# 2 s by default: a report made sooner after the previous one blocks the worker until then.
# Polled every 0.25 s, the 2-task test run took 50 s instead of 92 s (docs/BENCHMARKS.md);
# a poll that is late is only retried (a worker is declared dead after 10 minutes of them).
POLL_INTERVAL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
DEFAULT_POLL_INTERVAL_S = "0.25"
READ_TASK_CPUS = 0.1  # what each Ray Data read task asks for
# Seen on 2 CPUs: with 0.5 CPU left beside the workers Ray Data's reads never started
# ("Cluster resources are not enough ... may hang forever"); with 1.0 left they ran.
DATA_CPU_HEADROOM = 1.0


# Passed on to every worker when the driver has it: OMP_WAIT_POLICY=PASSIVE stops a trainer's
# idle OpenMP threads spinning on cores its replay actors share (docs/BENCHMARKS.md).
PASSED_ON_ENV = ("OMP_WAIT_POLICY",)


def worker_env() -> dict[str, str]:
    return {
        WORKER_START_TIMEOUT_ENV: os.environ.get(WORKER_START_TIMEOUT_ENV,
                                                 DEFAULT_WORKER_START_TIMEOUT_S),
        POLL_INTERVAL_ENV: os.environ.get(POLL_INTERVAL_ENV, DEFAULT_POLL_INTERVAL_S),
        # Ray Data's progress bars become hundreds of blank lines in job logs.
        "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
        **{key: os.environ[key] for key in PASSED_ON_ENV if key in os.environ},
    }


def configure_ray_data() -> None:
    """This process's Ray Data context, which every dataset it creates carries to the workers.

    - No progress bars or plan banners: they drown the progress lines in job logs.
    - The file-based read path (``use_datasource_v2`` off). Ray 2.60's new path lists files in
      a task of a whole CPU before any read starts: each task's shard took 7-12 s to reach a
      Train worker on 2 cores, against 0.3 s this way (docs/BENCHMARKS.md).
    """
    import ray.data

    data_ctx = ray.data.DataContext.get_current()
    data_ctx.enable_progress_bars = False
    data_ctx.enable_operator_progress_bars = False
    data_ctx.print_on_execution_start = False
    data_ctx.use_datasource_v2 = False


def pin_gcs_address() -> None:
    """Worker setup hook: name this Ray in every worker's RAY_ADDRESS.

    With several Ray instances on one machine, Train v2's placement-group cleaner
    failed ("Found multiple active Ray instances"), so every trial Tune stopped kept
    its workers' placement group and later trials never started (shared RAY-NOTES,
    "Verified on this machine")."""
    import ray

    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address


def local_system_config(cfg: BinPlayConfig) -> dict[str, int]:
    """What an embedded Ray is started with beyond its defaults: the workers' niceness
    (Ray's 15 let any process at 0 take the cores from a Train worker or a Tune trial)."""
    return {"worker_niceness": cfg.ray.worker_niceness}


def ensure_ray(cfg: BinPlayConfig, log=print) -> float:
    """Initialise Ray once per process; returns the seconds it took. Every worker of an
    embedded Ray runs ``pin_gcs_address`` (with another Ray on the machine, Train's
    placement-group cleaner otherwise died with a traceback and leaked its group). Ray's
    bookkeeping lines stay out of the output unless ``run.ray_logs`` (quiet.py)."""
    import ray

    if ray.is_initialized():
        return 0.0
    started = time.time()
    os.environ.update(worker_env())
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address and address.startswith(("http://", "https://")):
        raise ConfigError(f"RAY_ADDRESS={address} is a dashboard URL: submit this job with "
                          f"`ray job submit`, or point RAY_ADDRESS at the cluster (host:6379)")
    show = cfg.run.ray_logs
    level = ray_logging_level(show)
    if address:
        runtime_env = {"env_vars": {**worker_env(), **hook_env(show, False)},
                       "worker_process_setup_hook": HOOK}
        context = ray.init(address=address, runtime_env=runtime_env, logging_level=level)
        where = f"cluster at {address}"
    else:
        runtime_env = {"env_vars": {**worker_env(), **hook_env(show, pin_address=True)},
                       "worker_process_setup_hook": HOOK}
        with embedded_start(show):
            # "local": never attach to some other Ray started on this machine by accident.
            context = ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=True,
                               dashboard_host="127.0.0.1", runtime_env=runtime_env,
                               logging_level=level, _system_config=local_system_config(cfg))
        auth = ", token authentication on" if os.environ.get("RAY_AUTH_MODE") == "token" else ""
        where = f"embedded local Ray ({os.cpu_count()} CPUs{auth})"
    seconds = time.time() - started
    dashboard = f", dashboard http://{context.dashboard_url}" if context.dashboard_url else ""
    log(f"ray ready in {seconds:.1f}s: {where}{dashboard}")
    return seconds


def cluster_address(cfg: BinPlayConfig) -> str | None:
    """The cluster a run joins (None: an embedded local Ray)."""
    return cfg.ray.address or os.environ.get("RAY_ADDRESS")


def replay_cpus(cfg: BinPlayConfig) -> float:
    """CPUs the replay actors of one run book: ``replay.actors`` per training process."""
    if not cfg.uses_replay_actors:
        return 0.0
    return max(1, cfg.ray.num_workers) * cfg.replay.actors * cfg.replay.cpus_per_actor


def replay_gpus(cfg: BinPlayConfig) -> float:
    """GPUs the replay actors of one run book (``replay.gpus_per_actor`` each)."""
    if not cfg.uses_replay_actors:
        return 0.0
    return max(1, cfg.ray.num_workers) * cfg.replay.actors * cfg.replay.gpus_per_actor


def run_cpus(cfg: BinPlayConfig, driver_cpus: float = 0.0) -> float:
    """CPUs one run books: its driver (a Tune trial's own share), its Train workers and
    their replay actors; an in-process run (num_workers 0) is its driver and actors."""
    return driver_cpus + cfg.ray.num_workers * cfg.ray.cpus_per_worker + replay_cpus(cfg)


def check_fits(cfg: BinPlayConfig, concurrent: int = 1, driver_cpus: float = 0.0,
               total_cpus: float | None = None, total_gpus: float | None = None) -> None:
    """Refuse runs that can never all be placed at once, instead of waiting on them.

    ``concurrent`` runs of ``cfg`` share the cluster (a search's trials), each also
    booking ``driver_cpus``; ``total_cpus`` defaults to the connected Ray's. A cluster
    named by ``ray.address`` or RAY_ADDRESS may autoscale, so only an embedded Ray
    is judged. ``total_gpus`` is judged where given or read from Ray."""
    if total_cpus is None:
        import ray

        total = ray.cluster_resources()
        total_cpus = total.get("CPU", 0)
        total_gpus = total.get("GPU", 0)
    if cluster_address(cfg):
        return
    # Ray Data's read tasks need a sliver beside the workers, else they wait forever.
    headroom = DATA_CPU_HEADROOM if cfg.ray.num_workers else 0.0
    need_cpu = concurrent * run_cpus(cfg, driver_cpus) + headroom
    if need_cpu > total_cpus:
        what = (f"{cfg.ray.num_workers} workers x {cfg.ray.cpus_per_worker} CPU"
                + (f" + {replay_cpus(cfg):g} for replay actors" if replay_cpus(cfg) else "")
                + (f" + {driver_cpus} for the trial" if driver_cpus else ""))
        runs = f"{concurrent} concurrent runs x ({what})" if concurrent > 1 else what
        extra = f" + {headroom} for Ray Data reads" if headroom else ""
        raise ConfigError(
            f"ray.cpus_per_worker: {runs}{extra} exceed the {total_cpus:g} CPUs of the local Ray; "
            f"lower ray.cpus_per_worker, ray.num_workers, replay.cpus_per_actor or the "
            f"concurrent trials")
    worker_gpus = cfg.ray.num_workers * cfg.ray.gpus_per_worker if cfg.ray.use_gpu else 0.0
    actor_gpus = replay_gpus(cfg)
    if total_gpus is not None and concurrent * (worker_gpus + actor_gpus) > total_gpus + 1e-9:
        what = " + ".join(
            ([f"{cfg.ray.num_workers} workers x {cfg.ray.gpus_per_worker:g} GPU"] if worker_gpus
             else []) + ([f"{actor_gpus:g} for replay actors"] if actor_gpus else []))
        runs = f"{concurrent} concurrent runs x ({what})" if concurrent > 1 else what
        raise ConfigError(
            f"ray.gpus_per_worker: {runs} exceed the {total_gpus:g} GPUs of the local Ray; "
            f"lower ray.gpus_per_worker (a fraction shares a GPU), replay.gpus_per_actor or "
            f"the concurrent trials")
