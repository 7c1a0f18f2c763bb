"""Regenerate past samples of a saved run from their codes: a PNG grid and a Parquet file.

    python -m jobs.generate --checkpoint runs/smoke --task 0 --count 64 --output runs/smoke/generated
    python -m jobs.generate --checkpoint runs/ray/smoke --start 1 --stop 100
    python -m jobs.generate --state s3://bucket/shop --task 1 --version 3 --output generated

--state takes a versioned state (jobs.learn), its latest version or --version N;
--checkpoint takes a run directory (in-process or Ray Train storage), a checkpoint
directory or a state.pt. The Parquet file has the stream-shard schema (index, label,
image as raw uint8 bytes, shape in the metadata); label is the classifier's prediction,
since BinPlay keeps no labels of past samples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobs.common import job_parser, positive_int, run_guarded


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--state", help="a versioned state (directory or URI) that jobs.learn wrote")
    source.add_argument("--checkpoint", help="run dir, checkpoint dir or state.pt")
    parser.add_argument("--version", type=int, help="--state: this version instead of the latest")
    parser.add_argument("--task", type=int, help="draw indices from this task (default: all)")
    parser.add_argument("--start", type=int, help="first index of an explicit range (1-based)")
    parser.add_argument("--stop", type=int, help="last index of the range (inclusive)")
    parser.add_argument("--count", type=positive_int, default=64, help="how many samples to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="directory (default: <checkpoint>/generated, or "
                        "generated-vNNNN/ for --state)")
    args = parser.parse_args(argv)

    def body() -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="binplay-generate-") as tmp:
            _generate(args, tmp)

    def _generate(args: argparse.Namespace, tmp: str) -> None:
        import numpy as np
        import torch
        from torchvision.utils import save_image

        from binplay.data.shards import write_shard
        from binplay.inference import SavedRun

        if args.state:
            from binplay.validation import check_state_location
            from binplay.versions.store import StateStore
            from binplay.versions.use import open_version

            check_state_location(args.state)
            version, run = open_version(StateStore(args.state), args.version, tmp)
            default = Path(f"generated-v{version:04d}")
        else:
            run = SavedRun(args.checkpoint)
            default = run.path.parent / "generated"
        indices = run.indices(args.task, args.start, args.stop, args.count, args.seed)
        images, labels = run.regenerate(indices)
        out = Path(args.output) if args.output else default
        out.mkdir(parents=True, exist_ok=True)
        stem = f"task_{args.task}" if args.task is not None and args.start is None else \
            f"indices_{int(indices[0])}_{int(indices[-1])}"
        save_image(images, out / f"{stem}.png", nrow=16, padding=2, pad_value=1.0)
        write_shard(out / f"{stem}.parquet", indices.numpy(), labels.numpy(),
                    (images * 255).round().to(torch.uint8))
        counts = np.bincount(labels.numpy())
        print(f"regenerated {len(indices)} samples (indices {int(indices[0])}..{int(indices[-1])}) "
              f"-> {out / (stem + '.png')}, {out / (stem + '.parquet')}; predicted classes "
              f"{ {c: int(n) for c, n in enumerate(counts) if n} }")

    return run_guarded(body)


if __name__ == "__main__":
    sys.exit(main())
