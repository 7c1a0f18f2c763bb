"""Search hyperparameters with Ray Tune over whole continual runs (ASHA after every task).

    python -m jobs.tune --config configs/tune/smoke.yaml --output runs/tune-smoke
    python -m jobs.tune --config configs/tune/smoke.yaml --dry-run   # validate, count, exit

The tune config names a base training config, overrides, a search space of dotted
training-config fields, the search (grid/random), ASHA, resources per trial, concurrent
trials, seeds per configuration and, optionally, tune_tasks: k (tune on the first k
tasks) and trial_overrides (a reduced stream for the trials only), with final: true
(then train the whole stream, on the whole data, with the winner).
Writes trials.csv, trials.md, metric_per_task.png and best.yaml (a config jobs.train
takes as it is). Re-running the same command resumes an interrupted search.
"""

from __future__ import annotations

import sys

from jobs.common import job_parser, run_guarded


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--config", required=True, help="tune config (configs/tune/*.yaml)")
    parser.add_argument("--output", help="the search's directory (default: its storage, or "
                        "runs/tune-<name>); the same place resumes")
    parser.add_argument("--dry-run", action="store_true", help="validate every trial's config, exit")
    args = parser.parse_args(argv)

    def body() -> None:
        from binplay.tune.config import check_search, load_search, trial_count
        from binplay.validation import check_stream_inputs

        search, base = load_search(args.config)
        check_stream_inputs(check_search(search, base, args.config))  # user data: before Ray starts
        if args.dry_run:
            print(f"tune config OK: {trial_count(search)} trials (ASHA may stop some early)")
            return
        from binplay.tune.search import run_search

        run_search(search, base, args.output)

    return run_guarded(body)


if __name__ == "__main__":
    sys.exit(main())
