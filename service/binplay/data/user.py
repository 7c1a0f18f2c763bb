"""User data: a Parquet file of encoded images + integer labels, or an image folder.

Parquet follows the common dataset-hub schema (``img`` struct with ``bytes``, or a
plain ``image`` column of bytes) plus ``label``. An image folder holds one
sub-directory per class (``<root>/<class>/*.png``); integer directory names are the
labels, otherwise the sorted directory order is.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image, UnidentifiedImageError

from binplay.data.types import DataError, ImageSet

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _decode(blob: bytes, where: str, expected_shape: tuple[int, int, int] | None) -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(blob))
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{where}: undecodable image ({exc})") from None
    channels = expected_shape[0] if expected_shape else (1 if img.mode in ("L", "1", "I") else 3)
    img = img.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if expected_shape is not None and tuple(arr.shape) != tuple(expected_shape):
        raise DataError(f"{where}: image of shape {tuple(arr.shape)}, expected {tuple(expected_shape)}")
    return arr


def decode_image(blob: bytes, where: str) -> np.ndarray:
    """One encoded image as stored, (C, H, W) uint8: its channel count is not converted."""
    return _decode(blob, where, None)


def _image_column(table: pa.Table, path: Path) -> list[bytes]:
    for name in ("img", "image"):
        if name not in table.column_names:
            continue
        col = table.column(name).combine_chunks()
        if pa.types.is_struct(col.type):
            col = col.field("bytes")
        if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
            raise DataError(f"{path}: column '{name}' holds {col.type}, expected image bytes")
        return col.to_pylist()
    raise DataError(f"{path}: no image column (expected 'img' with 'bytes', or 'image')")


def read_image_parquet(path: str | Path,
                       expected_shape: tuple[int, int, int] | None = None) -> ImageSet:
    """Decode every row; the first image fixes the shape when none is expected."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    if "label" not in table.column_names:
        raise DataError(f"{path}: no 'label' column")
    labels = table.column("label").to_numpy()
    if labels.dtype.kind not in "iu":
        raise DataError(f"{path}: 'label' column holds {labels.dtype}, expected integers")
    blobs = _image_column(table, path)
    arrays = []
    for row, blob in enumerate(blobs):
        if blob is None:
            raise DataError(f"{path}: row {row} has no image")
        arr = _decode(blob, f"{path} row {row}", expected_shape)
        expected_shape = expected_shape or tuple(arr.shape)
        arrays.append(arr)
    if not arrays:
        raise DataError(f"{path}: no rows")
    return ImageSet(torch.from_numpy(np.stack(arrays)), torch.from_numpy(labels.astype(np.int64)),
                    str(path))


def read_image_folder(root: str | Path,
                      expected_shape: tuple[int, int, int] | None = None) -> ImageSet:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder does not exist")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise DataError(f"{root}: no class sub-directories (<root>/<class>/*.png)")
    numeric = all(p.name.isdigit() for p in class_dirs)
    arrays, labels = [], []
    for order, folder in enumerate(class_dirs):
        label = int(folder.name) if numeric else order
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            arr = _decode(file.read_bytes(), str(file), expected_shape)
            expected_shape = expected_shape or tuple(arr.shape)
            arrays.append(arr)
            labels.append(label)
    if not arrays:
        raise DataError(f"{root}: no images found")
    return ImageSet(torch.from_numpy(np.stack(arrays)), torch.tensor(labels, dtype=torch.int64),
                    str(root))
