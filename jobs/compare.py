"""Compare strategies on one stream: BinPlay against its baselines, at equal memory.

    python -m jobs.compare --config configs/smoke.yaml --strategies finetune,joint,er \
        --seeds 0 --output runs/compare-smoke
    python -m jobs.compare --config configs/split_mnist.yaml --strategies binplay,er,dgr,finetune,joint \
        --seeds 0,1,2 --output runs/compare-mnist
    python -m jobs.compare --config configs/split_mnist.yaml --strategies binplay,er \
        --seeds 0 --memory-mb 1,auto,8 --output runs/memory-mnist

Every (strategy, seed[, memory size]) is its own run under OUTPUT/runs/, trained one
after another; re-running the same command skips finished runs and resumes the
interrupted one. Writes OUTPUT/compare.json and OUTPUT/compare.md (average accuracy,
mean +- std over seeds; memory in MB; wall time per run), and
OUTPUT/accuracy_vs_memory.png when several memory sizes are given.
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
    parser.add_argument("--output", required=True, help="directory of the comparison")

    def load(args):
        """The preset as every compared strategy reads it: it may carry settings of any of
        them (BinPlay's switches, dgr.epochs, ...), each run gets only its own."""
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
        own = args.preset.get("strategy", BinPlayConfig.model_fields["strategy"].default)
        return config_from_dict(for_strategy(args.preset, own), source=args.config or "defaults")

    def body(cfg, args) -> None:
        from binplay.compare import compare

        result = compare(args.preset, args.strategies, args.seeds, args.memory_mb or [None],
                         Path(args.output))
        for s in result["summary"]:
            print(f"{s['strategy']:>9} | {s['memory_setting']:>8} | {s['mean']:6.2f} +- "
                  f"{s['std']:5.2f}% | {s['memory_mb']:.2f} MB | seeds {s['seeds']}")
        print(f"-> {Path(args.output) / 'compare.md'}")

    return job_main(parser, body, argv, lambda cfg, args: args.output, loader=load)


if __name__ == "__main__":
    sys.exit(main())
