"""Batch inference with a versioned state through Ray Data: predictions and probabilities.

    python -m jobs.predict --state runs/shop --data new_images.parquet --output predictions
    python -m jobs.predict --state s3://bucket/shop --version 2 --data x.parquet --output out

--data is a Parquet file with an image column (``image`` or ``img.bytes``; a ``label``
column is optional and kept), or a folder of image files (any depth; each row keeps its
file's ``path``). --output becomes a directory of Parquet files, one row per input row or
file: its other columns, ``prediction``, ``probability`` and ``probabilities`` (one per
classifier output). Ray is the cluster RAY_ADDRESS names, or an embedded local one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jobs.common import job_parser, positive_int, run_guarded


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--state", required=True, help="a versioned state (directory or URI)")
    parser.add_argument("--version", type=int, help="this version instead of the latest")
    parser.add_argument("--data", required=True, help="Parquet file of images, or a folder of image files")
    parser.add_argument("--output", required=True, help="directory of the predictions (Parquet)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per Ray Data batch")
    args = parser.parse_args(argv)

    def body() -> None:
        import tempfile

        from binplay.config import BinPlayConfig
        from binplay.ray_train.cluster import ensure_ray
        from binplay.validation import check_state_location
        from binplay.versions.classes import ledger_names
        from binplay.versions.predict import check_input, predict
        from binplay.versions.store import StateStore
        from binplay.versions.use import image_shape, open_version

        check_state_location(args.state)
        store = StateStore(args.state)
        with tempfile.TemporaryDirectory(prefix="binplay-predict-") as tmp:
            version, run = open_version(store, args.version, tmp)
            payload, shape = run.path.read_bytes(), image_shape(run)
        names = ledger_names(store.ledger(version))  # a prediction_name column where named
        resize = run.cfg.stream.resize  # images are brought to the state's shape as its learns did
        data = check_input(Path(args.data), shape, resize)  # before Ray starts
        ensure_ray(BinPlayConfig.model_validate(run.state["config"]))
        result = predict(payload, data, Path(args.output), args.batch_size, names)
        print(f"version {version}: {result['rows']} predictions -> {result['output']}")

    return run_guarded(body)


if __name__ == "__main__":
    sys.exit(main())
