"""NCCL sanity check on one node: init the process group the Ray Train GPU path uses, all-reduce.

    python benchmarks/nccl_check.py [--mb 256]

Spawns one process per visible GPU (world size = GPU count), all-reduces a tensor of
ones and checks the sum, then times a large all-reduce (bus bandwidth, NCCL's own
formula). With one GPU this proves NCCL initialises and runs, not multi-GPU speed.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, mb: int) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29531")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    x = torch.ones(1024, device="cuda")
    dist.all_reduce(x)
    assert torch.all(x == world), f"all_reduce gave {x[0].item()}, expected {world}"
    big = torch.ones(mb * 2**20 // 4, device="cuda")
    for _ in range(3):
        dist.all_reduce(big)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    reps = 10
    for _ in range(reps):
        dist.all_reduce(big)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / reps
    if rank == 0:
        bus = 2 * (world - 1) / world * big.numel() * 4 / seconds / 1e9 if world > 1 else 0.0
        print(f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}: world {world}, "
              f"all_reduce of {mb} MB in {seconds * 1e3:.2f} ms (bus {bus:.0f} GB/s); sum check OK")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=256)
    args = parser.parse_args()
    world = torch.cuda.device_count()
    if world == 0:
        raise SystemExit("nccl_check: no CUDA device visible")
    print(f"{world} GPU(s): {', '.join(torch.cuda.get_device_name(i) for i in range(world))}")
    mp.spawn(_worker, args=(world, args.mb), nprocs=world)


if __name__ == "__main__":
    main()
