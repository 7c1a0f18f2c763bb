"""The commands README.md and docs/CLUSTER.md show, read from the documents themselves (issue 29:
README's first jobs.learn command once failed as written).

- README's learn walkthrough (the fenced bash block of ``jobs.learn --state runs/shop ...``)
  runs as written, command after command, each exiting 0, in a scratch directory where
  ``configs/`` is the repository's. Substitutions, and only these:
  the data files it names (``day1.parquet``, ``day1_test.parquet``, ``day2.parquet``,
  ``all_test.parquet``, ``day3_images/``, ``incoming.parquet``) are tiny synthetic ones
  (28x28 grayscale, as smoke.yaml's Fashion-MNIST), and the first learn, whose config the
  state keeps, gets ``--set`` overrides that shrink every phase to one epoch and train in
  this process (``ray.num_workers=0``: the Ray Train path of a learn is
  tests/test_learn_ray.py's). jobs.predict starts an embedded Ray for its Ray Data pass.
- Every other ``python -m jobs.<job> ...`` line of a fenced block in README.md and
  docs/CLUSTER.md is only parsed, since it needs a cluster, object storage or a full
  dataset: its job's argument parser accepts it, and its config (``--config`` with its
  ``--set``; the ``--set`` alone on the defaults for a learn without ``--config``; a tune
  config with every trial's config) validates.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, png_bytes, synthetic_images, write_parquet

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(python -m jobs\.[^`]+)`")
WALKTHROUGH = "jobs.learn --state runs/shop"
SHRINK = ["--set", "autoencoder.warmup_epochs=1", "--set", "autoencoder.assignment_epochs=1",
          "--set", "autoencoder.decoder_epochs=1", "--set", "classifier.epochs=1",
          "--set", "ray.num_workers=0"]


def job_commands(block: str) -> list[tuple[str, list[str]]]:
    """(job, arguments) of every ``python -m jobs.<job>`` command in a shell block, with
    continuation lines joined and comments dropped."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        if "python -m jobs." not in line:
            continue  # YAML, file trees and other shell lines: never split
        words = shlex.split(line, comments=True)
        for i in range(len(words) - 2):
            if words[i] == "python" and words[i + 1] == "-m" and words[i + 2].startswith("jobs."):
                commands.append((words[i + 2].removeprefix("jobs."), words[i + 3:]))
                break
    return commands


def documented() -> dict[str, list[list[tuple[str, list[str]]]]]:
    """The job commands of each fenced block, then of the inline code spans that are whole
    commands (prose such as `python -m jobs.train --config configs/...` is left out), per
    document."""
    out = {}
    for doc in ("README.md", "docs/CLUSTER.md"):
        text = (REPO / doc).read_text()
        fenced = [job_commands(b) for b in FENCE.findall(text)]
        spans = [s for s in INLINE.findall(FENCE.sub("", text)) if "..." not in s and " --" in s]
        out[doc] = fenced + [job_commands(s) for s in spans]
    return out


def walkthrough() -> list[tuple[str, list[str]]]:
    blocks = [b for b in FENCE.findall((REPO / "README.md").read_text()) if WALKTHROUGH in b]
    assert len(blocks) == 1, "README.md: one fenced block holds the learn walkthrough"
    return job_commands(blocks[0])


def parsed_only() -> list[tuple[str, str, list[str]]]:
    steps = walkthrough()
    return [(doc, job, args) for doc, blocks in documented().items() for block in blocks
            for job, args in block if (job, args) not in steps]


def _write_data(root: Path) -> None:
    """The files the walkthrough names: each day's classes, test sets, new images."""
    def parquet(name: str, classes: list[int], per_class: int, seed: int) -> None:
        x, y = synthetic_images(per_class, classes, seed=seed)
        write_parquet(root / name, x, y)

    parquet("day1.parquet", [0, 1], 24, 1)
    parquet("day1_test.parquet", [0, 1], 8, 2)
    parquet("day2.parquet", [2, 3], 24, 3)
    parquet("all_test.parquet", [0, 1, 2, 3, 4], 8, 4)
    parquet("incoming.parquet", [0, 2, 4], 4, 5)
    x, y = synthetic_images(24, [4], seed=6)
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        folder = root / "day3_images" / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(png_bytes(np.asarray(img)))


def run(job: str, args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = importlib.import_module(f"jobs.{job}").main(args)
    except SystemExit as exc:  # argparse
        code = exc.code
    out = capsys.readouterr()
    return code, out.out[-3000:] + out.err


def test_the_documents_name_the_walkthrough_and_commands_to_parse():
    steps = walkthrough()
    assert [job for job, _ in steps] == ["learn", "learn", "learn", "evaluate", "generate",
                                         "predict", "evaluate", "learn"]
    assert {job for _, job, _ in parsed_only()} >= {"train", "learn", "predict"}


@pytest.mark.ray
def test_readme_learn_walkthrough_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(REPO / "configs")
    _write_data(tmp_path)
    try:
        for i, (job, args) in enumerate(walkthrough()):
            code, text = run(job, args + (SHRINK if i == 0 else []), capsys)
            assert code == 0, f"python -m jobs.{job} {shlex.join(args)}\n{text}"
    finally:
        import ray

        ray.shutdown()
    assert (tmp_path / "runs" / "shop-eval" / "evaluation.json").is_file()
    assert (tmp_path / "runs" / "shop-gen" / "task_1.png").is_file()
    assert any((tmp_path / "runs" / "shop-pred").glob("*.parquet"))
    assert (tmp_path / "runs" / "shop" / "LATEST").read_text().count('"version":2') == 1


@pytest.mark.parametrize("doc,job,args", parsed_only(),
                         ids=[f"{d.split('/')[-1]}-{j}-{i}" for i, (d, j, _) in enumerate(parsed_only())])
def test_documented_command_parses_and_its_config_validates(doc, job, args, monkeypatch):
    """Argparse accepts the command and its config validates; nothing runs."""
    from binplay.config import load_config
    from jobs import common

    seen = {}
    parse = common.OneLineParser.parse_args
    monkeypatch.setattr(common.OneLineParser, "parse_args",
                        lambda self, argv=None, ns=None: seen.setdefault("args", parse(self, argv, ns)))
    module = importlib.import_module(f"jobs.{job}")
    monkeypatch.setattr(module, "run_guarded", lambda *a, **k: 0, raising=False)
    monkeypatch.setattr(common, "run_guarded", lambda *a, **k: 0)
    monkeypatch.chdir(REPO)
    assert module.main(args) == 0, f"{doc}: python -m jobs.{job} {shlex.join(args)}"
    parsed = seen["args"]
    if job == "tune":
        from binplay.tune.config import load_search

        load_search(parsed.config)  # every trial's config is validated
    elif getattr(parsed, "config", None) or getattr(parsed, "set", None) and job != "evaluate":
        load_config(parsed.config, parsed.set)
