"""Drive a search: check it fits, run (or resume) it with Tune + ASHA, write its files.

The search lives in one directory: ``search/`` (Tune's experiment, restored when the
same command runs again), ``trials/`` (each trial's continual run), ``stream-<hash>/``
(the stream's shards, shared by every trial of that stream) and the outputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from binplay.config import load_config
from binplay.state import StateError
from binplay.storage import is_uri, place_run
from binplay.tracking import check_tracker, tune_callbacks
from binplay.tune.config import METRIC, TIME_ATTR, SearchConfig, check_search, param_space, trial_config
from binplay.tune.results import (
    pick_best,
    plot_metric,
    rows_from_results,
    tied_with_best,
    write_best,
    write_tables,
)
from binplay.tune.trainable import make_trainable

EXPERIMENT = "search"
SEARCH_FILE = "search.json"


def search_dir(search: SearchConfig, output: str | None) -> Path:
    where = output or search.storage or f"runs/tune-{search.name}"
    if is_uri(where):
        # Trials share the stream through a local file lock and write their runs locally.
        raise StateError(f"{where}: a search's directory must be a local path or a shared volume")
    return Path(where).resolve()


def claim_dir(search: SearchConfig, out: Path) -> bool:
    """Record the search's fingerprint; True if this directory already holds it. Another
    search in the same place is refused: resuming it would mix two searches' trials."""
    marker = out / SEARCH_FILE
    if marker.is_file():
        saved = json.loads(marker.read_text()).get("fingerprint")
        if saved != search.fingerprint():
            raise StateError(f"{out}: holds another search (fingerprint {saved} != "
                             f"{search.fingerprint()}); use the same tune config or a new --output")
        return True
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": search.fingerprint(), "name": search.name}))
    return False


def _tuner(search: SearchConfig, base: dict[str, Any], out: Path, tasks: int, log,
           callbacks: list | None = None):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(make_trainable(search, base, str(out)),
                                    {"CPU": search.resources.cpus})
    path = out / EXPERIMENT
    if tune.Tuner.can_restore(str(path)):
        log(f"resuming the search in {path}: finished trials are kept")
        return tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True,
                                  resume_errored=True)
    scheduler = ASHAScheduler(time_attr=TIME_ATTR, max_t=tasks,
                              grace_period=min(search.scheduler.grace_period, tasks),
                              reduction_factor=search.scheduler.reduction_factor,
                              # A trial at its last task returns by itself, so its run
                              # writes its report (a STOP would kill it before that).
                              stop_last_trials=False)
    return tune.Tuner(
        trainable, param_space=param_space(search),
        tune_config=tune.TuneConfig(
            metric=METRIC, mode="max", scheduler=scheduler, num_samples=search.num_samples,
            # The limit goes to the generator: Tune ignores max_concurrent_trials (with a
            # warning) when it is handed a generator instance.
            search_alg=BasicVariantGenerator(random_state=search.random_seed,
                                             max_concurrent=search.max_concurrent_trials)),
        # One retry: a crashed trial restarts and resumes its run from its checkpoint.
        run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(out),
                                  failure_config=tune.FailureConfig(max_failures=1), verbose=1,
                                  callbacks=callbacks),
    )


def run_search(search: SearchConfig, base: dict[str, Any], output: str | None = None,
               log=print) -> dict[str, Any]:
    """Run or resume the search; returns a summary (best params, metric, paths)."""
    from binplay.ray_train.cluster import check_fits, cluster_address, ensure_ray

    out = search_dir(search, output)
    first = check_search(search, base, "tune config")
    check_tracker(first)
    tasks = len(first.stream.tasks)
    # Trials x their CPUs must fit at once, else Tune waits (or deadlocks) forever.
    local_cpus = None if cluster_address(first) else float(os.cpu_count() or 1)
    driver = search.resources.cpus
    check_fits(first, concurrent=search.max_concurrent_trials, driver_cpus=driver,
               total_cpus=local_cpus)
    if claim_dir(search, out):
        log(f"search '{search.name}' exists in {out}: resuming")
    # Save Tune's experiment state often: it is what a re-run after a kill resumes from.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    ensure_ray(first, log=log)
    if local_cpus is None:
        check_fits(first, concurrent=search.max_concurrent_trials, driver_cpus=driver)
    grid = _tuner(search, base, out, tasks, log, tune_callbacks(first, str(out))).fit()
    rows = rows_from_results(grid, tasks)
    write_tables(rows, tasks, out)
    plot_metric(rows, tasks, out)
    params, metric = pick_best(rows)
    if search.seeds:
        params["seed"] = search.seeds[0]
    best = trial_config(search, base, params, name=f"{search.name}-best", storage=str(out),
                        whole_stream=True, source="best")
    best_path = write_best(best, out)
    load_config(best_path)  # what jobs.train will do with it
    summary: dict[str, Any] = {
        "best_params": params, f"best_{METRIC}": metric, "tuned_tasks": tasks,
        "trials": len(rows), "stopped_early": sum(r.status == "stopped early" for r in rows),
        "errors": sum(r.status == "error" for r in rows), "best_yaml": str(best_path),
        "tied_with_best": tied_with_best(rows)}
    log(f"search done: {len(rows)} trials ({summary['stopped_early']} stopped early, "
        f"{summary['errors']} failed); best {params}: {METRIC} {metric:.2f}% after {tasks} tasks")
    if summary["tied_with_best"]:
        log(f"tied on {METRIC} with the best (the earliest trial is kept): "
            + "; ".join(str(p) for p in summary["tied_with_best"]))
    if search.final:
        summary["final"] = train_final(best, out, log)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def train_final(best, out: Path, log) -> dict[str, Any]:
    """The realistic protocol's second half: the winner trains the whole stream."""
    from binplay.launch import train

    cfg = place_run(best, str(out / "final"))
    report = json.loads(Path(train(cfg)).read_text())
    final = {"run": str(out / "final"), METRIC: report["val_average_accuracy"],
             "test_average_accuracy": report["average_accuracy"],
             "tasks": len(report["accuracy_matrix"])}
    with open(out / "trials.md", "a") as fh:
        fh.write(f"\nFinal run with the winner on the whole stream ({final['tasks']} tasks): "
                 f"validation {final[METRIC]:.2f}%, test {final['test_average_accuracy']:.2f}% "
                 f"(reported, not chosen on) ({final['run']})\n")
    log(f"final run on the whole stream: validation {final[METRIC]:.2f}%, test "
        f"{final['test_average_accuracy']:.2f}%")
    return final
