"""Time to compute a million binary codes (m=20 x 8 primes = 160 bits: capacity 2**20 >= 1e6), median of 5.

    .venv/bin/python benchmarks/codes_speed.py
"""

from __future__ import annotations

import statistics
import time

import torch

from binplay.codes import index_codes

PRIMES = [3, 5, 7, 11, 13, 17, 19, 23]


def main() -> None:
    index_codes(range(1, 1001), bits_per_part=16, primes=PRIMES)  # warm-up
    times = []
    for _ in range(5):
        start = time.perf_counter()
        codes = index_codes(range(1, 1_000_001), bits_per_part=20, primes=PRIMES)  # 2**20 >= 1e6
        times.append(time.perf_counter() - start)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: "
          f"1,000,000 codes of {codes.shape[1]} bits in {statistics.median(times):.3f} s "
          f"(median of 5; min {min(times):.3f} s)")


if __name__ == "__main__":
    main()
