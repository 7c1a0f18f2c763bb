"""Binary codes c(i): a pure function of a sample's index (paper Sec. 3.2, Lemma 1).

Sub-vector j of c(i) holds the m least significant bits of ``i * p_j ** e_j`` with
``e_j = floor(m ln 2 / ln p_j)``. Because ``p_j ** e_j`` is odd, multiplication by it
is a bijection modulo 2**m, so i = 1..2**m get pairwise distinct sub-vectors and
codes repeat with period 2**m (the capacity). Everything here is exact integer
arithmetic: any process, on any node, recomputes the same codes from (i, config).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

import numpy as np
import torch

IndexLike = Sequence[int] | range | np.ndarray | torch.Tensor


class CapacityError(ValueError):
    """An index (or a stream) needs more codes than 2**bits_per_part distinct ones."""


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def check_primes(primes: Iterable[int]) -> list[int]:
    """Each sub-vector needs its own odd prime; say which one is wrong otherwise."""
    seen: set[int] = set()
    out = []
    for p in primes:
        if not isinstance(p, int) or isinstance(p, bool):
            raise ValueError(f"primes: {p!r} is not an integer")
        if p % 2 == 0:
            raise ValueError(f"primes: {p} is even; codes need odd primes")
        if not is_prime(p):
            raise ValueError(f"primes: {p} is not prime")
        if p in seen:
            raise ValueError(f"primes: {p} is repeated; each sub-vector needs its own prime")
        seen.add(p)
        out.append(p)
    if not out:
        raise ValueError("primes: at least one prime is needed")
    return out


def capacity(bits_per_part: int) -> int:
    """Number of distinct codes: indices 1..2**m never collide (Lemma 1)."""
    return 2**bits_per_part


def prime_multiplier(p: int, bits_per_part: int) -> int:
    """``p ** floor(m ln2 / ln p)``, computed with integers only.

    ``m ln2 / ln p`` is never an integer for odd p, so the floor is the largest e
    with ``p**e < 2**m``; a loop over integers finds it without float rounding.
    """
    limit = 2**bits_per_part
    value = 1
    while value * p < limit:
        value *= p
    return value


def _as_uint64(indices: IndexLike) -> np.ndarray:
    if isinstance(indices, torch.Tensor):
        arr = indices.detach().cpu().numpy()
    elif isinstance(indices, range):
        arr = np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
    else:
        arr = np.asarray(indices)
    if arr.ndim != 1:
        raise ValueError(f"indices must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"indices must be integers, got dtype {arr.dtype}")
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise ValueError(f"indices must be >= 0, got {int(arr.min())}")
    return arr.astype(np.uint64, copy=False)


def code_values(indices: IndexLike, *, bits_per_part: int, primes: Sequence[int]) -> np.ndarray:
    """Integer value of every sub-vector: shape (n, len(primes)), uint64.

    uint64 products wrap modulo 2**64, and 2**m divides 2**64, so the low m bits
    of the wrapped product are exactly those of the true product.
    """
    if not 1 <= bits_per_part <= 62:
        raise ValueError(f"bits_per_part must be in 1..62, got {bits_per_part}")
    primes = check_primes(primes)
    idx = _as_uint64(indices)
    mults = np.array([prime_multiplier(p, bits_per_part) for p in primes], dtype=np.uint64)
    mask = np.uint64(2**bits_per_part - 1)
    with np.errstate(over="ignore"):
        return (idx[:, None] * mults[None, :]) & mask


def _chunk_width(bits: int) -> int:
    """Widest chunk (<= 12 bits) that divides ``bits``: chunks then tile a sub-vector exactly."""
    return max(d for d in range(1, 13) if bits % d == 0)


@cache
def _pm1_table(width: int) -> torch.Tensor:
    """Row v is the ``width`` bits of v as values in {-1, +1}, least significant bit first."""
    v = np.arange(2**width)[:, None] >> np.arange(width)
    return torch.tensor((v & 1) * 2.0 - 1.0, dtype=torch.float32)


def _bits_pm1(values: np.ndarray, bits: int) -> torch.Tensor:
    """(n, k) uint64 -> (n, k*bits) float32 in {-1, +1}, least significant bit first.

    Each sub-vector is cut into equal chunks and one table lookup writes every
    chunk's floats straight into the output: a million 160-bit codes in ~0.5 s on
    2 cores, most of it writing the 640 MB result (benchmarks/codes_speed.py).
    """
    n, k = values.shape
    width = _chunk_width(bits)
    shifts = np.arange(bits // width, dtype=np.uint64) * np.uint64(width)
    chunks = ((values[:, :, None] >> shifts) & np.uint64(2**width - 1)).astype(np.int32)
    flat = _pm1_table(width).index_select(0, torch.from_numpy(chunks).reshape(-1))
    return flat.reshape(n, k * bits)


def index_codes(
    indices: IndexLike, *, bits_per_part: int, primes: Sequence[int], wrap: bool = False
) -> torch.Tensor:
    """Codes of the given 1-based indices, float32 of shape (n, bits_per_part * len(primes)).

    Values are -1/+1. Indices beyond the capacity 2**m would repeat earlier codes,
    so they are refused unless ``wrap=True`` (used to show the period).
    """
    idx = _as_uint64(indices)
    if not wrap and idx.size:
        cap = capacity(bits_per_part)
        if int(idx.max()) > cap:
            raise CapacityError(
                f"index {int(idx.max())} exceeds code capacity 2**{bits_per_part} = {cap}; "
                f"raise codes.bits_per_part"
            )
        if int(idx.min()) < 1:
            raise ValueError("indices are 1-based: index 0 has no code")
    values = code_values(idx, bits_per_part=bits_per_part, primes=primes)
    return _bits_pm1(values, bits_per_part)


def task_prefix(task_id: int, *, bits: int, prime: int) -> torch.Tensor:
    """The task id coded like an index (task t -> index t + 1), shape (bits,)."""
    if bits == 0:
        return torch.zeros(0)
    if task_id + 1 > capacity(bits):
        raise CapacityError(f"task {task_id} exceeds 2**{bits} task prefixes; raise codes.task_bits")
    return index_codes([task_id + 1], bits_per_part=bits, primes=[prime])[0]


def class_bits(classes: IndexLike, bits: int) -> torch.Tensor:
    """One-hot class bits as +-1, shape (n, bits): bit c is +1 for class c."""
    labels = torch.as_tensor(_as_uint64(classes).astype(np.int64))
    if len(labels) and int(labels.max()) >= bits:
        raise ValueError(f"class {int(labels.max())} needs more than codes.class_bits={bits}")
    return torch.nn.functional.one_hot(labels, bits).float() * 2 - 1


def stream_codes(indices: IndexLike, task_ids: IndexLike, codes_cfg,
                 classes: IndexLike | None = None) -> torch.Tensor:
    """Full latent codes: task prefix, class bits (``codes_cfg.class_bits``; the class of
    each index, from the ledger's class ranges), then the index code: (n, latent_dim)."""
    parts = []
    if codes_cfg.task_bits:
        tids = _as_uint64(task_ids).astype(np.int64)
        uniq = np.unique(tids)
        table = {int(t): task_prefix(int(t), bits=codes_cfg.task_bits, prime=codes_cfg.task_prime)
                 for t in uniq}
        parts.append(torch.stack([table[int(t)] for t in uniq])[np.searchsorted(uniq, tids)])
    if getattr(codes_cfg, "class_bits", 0):
        if classes is None:
            raise ValueError("codes.class_bits is set: the class of each index is needed")
        parts.append(class_bits(classes, codes_cfg.class_bits))
    parts.append(index_codes(indices, bits_per_part=codes_cfg.bits_per_part, primes=codes_cfg.primes))
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
