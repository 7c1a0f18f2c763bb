"""Where a run's files live: ``<run.storage_path>/<name>/``, a local path or a URI.

A run's place is its identity: everything of a run goes there (checkpoints, the
stream's Parquet shards that workers on other nodes read, report.json/.md and the
figures), so the same place resumes and a new place starts a new run. With a URI
(s3://, gs://, any pyarrow filesystem) files are written to a local staging directory
first and then copied up; an in-process run's checkpoint is copied up after every save
and fetched back before a resume.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow.fs as pafs
from pydantic import ValidationError

from binplay.config import BinPlayConfig, ConfigError


def is_uri(path: str) -> bool:
    return "://" in path


def storage_uri(cfg: BinPlayConfig) -> str:
    """Absolute storage root: Ray Train's ``RunConfig.storage_path``."""
    path = cfg.run.storage_path
    return path if is_uri(path) else str(Path(path).resolve())


def run_root(cfg: BinPlayConfig) -> str:
    return f"{storage_uri(cfg).rstrip('/')}/{cfg.name}"


def place_run(cfg: BinPlayConfig, output: str) -> BinPlayConfig:
    """The config of the run that lives at ``output``: ``run.storage_path`` becomes its
    parent and ``name`` its last part, so checkpoints, stream and report all go there."""
    output = output.rstrip("/")
    if is_uri(output):
        parent, _, name = output.rpartition("/")
    else:
        path = Path(output).resolve()
        parent, name = str(path.parent), path.name
    placed = cfg.model_copy(deep=True)
    try:
        placed.run.storage_path = parent
        placed.name = name
    except ValidationError:
        raise ConfigError(f"--output {output}: the run's directory name '{name}' may only use "
                          f"letters, digits, '_', '.' and '-'") from None
    return placed


class RunFiles:
    """A local directory to write into, and the place it is published to (if elsewhere)."""

    def __init__(self, cfg: BinPlayConfig):
        root = run_root(cfg)
        self.remote: str | None = None
        if is_uri(root):
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
            if source.is_dir():
                fs.create_dir(path, recursive=True)
            pafs.copy_files(str(source), path, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=fs)
        return self.location(relative)

    def fetch(self, relative: str) -> bool:
        """Copy ``remote/relative`` down into ``local/relative`` if it exists there."""
        if self.remote is None:
            return (self.local / relative).exists()
        fs, path = pafs.FileSystem.from_uri(self.location(relative))
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return False
        target = self.local / relative
        target.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(path, str(target), source_filesystem=fs,
                        destination_filesystem=pafs.LocalFileSystem())
        return True
