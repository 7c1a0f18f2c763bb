"""Train BinPlay on a class-incremental stream.

    python -m jobs.train --config configs/smoke.yaml --output runs/smoke
    python -m jobs.train --config configs/smoke.yaml --dry-run       # validate, print, exit
    python -m jobs.train --config configs/split_fmnist.yaml --set ray.num_workers=2

On a cluster (RAY_ADDRESS selects it; see docs/CLUSTER.md):

    RAY_ADDRESS=http://127.0.0.1:8265 RAY_AUTH_MODE=token ray job submit --working-dir . \
        -- python -m jobs.train --config configs/smoke.yaml

Re-running the same command resumes from the latest checkpoint.
"""

from __future__ import annotations

import sys

from jobs.common import job_main, parser_with_config


def main(argv: list[str] | None = None) -> int:
    parser = parser_with_config(__doc__)
    parser.add_argument("--output", help="where the run lives: checkpoints, stream and report "
                        "(default: <run.storage_path>/<name>); the same place resumes, a new "
                        "place starts a new run")
    parser.add_argument("--dry-run", action="store_true", help="validate, print config, exit")

    def body(cfg, args) -> None:
        from binplay.storage import place_run

        if args.output:
            cfg = place_run(cfg, args.output)
        if args.dry_run:
            print(cfg.model_dump_json(indent=2))
            print(f"config OK (fingerprint {cfg.fingerprint()})")
            return
        from binplay.launch import train

        train(cfg)

    def place(cfg, args) -> str:
        from binplay.storage import place_run, run_root

        return run_root(place_run(cfg, args.output) if args.output else cfg)

    return job_main(parser, body, argv, place)


if __name__ == "__main__":
    sys.exit(main())
