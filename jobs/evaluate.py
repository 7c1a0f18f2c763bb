"""Evaluate a saved run's classifier: a versioned state on given images, or a run on its tasks.

    python -m jobs.evaluate --state runs/shop --data test.parquet --output runs/shop-eval
    python -m jobs.evaluate --state s3://bucket/shop --data test.parquet --version 2
    python -m jobs.evaluate --checkpoint runs/smoke
    python -m jobs.evaluate --checkpoint runs/ray/smoke --set stream.test_per_class=null

--state: accuracy per class and per learnt task on --data (a Parquet file or an image
folder, labelled), of the latest version or of --version N; writes evaluation.json and
evaluation.md to --output (default: the current directory's evaluation-vNNNN/).
--checkpoint: the test stream is rebuilt from the run's own config; --set overrides
stream fields (e.g. another data_root or the full test split). Prints the accuracy per
task and writes evaluation.json next to the checkpoint (or to --output).
Both print the most confused class pairs and write the whole confusion matrix
(evaluation.json "confusion": rows the true class, columns the predicted one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jobs.common import job_parser, run_guarded


def _evaluate_state(args: argparse.Namespace) -> None:
    import tempfile

    from binplay.config import ConfigError
    from binplay.validation import check_state_location
    from binplay.versions.classes import read_learnt
    from binplay.versions.store import StateStore
    from binplay.versions.use import accuracy_report, image_shape, open_version, write_evaluation

    if not args.data:
        raise ConfigError("--data: required with --state (labelled test images)")
    check_state_location(args.state)
    store = StateStore(args.state)
    with tempfile.TemporaryDirectory(prefix="binplay-evaluate-") as tmp:
        version, run = open_version(store, args.version, tmp)
        # A folder's sorted class directories are labelled by the names the state learnt.
        data, _ = read_learnt(args.data, "--data", image_shape(run), store.ledger(version),
                              run.state["num_classes"], run.cfg.stream, new=False)
        result = {"state": store.uri, "version": version, "data": args.data,
                  "tasks": run.state["ledger"]["tasks"], **accuracy_report(run, data)}
    out = Path(args.output or f"evaluation-v{version:04d}")
    paths = write_evaluation(result, out)
    per_task = " ".join(f"{t}:{a:.1f}" for t, a in result["accuracy_per_task"].items())
    print(f"version {version} | accuracy {result['accuracy']:.2f}% | per task {per_task} -> "
          f"{paths[0]}, {paths[1]}")
    print(confusions_line(result["most_confused"]))


def confusions_line(most_confused: list[dict]) -> str:
    """One line of where accuracy goes: 'most confused: 0->6 19.0%, ...' (true->predicted,
    percent of the true class's images)."""
    pairs = ", ".join(f"{m['true']}->{m['predicted']} {m['percent_of_class']:.1f}%" for m in most_confused)
    return f"most confused (class->taken for, % of the class): {pairs or 'none'}"


def _evaluate_checkpoint(args: argparse.Namespace) -> None:
    import tempfile

    from binplay.inference import SavedRun

    run = SavedRun(args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        result = run.evaluate(args.set, tmp)
    out = Path(args.output) if args.output else run.path.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(result, indent=1))
    per_task = " ".join(f"{a:.1f}" for a in result["accuracy_per_task"].values())
    print(f"accuracy per task: {per_task} | average {result['average_accuracy']:.2f}% over "
          f"{result['tasks_learnt']} tasks -> {out / 'evaluation.json'}")
    print(confusions_line(result["most_confused"]))


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--state", help="a versioned state (directory or URI) that jobs.learn wrote")
    source.add_argument("--checkpoint", help="run dir, checkpoint dir or state.pt")
    parser.add_argument("--data", help="--state: labelled images (Parquet file or image folder)")
    parser.add_argument("--version", type=int, help="--state: this version instead of the latest")
    parser.add_argument("--set", action="append", default=[], metavar="stream.KEY=VALUE",
                        help="--checkpoint: override a stream field of the run's config (repeatable)")
    parser.add_argument("--output", help="where evaluation.json (and .md) go")
    args = parser.parse_args(argv)
    return run_guarded(lambda: _evaluate_state(args) if args.state else _evaluate_checkpoint(args))


if __name__ == "__main__":
    sys.exit(main())
