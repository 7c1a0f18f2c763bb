"""Read TensorBoard event files back: TFRecord framing, events parsed with tensorboardX's protobufs."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

from tensorboardX.proto.event_pb2 import Event


def _records(path: Path):
    data = path.read_bytes()
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        pos += 12  # length and its CRC
        yield data[pos:pos + length]
        pos += length + 4  # the record and its CRC


def scalars(directory: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} over every event file under ``directory`` (the latest write wins)."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    files = sorted(Path(directory).rglob("events.out.tfevents.*"))
    assert files, f"no event file under {directory}"
    for path in files:
        for record in _records(path):
            event = Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out[value.tag][event.step] = value.simple_value
    return dict(out)
