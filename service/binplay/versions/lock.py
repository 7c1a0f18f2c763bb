"""One learn at a time per state: a lock object that works on local disks and object storage.

Local disks: the lock file is created with O_EXCL, which is atomic. Object storage
(pyarrow's S3 and GCS filesystems expose no create-if-absent): the learn checks that no
live lock exists, writes one naming a fresh owner id, waits ``SETTLE_S`` and reads it back;
two learns that both saw no lock then both wrote it read back the later writer's id, so
only that one proceeds. This holds when a learn's check-to-write gap is shorter than the
settle time (seconds, against milliseconds measured), which is the guarantee we state.
Publishing re-checks the lock and that the pointer still names the parent version (a
compare before the swap), so a learn that lost its lock never switches the pointer.

A lock is live while its holder refreshes it (every ``TTL_S / 4``); a holder on this host
whose process is gone (SIGKILL) is dead at once, one elsewhere after ``TTL_S`` without a
refresh. A dead lock is taken over: that is how re-running a killed learn resumes it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from binplay.state import StateError
from binplay.versions.store import StateStore

LOCK = "lock.json"
TTL_S = float(os.environ.get("BINPLAY_LOCK_TTL_S", "120"))
SETTLE_S = float(os.environ.get("BINPLAY_LOCK_SETTLE_S", "2"))


class StateBusy(StateError):
    """Another learn holds the state."""


def _alive(record: dict) -> bool:
    if record.get("host") == socket.gethostname():
        try:
            os.kill(int(record.get("pid", -1)), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError):
            pass
    return time.time() - float(record.get("heartbeat", 0)) < TTL_S


class StateLock:
    """Held from ``acquire`` to ``release`` (a context manager); refreshed in the background."""

    def __init__(self, store: StateStore, purpose: str):
        self.store, self.purpose = store, purpose
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _record(self) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "purpose": self.purpose, "heartbeat": time.time()}).encode()

    def _read(self) -> dict | None:
        raw = self.store.read_bytes(LOCK)
        try:
            return None if raw is None else json.loads(raw)
        except ValueError:
            # Created but not yet written (or torn): held until it is TTL_S old.
            return {"heartbeat": self.store.modified(LOCK)}

    def _busy(self, record: dict) -> StateBusy:
        age = time.time() - float(record.get("heartbeat", 0))
        return StateBusy(f"{self.store.uri}: another learn holds the state ({record.get('purpose', '?')}, "
                         f"pid {record.get('pid', '?')} on {record.get('host', '?')}, refreshed "
                         f"{age:.0f}s ago); wait for it to finish")

    def acquire(self) -> StateLock:
        record = self._read()
        if record is not None:
            if _alive(record):
                raise self._busy(record)
            self.store.delete(LOCK)  # its holder died: take the state over (resume)
        if self.store.local:
            path = Path(self.store.root) / LOCK
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raise self._busy(self._read() or {}) from None
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._record())
        else:
            self.store.write_bytes(LOCK, self._record())
            time.sleep(SETTLE_S)
            if not self.held():
                raise self._busy(self._read() or {})
        self._thread = threading.Thread(target=self._refresh, daemon=True, name="binplay-lock")
        self._thread.start()
        return self

    def held(self) -> bool:
        record = self._read()
        return bool(record) and record.get("owner") == self.owner

    def _refresh(self) -> None:
        while not self._stop.wait(TTL_S / 4):
            if not self.held():
                self.lost = True
                return
            self.store.write_bytes(LOCK, self._record())

    def check(self) -> None:
        """Before publishing: the lock must still be ours."""
        if self.lost or not self.held():
            raise StateBusy(f"{self.store.uri}: this learn lost its lock to another one; "
                            f"nothing was published")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held():
            self.store.delete(LOCK)

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
