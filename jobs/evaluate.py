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

        from binplay.config import ConfigError, load_config
        from binplay.data.stream import build_stream, read_shards
        from binplay.inference import SavedRun
        from binplay.train.classifier import accuracy, class_mask

        run = SavedRun(args.checkpoint)
        if any(not item.startswith("stream.") for item in args.set):
            raise ConfigError("--set: evaluate only overrides stream.* fields")
        base = run.cfg.model_dump(mode="json")
        with tempfile.TemporaryDirectory() as tmp:
            cfg_file = Path(tmp) / "config.json"
            cfg_file.write_text(json.dumps(base))
            cfg = load_config(cfg_file, args.set)
            manifest = build_stream(cfg, Path(tmp) / "stream")
            seen = class_mask(run.ledger.classes, run.state["num_classes"])
            rows = {}
            for rec in run.ledger.tasks:
                _, images, labels = read_shards(manifest.tasks[rec.task_id].test)
                rows[rec.task_id] = accuracy(run.models["classifier"], images.float() / 255,
                                             labels, seen)
        average = sum(rows.values()) / len(rows)
        result = {"checkpoint": str(run.path), "accuracy_per_task": rows,
                  "average_accuracy": average, "tasks_learnt": len(rows)}
        out = Path(args.output) if args.output else run.path.parent
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.json").write_text(json.dumps(result, indent=1))
        per_task = " ".join(f"{a:.1f}" for a in rows.values())
        print(f"accuracy per task: {per_task} | average {average:.2f}% over {len(rows)} tasks "
              f"-> {out / 'evaluation.json'}")

    return run_guarded(body)


if __name__ == "__main__":
    sys.exit(main())
