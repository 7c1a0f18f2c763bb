"""Batch inference through Ray Data: a Parquet file or a folder of images in, predictions out.

The driver checks what it can before Ray starts (the file opens, has rows and an image
column, integer labels if any, the first image's shape against the state's; a folder has
image files, the first of which decodes); each Ray
Data task decodes its batch, checks every image and scores it with the version's
classifier, loaded from the state's bytes (``torch.load(weights_only=True)``). Output
rows keep the input's columns other than the image (a folder's rows: ``path``, the image
file's) and add ``prediction`` (int64),
``probability`` (of the prediction) and ``probabilities`` (one per head output; 0 for
classes never learnt). The output directory appears only once every part is written.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from binplay.data.types import DataError
from binplay.data.user import IMAGE_SUFFIXES, Resize, image_blobs, image_files, ingest_image
from binplay.errors import DOMAIN_ERRORS, root_cause
from binplay.inference import SavedRun
from binplay.ray_train.cluster import configure_ray_data
from binplay.state import STATE_FILE
from binplay.versions.use import image_shape, probabilities

READ_CPUS = 0.25  # Ray notes: on 2 CPUs whole-CPU tasks beside other work stall; slivers run


FOLDER_COLUMN = "bytes"  # what Ray Data's read_binary_files calls a file's contents


@dataclass(frozen=True)
class PredictInput:
    """What ``check_input`` found: ``predict`` reads exactly this, without looking again."""

    path: Path
    rows: int
    files: list[Path] | None = None  # a folder's image files, in path order; None: Parquet


def check_input(path: Path, shape: tuple[int, int, int], resize: Resize = "none") -> PredictInput:
    """Driver-side checks, before Ray starts: bad input fails in one line."""
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise DataError(f"--data {path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        _decoded(files[0].read_bytes(), f"--data {files[0]}", shape, resize)
        return PredictInput(path, len(files), files)
    if not path.is_file():
        raise DataError(f"--data {path}: neither a Parquet file nor a folder of images")
    if path.stat().st_size == 0:
        raise DataError(f"--data {path}: empty file")
    try:
        meta = pq.ParquetFile(path)
        first = meta.read_row_group(0) if meta.num_row_groups else None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"--data {path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    if first is None or meta.metadata.num_rows == 0:
        raise DataError(f"--data {path}: no rows")
    if "label" in first.column_names and not pa.types.is_integer(first.schema.field("label").type):
        raise DataError(f"--data {path}: 'label' column holds {first.schema.field('label').type}, "
                        f"expected integers")
    _, blobs = image_blobs(first.slice(0, 1), f"--data {path}")
    _decoded(blobs[0], f"--data {path} row 0", shape, resize)
    return PredictInput(path, meta.metadata.num_rows)


def _decoded(blob: bytes | None, where: str, shape: tuple[int, int, int],
             resize: Resize = "none") -> np.ndarray:
    if blob is None:
        raise DataError(f"{where}: no image")
    # As stored (another channel count is refused, not converted) unless the state's
    # stream.resize brings every image to its shape, as its learns did.
    arr = ingest_image(blob, where, shape, resize)
    if tuple(arr.shape) != tuple(shape):
        raise DataError(f"{where}: image of shape {tuple(arr.shape)} (C, H, W), the state's are "
                        f"{tuple(shape)}")
    return arr


class Scorer:
    """A Ray Data UDF: one classifier per actor, built from the version's state bytes."""

    def __init__(self, state: bytes, origin: str, column: str | None = None,
                 names: dict[int, str] | None = None):
        self.column = column  # None: the Parquet file's image column; a folder's: FOLDER_COLUMN
        self.names = names or {}  # the ledger's class names: a prediction_name column
        self._tmp = tempfile.TemporaryDirectory(prefix="binplay-predict-")
        (Path(self._tmp.name) / STATE_FILE).write_bytes(state)
        torch.set_num_threads(1)
        self.run = SavedRun(Path(self._tmp.name) / STATE_FILE)
        self.shape, self.origin = image_shape(self.run), origin
        self.resize = self.run.cfg.stream.resize

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.column is None:
            name, blobs = image_blobs(batch, self.origin)
            where = [f"--data {self.origin}"] * len(blobs)
        else:  # a folder: each row names its file
            name, blobs = self.column, batch.column(self.column).to_pylist()
            where = [f"--data {p}" for p in batch.column("path").to_pylist()]
        images = torch.from_numpy(np.stack([_decoded(b, w, self.shape, self.resize)
                                             for b, w in zip(blobs, where)]))
        probs = probabilities(self.run, images)
        top = probs.max(dim=1)
        kept = batch.drop_columns([name])
        out = (kept.append_column("prediction", pa.array(top.indices.numpy(), pa.int64()))
               .append_column("probability", pa.array(top.values.numpy(), pa.float32()))
               .append_column("probabilities", pa.array(list(probs.numpy()), pa.list_(pa.float32()))))
        if not self.names:
            return out
        return out.append_column("prediction_name", pa.array(
            [self.names.get(int(label)) for label in top.indices.tolist()], pa.string()))


def predict(run_state: bytes, data: PredictInput, output: Path, batch_size: int = 64,
            names: dict[int, str] | None = None) -> dict[str, Any]:
    """Score every row of ``data`` (``check_input``'s) with Ray Data; writes Parquet parts
    under ``output`` (with ``names``, the ledger's: a ``prediction_name`` column too)."""
    import ray
    import ray.data

    configure_ray_data()
    ctx = ray.data.DataContext.get_current()
    # Otherwise a task's DataError reaches the driver as a UserCodeException that has lost it.
    ctx.raise_original_map_exception = True
    staging = output.with_name(f".{output.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        # local://: the input and the output are on the driver's machine; on a cluster of
        # several nodes Ray Data then runs the read and the write there.
        if data.files is not None:  # the files check_input counted, whatever their suffix's case
            files = [f"local://{f.resolve()}" for f in data.files]
            rows_in = ray.data.read_binary_files(files, include_paths=True, num_cpus=READ_CPUS)
            column: str | None = FOLDER_COLUMN
        else:
            rows_in = ray.data.read_parquet(f"local://{data.path.resolve()}", num_cpus=READ_CPUS)
            column = None
        (rows_in.map_batches(Scorer, fn_constructor_kwargs={"state": run_state,
                                                              "origin": str(data.path),
                                                              "column": column,
                                                              "names": names},
                             batch_size=batch_size, batch_format="pyarrow", concurrency=1,
                             num_cpus=READ_CPUS)
         .write_parquet(f"local://{staging.resolve()}"))
    except Exception as exc:  # Ray wraps a task's error; a bad image is the user's, in one line
        cause = root_cause(exc)
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(cause, DOMAIN_ERRORS):
            raise type(cause)(str(cause).splitlines()[0]) from None
        raise
    if output.exists():
        shutil.rmtree(output)
    staging.rename(output)
    return {"rows": data.rows, "output": str(output)}
