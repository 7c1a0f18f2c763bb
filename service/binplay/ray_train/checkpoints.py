"""The newest checkpoint of a Ray Train run, read straight from its storage.

Ray resumes from the checkpoint its controller recorded in its own snapshot; a driver
killed right after a worker reported can leave a newer ``checkpoint_*`` on storage that
the snapshot does not list yet. The driver checks the newest one before ``fit()``, and
every worker resumes from whichever state is further along, Ray's or the newest on disk.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pyarrow.fs as pafs

from binplay.config import BinPlayConfig
from binplay.state import MEASUREMENT_FILE, STATE_FILE, load_state
from binplay.storage import run_root


def newest_checkpoint(cfg: BinPlayConfig) -> tuple[str, dict[str, Any]] | None:
    """(location, state) of the newest ``checkpoint_*`` holding a state (names sort by time)."""
    fs, root = pafs.FileSystem.from_uri(run_root(cfg))
    entries = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    dirs = sorted(e.base_name for e in entries
                  if e.type == pafs.FileType.Directory and e.base_name.startswith("checkpoint_"))
    for name in reversed(dirs):
        if fs.get_file_info(f"{root}/{name}/{STATE_FILE}").type != pafs.FileType.File:
            continue  # a checkpoint still being written, or an unrelated folder
        with tempfile.TemporaryDirectory() as tmp:
            for part in (STATE_FILE, MEASUREMENT_FILE):
                if fs.get_file_info(f"{root}/{name}/{part}").type == pafs.FileType.File:
                    pafs.copy_files(f"{root}/{name}/{part}", f"{tmp}/{part}", source_filesystem=fs,
                                    destination_filesystem=pafs.LocalFileSystem())
            return f"{run_root(cfg)}/{name}", load_state(tmp, cfg)
    return None


def progress(state: dict[str, Any] | None) -> tuple[int, int]:
    """How far a state is: (tasks done, epochs done in the task in flight)."""
    return (-1, -1) if state is None else (state["task"], state["cursor"])
