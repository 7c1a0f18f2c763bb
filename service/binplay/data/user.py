"""User data: a Parquet file of encoded images + integer labels, or an image folder.

Parquet follows the common dataset-hub schema (``img`` struct with ``bytes``, or a
plain ``image`` column of bytes) plus ``label``, and optionally ``label_name`` (the
class's name, for figures). An image folder holds one sub-directory per class
(``<root>/<class>/*.png``); integer directory names are the labels, otherwise the
sorted directory order is, and the directory names are the class names.

How images are taken (``stream.image_shape``, ``stream.resize``, ``stream.on_bad_image``):

- ``resize: none`` (the default, as before): with an expected shape its channel count
  is converted to and another H x W is refused; without one images are read as stored.
- ``resize: crop`` or ``pad``: every image is brought to the expected (C, H, W): EXIF
  orientation applied; converted to C channels (1: PIL ``L``, ITU-R 601-2 luma; 3:
  ``RGB``, grey replicated; alpha dropped); then, if its size differs, scaled keeping
  its aspect ratio with Pillow's bicubic filter (antialiased when shrinking): ``crop``
  covers H x W and cuts the centre (``ImageOps.fit``), ``pad`` fits inside H x W and
  centres it on black (``ImageOps.pad``). The same bytes give the same pixels.
- ``on_bad_image``: a file (or Parquet row) that cannot be read or decoded fails in one
  line naming it (``error``), or is skipped and counted (``skip``: the count and the
  first names are printed, ``ImageSet.skipped`` lists them). Files are never modified.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from binplay.data.types import DataError, ImageSet

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
Resize = Literal["none", "crop", "pad"]
OnBadImage = Literal["error", "skip"]
Shape = tuple[int, int, int]
RESAMPLE = Image.Resampling.BICUBIC
LABEL_NAME = "label_name"
# What Pillow raises on a truncated, corrupt or hostile file (a decompression bomb).
_PIL_ERRORS = (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError,
               Image.DecompressionBombError)


class BadImage(DataError):
    """One file or row that cannot be read or decoded (``on_bad_image: skip`` skips it)."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _fit(img: Image.Image, shape: Shape, resize: Resize) -> Image.Image:
    img = ImageOps.exif_transpose(img)  # phone photos: pixels as the camera was held
    img = img.convert("L" if shape[0] == 1 else "RGB")
    size = (shape[2], shape[1])  # PIL sizes are (W, H)
    if img.size == size:
        return img
    if resize == "crop":
        return ImageOps.fit(img, size, method=RESAMPLE, centering=(0.5, 0.5))
    return ImageOps.pad(img, size, method=RESAMPLE, color=0, centering=(0.5, 0.5))


def _decode(blob: bytes, where: str, expected_shape: Shape | None,
            resize: Resize = "none") -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(blob))
        img.load()
        if resize != "none":
            if expected_shape is None:
                raise TypeError("resize needs an expected shape")
            img = _fit(img, expected_shape, resize)
    except _PIL_ERRORS as exc:
        # Pillow's message names a BytesIO object's address: say what it means instead.
        why = ("not an image format Pillow reads" if isinstance(exc, UnidentifiedImageError)
               else _first_line(exc))
        raise BadImage(f"{where}: undecodable image ({why})") from None
    channels = expected_shape[0] if expected_shape else (1 if img.mode in ("L", "1", "I") else 3)
    img = img.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if expected_shape is not None and tuple(arr.shape) != tuple(expected_shape):
        raise DataError(f"{where}: image of shape {tuple(arr.shape)}, expected {tuple(expected_shape)}"
                        f"{'' if resize != 'none' else ' (stream.resize: crop or pad resizes it)'}")
    return arr


def decode_image(blob: bytes, where: str) -> np.ndarray:
    """One encoded image as stored, (C, H, W) uint8: its channel count is not converted."""
    return _decode(blob, where, None)


def ingest_image(blob: bytes, where: str, shape: Shape, resize: Resize) -> np.ndarray:
    """One encoded image brought to ``shape`` as ``stream.resize`` says (module docstring);
    with ``none`` it is decoded as stored, for the caller to compare."""
    return _decode(blob, where, shape, resize) if resize != "none" else decode_image(blob, where)


class _Collect:
    """Decoded images and labels of one source; bad ones raise or are skipped and counted."""

    def __init__(self, shape: Shape | None, resize: Resize, on_bad_image: OnBadImage):
        if resize != "none" and shape is None:
            raise DataError("stream.resize: needs stream.image_shape (the size to resize to)")
        self.shape, self.resize, self.on_bad = shape, resize, on_bad_image
        self.arrays: list[np.ndarray] = []
        self.labels: list[int] = []
        self.skipped: list[str] = []

    def take(self, read: Callable[[], bytes | None], where: str, label: int) -> None:
        try:
            try:
                blob = read()
            except OSError as exc:
                raise BadImage(f"{where}: unreadable file ({exc.strerror or _first_line(exc)})") from None
            if blob is None:
                raise BadImage(f"{where}: no image")
            arr = _decode(blob, where, self.shape, self.resize)
        except BadImage:
            if self.on_bad != "skip":
                raise
            self.skipped.append(where)
            return
        self.shape = self.shape or tuple(arr.shape)  # type: ignore[assignment]
        self.arrays.append(arr)
        self.labels.append(label)

    def image_set(self, origin: str | Path, what: str) -> ImageSet:
        if self.skipped:
            more = ", ..." if len(self.skipped) > 3 else ""
            print(f"{origin}: skipped {len(self.skipped)} unreadable image(s) (stream.on_bad_image: "
                  f"skip): {', '.join(self.skipped[:3])}{more}", flush=True)
        if not self.arrays:
            raise DataError(f"{origin}: no {what}" + (f" ({len(self.skipped)} skipped as unreadable)"
                                                      if self.skipped else ""))
        return ImageSet(torch.from_numpy(np.stack(self.arrays)),
                        torch.tensor(self.labels, dtype=torch.int64), str(origin),
                        tuple(self.skipped))


def image_files(folder: Path) -> list[Path]:
    """The images under ``folder`` (any depth, by suffix), in path order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


IMAGE_COLUMNS = ("img", "image")  # the hub's {bytes, path} struct, or plain encoded bytes


def image_blobs(table: pa.Table, where: str) -> tuple[str, list[bytes | None]]:
    """The encoded images of a Parquet table and the column they came from. A table with both
    columns is refused: which one holds the images is the user's to say, not ours to guess."""
    present = [name for name in IMAGE_COLUMNS if name in table.column_names]
    if not present:
        raise DataError(f"{where}: no image column (expected 'img' with 'bytes', or 'image')")
    if len(present) > 1:
        raise DataError(f"{where}: both an 'img' and an 'image' column; keep the one that holds "
                        f"the images")
    name = present[0]
    col = table.column(name).combine_chunks()
    if pa.types.is_struct(col.type):
        col = col.field("bytes")
    if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
        raise DataError(f"{where}: column '{name}' holds {col.type}, expected image bytes")
    return name, col.to_pylist()


def _names_of(labels: np.ndarray, names: list[object], path: Path) -> dict[int, str]:
    found: dict[int, str] = {}
    for label, name in zip(labels.tolist(), names):
        if name is None:
            continue
        if found.setdefault(int(label), str(name)) != str(name):
            raise DataError(f"{path}: label {label} has two names in '{LABEL_NAME}': "
                            f"'{found[int(label)]}' and '{name}'")
    return found


def parquet_class_names(path: str | Path) -> dict[int, str]:
    """Class names of a Parquet file's optional ``label_name`` column ({} without one)."""
    path = Path(path)
    try:
        if LABEL_NAME not in pq.read_schema(path).names:
            return {}
        table = pq.read_table(path, columns=["label", LABEL_NAME])
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
    return _names_of(table.column("label").to_numpy(), table.column(LABEL_NAME).to_pylist(), path)


def read_image_parquet(path: str | Path, expected_shape: Shape | None = None,
                       resize: Resize = "none", on_bad_image: OnBadImage = "error") -> ImageSet:
    """Decode every row; the first image fixes the shape when none is expected."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
    if "label" not in table.column_names:
        raise DataError(f"{path}: no 'label' column")
    labels = table.column("label").to_numpy()
    if labels.dtype.kind not in "iu":
        raise DataError(f"{path}: 'label' column holds {labels.dtype}, expected integers")
    if LABEL_NAME in table.column_names:  # checked here, so a clash fails before training
        _names_of(labels, table.column(LABEL_NAME).to_pylist(), path)
    _, blobs = image_blobs(table, str(path))
    collect = _Collect(expected_shape, resize, on_bad_image)
    for row, (blob, label) in enumerate(zip(blobs, labels.tolist())):
        collect.take(lambda blob=blob: blob, f"{path} row {row}", int(label))
    return collect.image_set(path, "rows")


def folder_classes(root: str | Path) -> list[tuple[int, str, Path]]:
    """(label, class name, directory) of an image folder's class sub-directories."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder does not exist")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise DataError(f"{root}: no class sub-directories (<root>/<class>/*.png)")
    numeric = all(p.name.isdigit() for p in class_dirs)
    return [(int(p.name) if numeric else order, p.name, p) for order, p in enumerate(class_dirs)]


def user_class_names(path: str | Path) -> tuple[dict[int, str], bool]:
    """(name by label, positional) of user data: an image folder's directory names, or a
    Parquet file's ``label_name`` column ({} without one). ``positional``: the labels are only
    the sorted order of named directories, not labels the user gave."""
    path = Path(path)
    if path.is_dir():
        found = folder_classes(path)
        return {label: name for label, name, _ in found}, not all(n.isdigit() for _, n, _ in found)
    return parquet_class_names(path), False


def read_image_folder(root: str | Path, expected_shape: Shape | None = None,
                      resize: Resize = "none", on_bad_image: OnBadImage = "error") -> ImageSet:
    collect = _Collect(expected_shape, resize, on_bad_image)
    for label, _, folder in folder_classes(root):
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                collect.take(file.read_bytes, str(file), label)
    return collect.image_set(root, "images found")
