"""Seeds derived from the run seed and a position: every draw of a run is reproducible.

A resumed epoch, a learn of one task and a Ray worker all recompute the seed of what they
draw from (run seed, task, phase, epoch, rank, ...) instead of carrying generator states.
"""

from __future__ import annotations

import hashlib


def derived_seed(*parts: object) -> int:
    """A stable 63-bit seed from the run seed and a position (task, phase, epoch, rank)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
