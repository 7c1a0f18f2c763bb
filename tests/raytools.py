"""Helpers for the Ray tests: run a job as a subprocess and watch its output lines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKER_PID = re.compile(r"\(RayTrainWorker pid=(\d+)")


def write_config(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path


def run_job(args: list[str], env: dict[str, str], timeout: float = 600,
            on_line: Callable[[str, subprocess.Popen], None] | None = None) -> tuple[int, str]:
    """Run ``python -m jobs.<...>`` and return (exit code, all output); ``on_line`` may kill it."""
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    lines = []
    deadline = time.time() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if on_line is not None:
            on_line(line, proc)
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise TimeoutError("job timed out:\n" + "".join(lines[-50:]))
    return proc.wait(), "".join(lines)
