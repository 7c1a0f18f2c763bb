"""Evaluate a saved run's classifier on the test split of every task it has learnt.

    python -m jobs.evaluate --checkpoint runs/smoke
    python -m jobs.evaluate --checkpoint runs/ray/smoke --set stream.test_per_class=null

The test stream is rebuilt from the run's own config; --set overrides stream fields
(e.g. another data_root or the full test split). Prints the accuracy per task and
writes evaluation.json next to the checkpoint (or to --output).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jobs.common import run_guarded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run dir, checkpoint dir or state.pt")
    parser.add_argument("--set", action="append", default=[], metavar="stream.KEY=VALUE",
                        help="override a stream field of the run's config (repeatable)")
    parser.add_argument("--output", help="where evaluation.json goes")
    args = parser.parse_args(argv)

    def body() -> None:
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

    return run_guarded(body)


if __name__ == "__main__":
    sys.exit(main())
