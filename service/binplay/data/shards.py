"""A stream's task shards on disk: Parquet files of columns ``index``, ``label`` and ``image``
(raw uint8 bytes, C*H*W), the image shape in the schema metadata, so reading back is
lossless and checked. Written atomically (a reader never sees half a shard).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from binplay.data.types import DataError

SHAPE_KEY = b"binplay.image_shape"


def write_shard(path: Path, index: np.ndarray, labels: np.ndarray, images: torch.Tensor) -> None:
    shape = tuple(images.shape[1:])
    flat = images.reshape(len(images), -1).numpy()
    blobs = pa.array([row.tobytes() for row in flat], type=pa.binary())
    table = pa.table({"index": pa.array(index, pa.int64()), "label": pa.array(labels, pa.int64()),
                      "image": blobs})
    table = table.replace_schema_metadata({SHAPE_KEY: json.dumps(shape).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # a reader never sees half a shard


def table_to_tensors(table: pa.Table, shape: tuple[int, ...], origin: str):
    """(index, images uint8 (N,C,H,W), labels) from a shard table, with sizes checked."""
    size = int(np.prod(shape))
    blob = table.column("image").combine_chunks()
    if len(blob) and blob.null_count:
        raise DataError(f"{origin}: a row has no image")
    if pa.types.is_large_binary(blob.type):
        blob = blob.cast(pa.binary())
    offsets = np.frombuffer(blob.buffers()[1], dtype=np.int32)[blob.offset: blob.offset + len(blob) + 1]
    if len(blob) and not np.all(np.diff(offsets) == size):
        raise DataError(f"{origin}: an image has the wrong number of bytes for shape {shape}")
    buf = np.frombuffer(blob.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[0] + size * len(blob)]
    images = torch.from_numpy(buf.copy()).reshape(len(blob), *shape)
    index = torch.from_numpy(table.column("index").to_numpy().astype(np.int64))
    labels = torch.from_numpy(table.column("label").to_numpy().astype(np.int64))
    return index, images, labels


def read_shards(paths: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    parts = []
    for path in paths:
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet shard ({str(exc).splitlines()[0]})") from None
        meta = table.schema.metadata or {}
        if SHAPE_KEY not in meta or not {"index", "label", "image"} <= set(table.column_names):
            raise DataError(f"{path}: not a BinPlay stream shard (columns/metadata missing)")
        parts.append(table_to_tensors(table, tuple(json.loads(meta[SHAPE_KEY])), path))
    return tuple(torch.cat(t) for t in zip(*parts))  # type: ignore[return-value]
