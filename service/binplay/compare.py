"""Strategies side by side on one stream: every (memory size, strategy, seed) is its own run.

Runs live under ``<output>/runs/<strategy>-<memory>-s<seed>``, so re-running a comparison
skips the runs that finished (their report.json is read back) and resumes the one that
was interrupted. Equal memory: at each size, the ER buffer holds that many bytes of
uint8 images and labels, the DGR VAE decoder that many fp32 bytes, and the BinPlay
decoder is the largest decoder of its preset whose stored bytes (``autoencoder.store``)
fit (compact: ``autoencoder.width``; mlp: ``autoencoder.hidden``); ``auto`` is the base
config's BinPlay decoder as stored.

A strategy may bring its own config (``own``: e.g. the tuned ER of configs/baselines/): its
runs read their settings from it, and it must describe the same stream, and the same
``auto`` bytes, as the base, or the comparison is refused. With ``train_missing=False``
nothing trains: the runs already finished under ``<output>/runs`` (trained earlier, or by
other processes in parallel) are summarised, and the missing ones named.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from binplay.config import BinPlayConfig, ConfigError, config_from_dict, for_strategy
from binplay.data.sources import SHAPES
from binplay.memory import MB, binplay_carried_bytes
from binplay.strategies import STRATEGIES


def sized_by_memory(strategy: str) -> bool:
    """BinPlay (its decoder) and every strategy with a byte budget of its own."""
    cls = STRATEGIES[strategy]
    return cls.sized_by_decoder or cls.memory_field is not None


def image_shape(cfg: BinPlayConfig) -> tuple[int, int, int]:
    if cfg.stream.dataset in SHAPES:
        return SHAPES[cfg.stream.dataset]
    if cfg.stream.image_shape is None:
        raise ConfigError("stream.image_shape: needed to size models by memory for user data")
    return cfg.stream.image_shape


# The field that sizes each preset's decoder: the compact decoder grows with its base
# channel count; the mlp decoder's bytes are ~97% its hidden -> feature-map layer, so its
# width alone could not bring it under ~3 MB.
SIZED_FIELD = {"compact": "width", "mlp": "hidden"}


def size_for_budget(cfg: BinPlayConfig, budget: int) -> tuple[str, int]:
    """(field, value): the largest BinPlay decoder of the config's preset whose carried bytes
    (``binplay.memory``: the decoder as stored, and the encoder where it is carried) fit
    ``budget``, sized by ``SIZED_FIELD[preset]``."""
    field = SIZED_FIELD.get(cfg.autoencoder.preset)
    if field is None:
        raise ConfigError("--memory-mb: only the compact and mlp autoencoders are sized by memory")
    shape = image_shape(cfg)

    def size(value: int) -> int:
        sized = cfg.model_copy(update={"autoencoder": cfg.autoencoder.model_copy(
            update={field: value})})
        return binplay_carried_bytes(sized, shape)

    if size(2) > budget:
        raise ConfigError(f"--memory-mb: {budget / MB:.2f} MB is below the smallest BinPlay decoder")
    low, high = 2, 4
    while size(high) <= budget:
        low, high = high, high * 2
    while high - low > 1:  # size(low) fits, size(high) does not
        mid = (low + high) // 2
        low, high = (mid, high) if size(mid) <= budget else (low, mid)
    return field, low


def run_config(base: dict[str, Any], strategy: str, seed: int, memory_mb: float | None,
               runs_dir: Path) -> BinPlayConfig:
    tag = "auto" if memory_mb is None else f"{memory_mb:g}mb"
    sets = [f"strategy={strategy}", f"seed={seed}", f"name={strategy}-{tag}-s{seed}",
            f"run.storage_path={runs_dir}"]
    field = STRATEGIES[strategy].memory_field
    if memory_mb is not None and field is not None:
        sets.append(f"{field}={memory_mb}")
    # Each strategy trains with the settings it reads: another's (BinPlay's reconstructions
    # and ledger labels, DER++'s alpha, ...) do not apply to it and would be refused.
    tree = for_strategy(base, strategy)
    cfg = config_from_dict(tree, sets, source="compare")
    if memory_mb is not None and STRATEGIES[strategy].sized_by_decoder:
        field, value = size_for_budget(cfg, int(memory_mb * MB))
        setattr(cfg.autoencoder, field, value)
    return cfg


def check_comparable(base: dict[str, Any], own: dict[str, dict[str, Any]],
                     sources: dict[str, str]) -> None:
    """Refuse a strategy's own config that would not be compared on equal terms: another
    stream (dataset, tasks, order, validation split) or another ``auto`` byte budget."""
    def view(tree: dict[str, Any], strategy: str) -> BinPlayConfig:
        return config_from_dict(for_strategy(tree, strategy), [f"strategy={strategy}"], "compare")

    for strategy, tree in own.items():
        mine, theirs = view(tree, strategy), view(base, strategy)
        source = sources.get(strategy, strategy)
        for key, value in mine.stream.model_dump().items():
            if value != getattr(theirs.stream, key):
                raise ConfigError(f"{source}: stream.{key} differs from the base config's "
                                  "(every strategy of a comparison sees the same stream)")
        shape = image_shape(theirs)
        if binplay_carried_bytes(mine, shape) != binplay_carried_bytes(theirs, shape):
            raise ConfigError(f"{source}: its autoencoder/codes sections size 'auto' to other "
                              "bytes than the base config's (memory would not be equal)")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation of the average test and validation accuracy per
    (strategy, memory); ``best_on_validation`` marks, at each memory setting, the strategy
    with the highest mean validation accuracy (test accuracy never chooses)."""
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["strategy"], row["memory_setting"]), []).append(row)
    out = []
    for (strategy, setting), runs in groups.items():
        accs = [r["average_accuracy"] for r in runs]
        vals = [r["val_average_accuracy"] for r in runs if r.get("val_average_accuracy") is not None]
        out.append({"strategy": strategy, "memory_setting": setting,
                    "memory_mb": statistics.mean(r["memory_mb"] for r in runs),
                    "classifier_bytes": runs[0].get("classifier_bytes"),
                    "stores_past_data": runs[0]["stores_past_data"],
                    "mean": statistics.mean(accs),
                    "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "val_mean": statistics.mean(vals) if vals else None,
                    "val_std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                    "seeds": [r["seed"] for r in runs],
                    "wall_seconds": sum(r["training_seconds"] for r in runs),
                    "seconds_per_run": statistics.mean(r["training_seconds"] for r in runs)})
    for setting in {s["memory_setting"] for s in out}:
        scored = [s for s in out if s["memory_setting"] == setting and s["val_mean"] is not None
                  and not STRATEGIES[s["strategy"]].bound]  # bounds are not choices
        best = max(scored, key=lambda s: s["val_mean"], default=None)
        for s in out:
            if s["memory_setting"] == setting:
                s["best_on_validation"] = s is best
    return out


def time_frontier(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per strategy, the settings that reach a validation accuracy none of its cheaper
    settings reaches, cheapest first: the least training time to each accuracy it attains.
    Validation ranks them (test is reported beside); the bounds are not settings."""
    out = []
    for strategy in sorted({s["strategy"] for s in summary}):
        best = float("-inf")
        for s in sorted((s for s in summary if s["strategy"] == strategy
                         and sized_by_memory(strategy) and s["val_mean"] is not None),
                        key=lambda s: s["seconds_per_run"]):
            if s["val_mean"] > best:
                best = s["val_mean"]
                out.append(s)
    return out


def markdown(summary: list[dict[str, Any]], rows: list[dict[str, Any]], dataset: str) -> str:
    def val(mean: float | None, std: float) -> str:
        return "-" if mean is None else f"{mean:.2f} +- {std:.2f}"

    lines = [f"# Strategies compared on {dataset}", "",
             "## Average accuracy after the last task (Table 2 layout; mean +- std over seeds)", "",
             "Validation accuracy (held-out training data) is what chooses; test accuracy is "
             "reported. **best** marks, at each memory setting, the highest validation mean "
             "(the bounds, fine-tuning and joint, aside).", "",
             "| strategy | memory setting | validation % | test % | seeds |", "|---|---|---|---|---|"]
    for s in summary:
        best = " **best**" if s.get("best_on_validation") else ""
        lines.append(f"| {s['strategy']}{best} | {s['memory_setting']} | "
                     f"{val(s['val_mean'], s['val_std'])} | {s['mean']:.2f} +- "
                     f"{s['std']:.2f} | {len(s['seeds'])} |")
    lines += ["", "## Memory carried from task to task (Table 3 layout)", "",
              "Every tensor the saved state carries into the next task, at its stored size; the "
              "classifier, which every strategy keeps, beside it.", "",
              "| strategy | memory setting | MB carried | classifier MB | stores past data |",
              "|---|---|---|---|---|"]
    for s in summary:
        clf = "-" if s.get("classifier_bytes") is None else f"{s['classifier_bytes'] / MB:.2f}"
        lines.append(f"| {s['strategy']} | {s['memory_setting']} | {s['memory_mb']:.2f} | {clf} | "
                     f"{'yes' if s['stores_past_data'] else 'no'} |")
    lines += ["", "## Time to reach each accuracy", "",
              "Each strategy's settings that reach a validation accuracy no cheaper setting of it "
              "reaches, cheapest first. Seconds are training time per run, mean over seeds: "
              "they hold for the machine and the load the runs had, so compare them only "
              "between runs that shared the same conditions.", "",
              "| strategy | memory setting | training s per run | validation % | test % |",
              "|---|---|---|---|---|"]
    frontier = time_frontier(summary)
    if not frontier:
        lines.append("| (no run held out validation data to rank by) | | | | |")
    for s in frontier:
        lines.append(f"| {s['strategy']} | {s['memory_setting']} | {s['seconds_per_run']:.0f} | "
                     f"{s['val_mean']:.2f} | {s['mean']:.2f} |")
    lines += ["", "## Runs", "", "| run | validation % | test % | MB | training s |",
              "|---|---|---|---|---|"]
    for r in rows:
        v = r.get("val_average_accuracy")
        lines.append(f"| {r['name']} | {'-' if v is None else f'{v:.2f}'} | "
                     f"{r['average_accuracy']:.2f} | {r['memory_mb']:.2f} | "
                     f"{r['training_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def compare(base: dict[str, Any], strategies: list[str], seeds: list[int],
            memory_mbs: list[float | None], output: Path, log=print,
            own: dict[str, dict[str, Any]] | None = None,
            train_missing: bool = True) -> dict[str, Any]:
    """Train every (memory size, strategy, seed) of the preset ``base`` (a config tree that
    may carry settings of any strategy: each run takes its own, ``config.for_strategy``),
    or of the strategy's ``own`` tree where it has one."""
    from binplay.launch import train

    own = own or {}
    check_comparable(base, own, {})
    rows, missing = [], []
    for memory_mb in memory_mbs:
        for strategy in strategies:
            if not sized_by_memory(strategy) and memory_mb != memory_mbs[0]:
                continue  # finetune/joint do not depend on the memory size: run them once
            for seed in seeds:
                cfg = run_config(own.get(strategy, base), strategy, seed, memory_mb,
                                 output / "runs")
                report_path = output / "runs" / cfg.name / "report.json"
                if report_path.is_file():
                    log(f"compare: {cfg.name} finished earlier; reading its report")
                elif not train_missing:
                    missing.append(cfg.name)
                    continue
                else:
                    log(f"compare: {cfg.name} starts")
                    train(cfg)
                report = json.loads(report_path.read_text())
                rows.append({"name": cfg.name, "strategy": strategy, "seed": seed,
                             "memory_setting": "auto" if memory_mb is None else f"{memory_mb:g} MB",
                             **{k: report.get(k) for k in (
                                 "average_accuracy", "val_average_accuracy", "memory_mb",
                                 "classifier_bytes", "memory_images", "stores_past_data",
                                 "training_seconds", "accuracy_matrix")}})
    if missing:
        log(f"compare: not finished, left out: {', '.join(missing)}")
    if not rows:
        raise ConfigError(f"{output / 'runs'}: no finished run of this comparison to summarise")
    summary = summarise(rows)
    output.mkdir(parents=True, exist_ok=True)
    stream = cfg.stream  # the same stream for every run
    result = {"dataset": stream.dataset, "tasks": stream.tasks, "summary": summary, "runs": rows}
    (output / "compare.json").write_text(json.dumps(result, indent=1))
    (output / "compare.md").write_text(markdown(summary, rows, stream.dataset))
    # here, not at the top: compare_figures imports this module (sized_by_memory)
    from binplay.compare_figures import plot_accuracy_vs_memory, plot_accuracy_vs_time

    if len(memory_mbs) > 1:
        plot_accuracy_vs_memory(summary, output / "accuracy_vs_memory.png", stream.dataset)
    plot_accuracy_vs_time(summary, output / "accuracy_vs_time.png", stream.dataset)
    return result
