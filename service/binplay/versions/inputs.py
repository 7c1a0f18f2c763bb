"""User images for the versioned jobs: read, checked against the state, fingerprinted.

Every job that reads images (learn, evaluate, predict) reads them here, on the driver,
before anything trains or the state is touched: a file that is missing, empty, corrupt,
of non-integer labels, or of images of another size or channel count than the state's
fails in one line (DataError, exit 2).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from binplay.config import StreamConfig
from binplay.data.types import DataError, ImageSet
from binplay.data.user import image_files, read_image_folder, read_image_parquet
from binplay.validation import check_image_shape

Shape = tuple[int, int, int]


def _existing(path: str | Path, flag: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{flag} {path}: does not exist")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{flag} {path}: empty file")
    return path


def fingerprint(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of an image folder's relative paths and bytes: a few
    bytes in the ledger that tell a re-run of the same learn from new data."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else image_files(path)
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_images(path: str | Path, flag: str, shape: Shape | None,
                stream: StreamConfig | None = None) -> ImageSet:
    """A Parquet file (``image`` or ``img.bytes``, ``label``) or an image folder. Each image
    is decoded as stored and compared with ``shape``, never converted, unless the state's
    ``stream.resize`` brings it to ``shape`` (``binplay.data.user``); ``stream.on_bad_image``
    says whether an undecodable one fails or is skipped and counted."""
    path = _existing(path, flag)
    resize = stream.resize if stream is not None else "none"
    reader = read_image_folder if path.is_dir() else read_image_parquet
    data = reader(path, shape if resize != "none" else None, resize=resize,
                  on_bad_image=stream.on_bad_image if stream is not None else "error")
    if shape is not None:
        check_image_shape(data.images.shape[1:], shape, f"{flag} {path}", whose="the state's")
    return data  # labels: binplay.versions.classes.read_learnt puts them in the state's space


def classes_of(data: ImageSet) -> list[int]:
    return sorted(int(c) for c in np.unique(data.labels.numpy()))


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0
