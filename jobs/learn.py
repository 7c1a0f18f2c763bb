"""Learn one more task into a versioned state, as the data arrives: one job per arrival.

    python -m jobs.learn --state runs/shop --data day1.parquet --test day1_test.parquet \
        --config configs/smoke.yaml
    python -m jobs.learn --state runs/shop --data day2/ --set classifier.epochs=8 --keep 3
    python -m jobs.learn --state runs/shop --rollback 1      # the next learn extends version 1

--data is a Parquet file (``image`` or ``img.bytes``, and integer ``label``) or an image
folder (``<root>/<class>/*.png``). The first learn's config (--config/--set) becomes the
state's; a later learn starts from it and may change what no code or model shape depends
on (epochs, learning rates, batch sizes, ray.*, run.*). The head has
classifier.max_classes outputs (default: the classes stream.tasks declares).

Publishes versions/vNNNN and then switches LATEST; a learn killed mid-way leaves the last
version usable, and the same command run again resumes it. A second learn on the same
state fails at once in one line. On a cluster the state is an s3:// (or other pyarrow)
URI and ray.num_workers > 0 trains through Ray Train:

    RAY_ADDRESS=http://127.0.0.1:8265 RAY_AUTH_MODE=token ray job submit --working-dir . \
        -- python -m jobs.learn --state s3://bucket/shop --data /data/day2.parquet \
        --set ray.num_workers=2
"""

from __future__ import annotations

import sys

from jobs.common import absent_roots, job_parser, positive_int, run_guarded


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--state", required=True, help="state location: a directory or a URI")
    parser.add_argument("--data", help="the new task: Parquet file or image folder")
    parser.add_argument("--test", help="test images (any learnt classes): metrics at the time")
    parser.add_argument("--config", help="YAML run config (the first learn's becomes the state's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (repeatable)")
    parser.add_argument("--keep", type=positive_int, help="after publishing, keep only the newest N versions")
    parser.add_argument("--rollback", type=int, metavar="N",
                        help="instead of learning: point LATEST back at version N (newer ones stay)")
    parser.add_argument("--discard-unfinished", action="store_true",
                        help="drop an unfinished learn of other data instead of refusing")
    args = parser.parse_args(argv)

    def body() -> None:
        from binplay.config import ConfigError, load_config
        from binplay.validation import check_state_location
        from binplay.versions.learn import LearnRequest, learn, rollback

        check_state_location(args.state)  # a run directory or a stray file is not a state
        if args.config is not None:
            load_config(args.config, args.set)  # a bad config file fails before the state is locked

        if args.rollback is not None:
            if args.data:
                raise ConfigError("--rollback: a rollback learns nothing; run jobs.learn --data after it")
            rollback(args.state, args.rollback)
            return
        if not args.data:
            raise ConfigError("--data: required (the new task's Parquet file or image folder)")
        learn(LearnRequest(state=args.state, data=args.data, test=args.test, config=args.config,
                           overrides=args.set, keep=args.keep,
                           discard_unfinished=args.discard_unfinished))

    return run_guarded(body, absent_roots([args.state]))  # a first learn refused leaves no state dir


if __name__ == "__main__":
    sys.exit(main())
