"""Files of a versioned state on any pyarrow filesystem: the pointer, versions, their records.

A version is written completely (state.pt, ledger.json, then manifest.json with the
others' SHA-256) before the small ``LATEST`` pointer names it, so a reader that follows
the pointer always finds a whole version, and a learn that dies before the switch leaves
the previous one in place. The pointer is replaced by a rename on local disks and by a
single PUT on object storage, where a reader sees the old object or the new one.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from pydantic import BaseModel, ConfigDict, ValidationError

from binplay.state import STATE_FILE, StateError
from binplay.storage import is_uri

FORMAT_VERSION = 1  # of the layout and records below; a newer one is refused, never guessed at
POINTER = "LATEST"
LEDGER_FILE = "ledger.json"
MANIFEST_FILE = "manifest.json"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pointer(Record):
    format_version: int
    version: int


class TaskEntry(Record):
    """One learnt task: a few integers and strings, nothing per sample."""

    task_id: int
    first_index: int
    last_index: int
    classes: list[int]
    class_ranges: list[list[int]] = []
    class_names: dict[str, str] = {}  # label -> name where the data named its classes
    data_sha256: str  # of the --data file (or folder): a re-run is recognised, other data is not mixed
    test_sha256: str | None = None
    source: str
    samples: int
    config: dict[str, Any]  # the resolved config this task was learnt with
    metrics: dict[str, Any]  # at the time: accuracy per task and per class, fidelity, seconds
    learnt_at: str


class VersionLedger(Record):
    format_version: int = FORMAT_VERSION
    tasks: list[TaskEntry] = []

    @property
    def total(self) -> int:
        return self.tasks[-1].last_index if self.tasks else 0


class FileEntry(Record):
    size: int
    sha256: str


class VersionManifest(Record):
    format_version: int
    version: int
    parent: int | None
    created: str
    files: dict[str, FileEntry]


def version_dir(version: int) -> str:
    return f"versions/v{version:04d}"


def staging_dir(version: int) -> str:
    return f"staging/v{version:04d}"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_record(model: type[Record], raw: bytes, where: str) -> Any:
    try:
        data = json.loads(raw)
    except ValueError:
        raise StateError(f"{where}: not JSON") from None
    found = data.get("format_version") if isinstance(data, dict) else None
    if isinstance(found, int) and found > FORMAT_VERSION:
        raise StateError(f"{where}: state format {found} is newer than this BinPlay reads "
                         f"({FORMAT_VERSION}); upgrade BinPlay")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise StateError(f"{where}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


class StateStore:
    """A state location: ``/path``, ``file:///path``, ``s3://bucket/prefix``, ..."""

    def __init__(self, uri: str):
        uri = uri.rstrip("/")
        self.uri = uri if is_uri(uri) else str(Path(uri).resolve())
        self.local = not is_uri(uri) or uri.startswith("file://")
        try:
            self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        except (pa.ArrowException, OSError) as exc:
            raise StateError(f"--state {uri}: {str(exc).splitlines()[0]}") from None

    def location(self, relative: str = "") -> str:
        return f"{self.uri}/{relative}" if relative else self.uri

    def _path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self._path(relative)).type != pafs.FileType.NotFound

    def _unreachable(self, exc: OSError, relative: str) -> StateError:
        return StateError(f"{self.location(relative)}: {str(exc).splitlines()[0]}")

    def modified(self, relative: str) -> float:
        """Seconds since the epoch of the last write of a file (0 if it is gone)."""
        info = self.fs.get_file_info(self._path(relative))
        return info.mtime.timestamp() if info.mtime is not None else 0.0

    def read_bytes(self, relative: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self._path(relative)) as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:  # a missing bucket, no credentials, no route: one line
            raise self._unreachable(exc, relative) from None

    def write_bytes(self, relative: str, data: bytes) -> None:
        try:
            self._write(relative, data)
        except OSError as exc:
            raise self._unreachable(exc, relative) from None

    def _write(self, relative: str, data: bytes) -> None:
        path = self._path(relative)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        if not self.local:  # one PUT: the object appears whole or not at all
            with self.fs.open_output_stream(path) as fh:
                fh.write(data)
            return
        tmp = f"{path}.tmp-{time.time_ns()}"
        with self.fs.open_output_stream(tmp) as fh:
            fh.write(data)
        self.fs.move(tmp, path)  # a rename: readers see the old file or the new one

    def delete(self, relative: str) -> None:
        info = self.fs.get_file_info(self._path(relative))
        if info.type == pafs.FileType.NotFound:
            return
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self._path(relative))
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self._path(relative))
        parent = relative.rpartition("/")[0]
        if parent and not self.fs.get_file_info(
                pafs.FileSelector(self._path(parent), allow_not_found=True)):
            try:  # an empty staging/ (or its marker object) would suggest a learn in flight
                self.fs.delete_dir(self._path(parent))
            except FileNotFoundError:
                pass

    # -- the pointer and the versions ------------------------------------------------------
    def pointer(self) -> Pointer | None:
        raw = self.read_bytes(POINTER)
        return None if raw is None else parse_record(Pointer, raw, self.location(POINTER))

    def latest(self) -> int:
        """The published version the pointer names; 0 for a state nothing was learnt into."""
        pointer = self.pointer()
        return 0 if pointer is None else pointer.version

    def set_pointer(self, version: int) -> None:
        body = Pointer(format_version=FORMAT_VERSION, version=version).model_dump_json()
        self.write_bytes(POINTER, body.encode())

    def versions(self) -> list[int]:
        """Every version directory holding a manifest (written last, so complete)."""
        selector = pafs.FileSelector(self._path("versions"), allow_not_found=True)
        found = []
        for entry in self.fs.get_file_info(selector):
            name = entry.base_name
            if entry.type == pafs.FileType.Directory and name[1:].isdigit():
                if self.exists(f"versions/{name}/{MANIFEST_FILE}"):
                    found.append(int(name[1:]))
        return sorted(found)

    def resolve(self, version: int | None) -> int:
        """``version``, or the latest; refused in one line if it is not there."""
        latest = self.latest()
        if latest == 0:
            raise StateError(f"{self.uri}: no published version (run jobs.learn first)")
        chosen = latest if version is None else version
        if chosen != latest and chosen not in self.versions():
            raise StateError(f"{self.uri}: version {chosen} not found (versions "
                             f"{self.versions()}, latest {latest})")
        self.manifest(chosen)  # checks its format version
        return chosen

    def manifest(self, version: int) -> VersionManifest:
        where = self.location(f"{version_dir(version)}/{MANIFEST_FILE}")
        raw = self.read_bytes(f"{version_dir(version)}/{MANIFEST_FILE}")
        if raw is None:
            raise StateError(f"{where}: missing (the version was pruned or never completed)")
        return parse_record(VersionManifest, raw, where)

    def ledger(self, version: int) -> VersionLedger:
        if version == 0:
            return VersionLedger()
        raw = self.read_bytes(f"{version_dir(version)}/{LEDGER_FILE}")
        where = self.location(f"{version_dir(version)}/{LEDGER_FILE}")
        if raw is None:
            raise StateError(f"{where}: missing")
        return parse_record(VersionLedger, raw, where)

    def fetch_state(self, version: int, directory: str | Path) -> Path:
        """Copy a version's state.pt into a local directory (it is read from there)."""
        target = Path(directory) / STATE_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        raw = self.read_bytes(f"{version_dir(version)}/{STATE_FILE}")
        if raw is None:
            raise StateError(f"{self.location(version_dir(version))}: no {STATE_FILE}")
        target.write_bytes(raw)
        return target

    def write_version(self, version: int, parent: int, state: bytes, ledger: VersionLedger) -> None:
        """Write a whole version; its manifest last, so a version with a manifest is complete."""
        files = {STATE_FILE: state, LEDGER_FILE: ledger.model_dump_json(indent=1).encode()}
        for name, data in files.items():
            self.write_bytes(f"{version_dir(version)}/{name}", data)
        manifest = VersionManifest(
            format_version=FORMAT_VERSION, version=version, parent=parent or None, created=now(),
            files={n: FileEntry(size=len(d), sha256=hashlib.sha256(d).hexdigest())
                   for n, d in files.items()})
        self.write_bytes(f"{version_dir(version)}/{MANIFEST_FILE}",
                         manifest.model_dump_json(indent=1).encode())

    def prune(self, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` versions; the latest is never deleted."""
        latest = self.latest()
        older = [v for v in self.versions() if v != latest]
        doomed = older[:max(0, len(older) - (keep - 1))]
        for version in doomed:
            self.delete(version_dir(version))
        return doomed
