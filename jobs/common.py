"""What every job shares: argument parsing, --config/--set, and one-line errors with exit codes.

Exit 0 on success; 2 with one line on stderr when the input is wrong (an argument, the
config, data, a checkpoint or state); 1 with one line when training itself failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

from binplay.config import BinPlayConfig, load_config
from binplay.errors import DOMAIN_ERRORS, TrainingFailed


class OneLineParser(argparse.ArgumentParser):
    """argparse whose refusals are one line (``error: argument --count: ...``, exit 2) like
    every other bad input; ``--help`` still prints the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")


def job_parser(doc: str | None) -> OneLineParser:
    return OneLineParser(description=(doc or "").split("\n\n")[0], epilog=doc,
                         formatter_class=argparse.RawDescriptionHelpFormatter)


def parser_with_config(doc: str | None) -> OneLineParser:
    parser = job_parser(doc)
    parser.add_argument("--config", help="YAML run config (configs/*.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set ray.num_workers=2 (repeatable)")
    return parser


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (a count, a batch size)."""
    value = int(text)  # argparse turns a ValueError into "invalid <__name__> value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


positive_int.__name__ = "positive integer"  # argparse: "invalid positive integer value: 'x'"


def _absent_root(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet (None if it exists)."""
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _prune_empty(root: Path) -> None:
    """Remove the empty directories under ``root`` (and ``root`` if it ends up empty). Files
    are never removed, so this cannot undo anything another process wrote."""
    if not root.is_dir():
        return
    for dirpath, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(dirpath)  # fails on a directory that holds anything
        except OSError:
            pass


def absent_roots(places: Iterable[str | Path | None]) -> list[Path]:
    """Of the local directories a job is about to write into, those that do not exist yet
    (each as its outermost missing directory): what ``run_guarded`` tidies on bad input."""
    roots = [_absent_root(Path(p)) for p in places if p and "://" not in str(p)]
    return [r for r in roots if r is not None]


def run_guarded(body: Callable[[], None], fresh: list[Path] | None = None) -> int:
    """Run a job body; bad input becomes one line on stderr and exit code 2, a training
    failure one line and exit code 1. ``fresh`` (``absent_roots``; the body may add to it)
    are directories the job created: on bad input they are left as they were found, i.e.
    absent (only empty directories are removed)."""
    try:
        body()
    except DOMAIN_ERRORS as exc:
        for root in fresh or []:
            _prune_empty(root)
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
             argv: list[str] | None = None,
             place: Callable[[BinPlayConfig, argparse.Namespace], str | None] | None = None,
             loader: Callable[[argparse.Namespace], BinPlayConfig] | None = None) -> int:
    """Parse, load the config (``loader``, else ``--config`` and ``--set``), run ``body``;
    ``place(cfg, args)`` is where the job writes."""
    args = parser.parse_args(argv)
    fresh: list[Path] = []

    def run() -> None:
        cfg = loader(args) if loader is not None else load_config(args.config, args.set)
        if place is not None:
            fresh.extend(absent_roots([place(cfg, args)]))
        body(cfg, args)

    return run_guarded(run, fresh)
