"""Where a run's files live: ``<run.storage_path>/<name>/``, a local path or a URI.

Everything of a run goes there: Ray Train's checkpoints, the stream's Parquet shards
(so that workers on other nodes read them), report.json/.md and the figures. With a
URI (s3://, gs://, any pyarrow filesystem) files are written to a local staging
directory first and then copied up.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from binplay.config import BinPlayConfig


def is_uri(path: str) -> bool:
    return "://" in path


def storage_uri(cfg: BinPlayConfig) -> str:
    """Absolute storage root: Ray Train's ``RunConfig.storage_path``."""
    path = cfg.run.storage_path
    return path if is_uri(path) else str(Path(path).resolve())


def run_root(cfg: BinPlayConfig) -> str:
    return f"{storage_uri(cfg).rstrip('/')}/{cfg.name}"


class RunFiles:
    """A local directory to write into, and the place it is published to (if elsewhere)."""

    def __init__(self, cfg: BinPlayConfig, override: str | None = None):
        root = run_root(cfg)
        self.remote: str | None = None
        if override:
            self.local = Path(override)
        elif is_uri(root):
            self._tmp = tempfile.TemporaryDirectory(prefix=f"binplay-{cfg.name}-")
            self.local, self.remote = Path(self._tmp.name), root
        else:
            self.local = Path(root)
        self.local.mkdir(parents=True, exist_ok=True)

    def location(self, relative: str = "") -> str:
        """Where a file written under ``local/relative`` can be read by any node."""
        base = self.remote or str(self.local.resolve())
        return f"{base}/{relative}" if relative else base

    def publish(self, relative: str = "") -> str:
        """Copy ``local/relative`` up to the remote storage (no-op for local storage)."""
        if self.remote is not None:
            fs, path = pafs.FileSystem.from_uri(self.location(relative))
            source = self.local / relative if relative else self.local
            pafs.copy_files(str(source), path, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=fs)
        return self.location(relative)
