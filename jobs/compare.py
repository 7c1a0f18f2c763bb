"""Compare strategies on one stream: BinPlay against its baselines, at equal memory.

    python -m jobs.compare --config configs/smoke.yaml --strategies finetune,joint,er \
        --seeds 0 --output runs/compare-smoke
    python -m jobs.compare --config configs/split_mnist.yaml --strategies binplay,er,dgr,finetune,joint \
        --seeds 0,1,2 --output runs/compare-mnist
    python -m jobs.compare --config configs/split_mnist.yaml --strategies binplay,er \
        --seeds 0 --memory-mb 1,auto,8 --output runs/memory-mnist
    python -m jobs.compare --config configs/split_mnist.yaml --strategies binplay,er,derpp \
        --strategy-config er=configs/baselines/split_mnist_er.yaml \
        --strategy-config derpp=configs/baselines/split_mnist_derpp.yaml \
        --seeds 0 --memory-mb 0.25,auto,1,2 --output runs/memory-mnist-tuned

Every (strategy, seed[, memory size]) is its own run under OUTPUT/runs/, trained one
after another; re-running the same command skips finished runs and resumes the
interrupted one. `--strategy-config NAME=FILE` runs strategy NAME from its own
config (its tuned settings), refused unless it has the base config's stream and `auto`
bytes. `--no-train` trains nothing: it summarises the runs found finished under
OUTPUT/runs (e.g. trained by several such commands in parallel) and names the missing.
Writes OUTPUT/compare.json and OUTPUT/compare.md (average accuracy,
mean +- std over seeds; memory in MB; wall time per run; the least time to each
accuracy), OUTPUT/accuracy_vs_time.png, and OUTPUT/accuracy_vs_memory.png when several
memory sizes are given.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jobs.common import job_main, parser_with_config


def _csv(kind, what: str):
    def parse(text: str):
        return [kind(item) for item in text.split(",") if item.strip()]
    parse.__name__ = f"comma-separated list of {what}"  # argparse names it in its refusal
    return parse


def _strategy_config(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ValueError(text)
    return name.strip(), path.strip()


_strategy_config.__name__ = "NAME=FILE"  # argparse names it in its refusal


def _megabytes(text: str) -> float | None:
    return None if text.strip() == "auto" else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = parser_with_config(__doc__)
    parser.add_argument("--strategies", type=_csv(str, "names"), default=None,
                        help="comma-separated strategies (default: every registered one)")
    parser.add_argument("--seeds", type=_csv(int, "integers"), default=[0])
    parser.add_argument("--memory-mb", type=_csv(_megabytes, "megabytes or auto"), default=None,
                        help="memory sizes (MB) for BinPlay's decoder, the ER buffer and the DGR "
                        "decoder; 'auto' = BinPlay's decoder of the config (the default)")
    parser.add_argument("--strategy-config", type=_strategy_config, action="append", default=[],
                        metavar="NAME=FILE", help="strategy NAME reads its settings from FILE "
                        "(e.g. a tuned baseline); same stream as --config")
    parser.add_argument("--no-train", action="store_true",
                        help="summarise the finished runs under OUTPUT/runs; train nothing")
    parser.add_argument("--output", required=True, help="directory of the comparison")

    def load(args):
        """The preset as every compared strategy reads it: it may carry settings of any of
        them (BinPlay's switches, dgr.epochs, ...), each run gets only its own."""
        from binplay.compare import check_comparable
        from binplay.config import (
            BinPlayConfig,
            ConfigError,
            config_from_dict,
            for_strategy,
            load_preset,
        )
        from binplay.strategies import STRATEGIES

        args.strategies = args.strategies or list(STRATEGIES)
        unknown = [s for s in args.strategies if s not in STRATEGIES]
        if unknown:
            raise ConfigError(f"--strategies: unknown '{unknown[0]}' (known: {', '.join(STRATEGIES)})")
        args.preset = load_preset(args.config, args.set, args.strategies)
        args.own, sources = {}, {}
        for name, path in args.strategy_config:
            if name not in args.strategies:
                raise ConfigError(f"--strategy-config {name}: not among the compared strategies "
                                  f"({', '.join(args.strategies)})")
            args.own[name], sources[name] = load_preset(path, args.set, [name]), path
        check_comparable(args.preset, args.own, sources)
        own = args.preset.get("strategy", BinPlayConfig.model_fields["strategy"].default)
        return config_from_dict(for_strategy(args.preset, own), source=args.config or "defaults")

    def body(cfg, args) -> None:
        from binplay.compare import compare

        result = compare(args.preset, args.strategies, args.seeds, args.memory_mb or [None],
                         Path(args.output), own=args.own, train_missing=not args.no_train)
        for s in result["summary"]:
            print(f"{s['strategy']:>9} | {s['memory_setting']:>8} | {s['mean']:6.2f} +- "
                  f"{s['std']:5.2f}% | {s['memory_mb']:.2f} MB | seeds {s['seeds']}")
        print(f"-> {Path(args.output) / 'compare.md'}")

    return job_main(parser, body, argv, lambda cfg, args: args.output, loader=load)


if __name__ == "__main__":
    sys.exit(main())
