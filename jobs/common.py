"""What every job shares: --config/--set parsing and one-line errors with exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from binplay.config import BinPlayConfig, load_config
from binplay.errors import DOMAIN_ERRORS, TrainingFailed


def parser_with_config(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                     epilog=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML run config (configs/*.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set ray.num_workers=2 (repeatable)")
    return parser


def run_guarded(body: Callable[[], None]) -> int:
    """Run a job body; bad input becomes one line on stderr and exit code 2, a training
    failure one line and exit code 1."""
    try:
        body()
    except DOMAIN_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


def job_main(parser: argparse.ArgumentParser,
             body: Callable[[BinPlayConfig, argparse.Namespace], None],
             argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    return run_guarded(lambda: body(load_config(args.config, args.set), args))
