import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from binplay.codes import (
    CapacityError,
    capacity,
    check_primes,
    index_codes,
    is_prime,
    prime_multiplier,
    stream_codes,
    task_prefix,
)
from binplay.config import CodesConfig

PRIMES8 = [3, 5, 7, 11, 13, 17, 19, 23]
ODD_PRIMES = [p for p in range(3, 102) if is_prime(p)]


@pytest.mark.parametrize("p", ODD_PRIMES)
def test_lemma1_bounds(p):
    for m in range(4, 33):
        value = prime_multiplier(p, m)
        assert 2**m < value * p and value < 2**m, (p, m)  # 2**m / p < p**e < 2**m
        rest = value
        while rest % p == 0:
            rest //= p
        assert rest == 1, (p, m, value)  # a power of p, hence odd
        if m <= 16:  # Lemma 1, point 2: i -> i * p**e mod 2**m is a bijection of 1..2**m
            residues = np.arange(1, 2**m + 1, dtype=np.uint64) * np.uint64(value) % np.uint64(2**m)
            assert len(np.unique(residues)) == 2**m, (p, m)


def test_multiplier_matches_formula_where_floats_are_exact():
    for p in ODD_PRIMES:
        for m in range(4, 25):
            assert prime_multiplier(p, m) == p ** math.floor(m * math.log(2) / math.log(p))


def test_codes_distinct_up_to_capacity():
    codes = index_codes(range(1, 2**16 + 1), bits_per_part=16, primes=PRIMES8)
    assert codes.shape == (2**16, 128)
    assert set(codes.unique().tolist()) == {-1.0, 1.0}
    assert len(torch.unique(codes, dim=0)) == 2**16
    # Every sub-vector alone is already a bijection of 1..2**m (Lemma 1, point 2).
    first_part = codes[:, :16]
    assert len(torch.unique(first_part, dim=0)) == 2**16


def test_period_is_capacity():
    idx = torch.arange(1, 500)
    a = index_codes(idx, bits_per_part=10, primes=[3, 5])
    b = index_codes(idx + 2**10, bits_per_part=10, primes=[3, 5], wrap=True)
    assert torch.equal(a, b)
    assert capacity(10) == 1024


def test_over_capacity_is_refused():
    with pytest.raises(CapacityError, match="exceeds code capacity 2\\*\\*8 = 256"):
        index_codes([1, 257], bits_per_part=8, primes=[3])
    index_codes([256], bits_per_part=8, primes=[3])  # the last index in capacity is fine


@pytest.mark.parametrize("primes,message", [([3, 4], "even"), ([3, 9], "not prime"),
                                            ([3, 5, 3], "repeated"), ([2], "even")])
def test_bad_primes(primes, message):
    with pytest.raises(ValueError, match=message):
        check_primes(primes)


def test_consecutive_codes_differ_in_many_bits():
    codes = index_codes(range(1, 5001), bits_per_part=16, primes=PRIMES8)
    hamming = (codes[1:] != codes[:-1]).float().mean(dim=1)
    assert float(hamming.mean()) >= 0.35


def test_pinned_values():
    # LSB first: 27 = 0b11011 -> 1 1 0 1 1; 54 mod 32 = 22 = 0b10110 -> 0 1 1 0 1.
    got = index_codes([1, 2], bits_per_part=5, primes=[3])
    assert got.tolist() == [[1, 1, -1, 1, 1], [-1, 1, 1, -1, 1]]


@pytest.mark.parametrize("m", [4, 5, 7, 12, 13, 16, 17, 20, 24, 31, 32])
def test_bits_match_python_integers(m):
    # Chunked table lookup (chunk width depends on m) against bit-by-bit Python ints.
    idx = [1, 2, 3, 2**m // 3, 2**m - 1, 2**m]
    got = index_codes(idx, bits_per_part=m, primes=[3, 7])
    for row, i in zip(got, idx):
        want = []
        for p in (3, 7):
            value = (i * prime_multiplier(p, m)) % 2**m
            want += [1.0 if (value >> b) & 1 else -1.0 for b in range(m)]
        assert row.tolist() == want


def test_same_codes_in_another_process():
    script = ("import torch, binplay.codes as c; "
              "x = c.index_codes(range(1, 3001), bits_per_part=20, primes=[3,5,7,11,13]); "
              "print(int((x > 0).long().mul(torch.arange(x.shape[1])).sum()), x.shape[1])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    x = index_codes(range(1, 3001), bits_per_part=20, primes=[3, 5, 7, 11, 13])
    expected = int((x > 0).long().mul(torch.arange(x.shape[1])).sum())
    assert out.stdout.split() == [str(expected), "100"]


def test_large_m_uses_exact_integers():
    # m = 40: i * p**e far exceeds 2**53 (float precision) and even 2**63.
    idx = [1, 12345, 2**39 + 7]
    got = index_codes(idx, bits_per_part=40, primes=[3])
    mult = prime_multiplier(3, 40)
    for row, i in zip(got, idx):
        value = (i * mult) % 2**40
        assert row.tolist() == [1.0 if (value >> b) & 1 else -1.0 for b in range(40)]


def test_task_prefix_and_stream_codes():
    cfg = CodesConfig(bits_per_part=8, primes=[3, 5], task_bits=4, task_prime=29)
    codes = stream_codes(torch.tensor([1, 2, 3]), torch.tensor([0, 0, 1]), cfg)
    assert codes.shape == (3, 20)
    assert torch.equal(codes[0, :4], task_prefix(0, bits=4, prime=29))
    assert torch.equal(codes[2, :4], task_prefix(1, bits=4, prime=29))
    assert not torch.equal(codes[0, :4], codes[2, :4])
    assert torch.equal(codes[:, 4:], index_codes([1, 2, 3], bits_per_part=8, primes=[3, 5]))
