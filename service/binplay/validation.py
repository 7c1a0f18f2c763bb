"""Checks of a job's inputs that need no training, shared by every job.

Each runs before anything is written and before Ray starts, and fails in one line naming
the problem (``StateError``, ``DataError`` or ``ConfigError``: exit 2):

- ``check_run_place``: a run's place that already holds a checkpoint is resumed only by
  the config that wrote it, from a state this BinPlay reads (checked before the stream is
  rebuilt over the old one);
- ``check_state_location``: a ``--state`` is a learn state (or an empty place for the
  first learn), not a run directory or some other file;
- ``check_image_shape`` / ``builtin_shape`` / ``check_labels_fit``: images a saved run or
  state is asked to take have its (C, H, W), and labels its classifier has outputs for;
- ``check_stream_inputs``: a stream's user data builds (read, labels, shapes, capacity),
  for jobs whose training starts elsewhere (Tune's trials).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from binplay.config import BinPlayConfig, StreamConfig
from binplay.data.sources import SHAPES
from binplay.data.types import DataError
from binplay.state import STATE_FILE, StateError
from binplay.storage import is_uri, run_root

Shape = tuple[int, int, int]
STATE_MARKS = ("LATEST", "versions", "staging", "lock.json")  # what a learn state holds
RUN_MARKS = ("checkpoint", "report.json", "stream")  # what a run directory holds


def check_image_shape(got: tuple[int, ...], expected: tuple[int, ...], where: str,
                      whose: str = "the run's") -> None:
    """Images of another (C, H, W) than a model was built for cannot be fed to it."""
    got, expected = tuple(int(d) for d in got), tuple(int(d) for d in expected)
    if got != expected:
        raise DataError(f"{where}: images of shape {got} (C, H, W), {whose} are {expected}")


def check_labels_fit(labels: torch.Tensor, head: int | None, where: str,
                     why: str | None = None) -> None:
    """Labels a classifier of ``head`` outputs can be scored on: 0..head-1 (``head`` None:
    only never negative). ``why`` says where the head's size comes from."""
    if len(labels) and int(labels.min()) < 0:
        raise DataError(f"{where}: label {int(labels.min())} is negative")
    if head is not None and len(labels) and int(labels.max()) >= head:
        raise DataError(f"{where}: label {int(labels.max())} does not fit the classifier's {head} "
                        f"outputs ({why or f'classes 0..{head - 1}'})")


def builtin_shape(stream: StreamConfig) -> Shape | None:
    """The image shape a stream config fixes without reading data: a built-in dataset's, or
    ``stream.image_shape`` for user data (None: known only once the data is read)."""
    shape = SHAPES.get(stream.dataset) or stream.image_shape
    return None if shape is None else tuple(int(d) for d in shape)  # type: ignore[return-value]


def _is_run(path: Path) -> bool:
    return any((path / mark).exists() for mark in RUN_MARKS) or any(path.glob("checkpoint_*"))


def _is_state(path: Path) -> bool:
    return any((path / mark).exists() for mark in STATE_MARKS)


def check_run_path(path: str | Path, flag: str = "--checkpoint") -> None:
    """A learn state given where a run is expected is named as such."""
    path = Path(path)
    if path.is_dir() and _is_state(path) and not (path / STATE_FILE).is_file():
        raise StateError(f"{flag} {path}: a learn state (jobs.learn), not a run; use --state")


def check_state_location(uri: str, flag: str = "--state") -> None:
    """A local ``--state`` is a directory: a learn state, or a place where the first learn
    makes one; a run directory or a file is refused. URIs are checked by the state store
    when it reads them."""
    if is_uri(uri) and not uri.startswith("file://"):
        return
    path = Path(uri.removeprefix("file://"))
    if not path.exists() or _is_state(path):
        return
    if path.is_file():
        raise StateError(f"{flag} {path}: not a BinPlay state (a file; a state is a directory "
                         f"that jobs.learn writes)")
    if _is_run(path):
        raise StateError(f"{flag} {path}: not a BinPlay state but a run (jobs.train); use "
                         f"--checkpoint, or a new --state directory")
    # Any other directory may take a first learn: a state's files (LATEST, versions/,
    # staging/) sit beside what it holds, which is never touched.


def check_run_place(cfg: BinPlayConfig) -> None:
    """Resuming a local run: its newest checkpoint must be readable, of a state format this
    BinPlay reads and written by the same config. Checked before the stream is rebuilt,
    so a refused resume leaves the run as it was (a URI run is checked once fetched)."""
    from binplay.inference import resolve_state_path
    from binplay.state import load_state

    root = run_root(cfg)
    if is_uri(root):
        return
    place = Path(root)
    if not place.is_dir() or not any(place.glob("checkpoint*")):
        return
    try:
        path = resolve_state_path(place)
    except StateError:
        return  # checkpoint directories without a state.pt: nothing to resume yet
    load_state(path, cfg)


def check_stream_inputs(cfg: BinPlayConfig) -> None:
    """Build a user-data stream into a scratch directory and drop it: every check of
    ``build_stream`` (readable files, labels, shapes, test rows, capacity) runs on this
    process. For a search, whose trials build the stream only once Ray has started."""
    from binplay.data.stream import build_stream

    if cfg.stream.dataset in SHAPES:
        return  # built-in data: no file of the user's to check
    with tempfile.TemporaryDirectory(prefix="binplay-check-") as tmp:
        build_stream(cfg, Path(tmp) / "stream")
