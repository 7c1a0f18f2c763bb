"""Throughput of the autoencoder phases, per preset, and the assignment's share of an epoch.

    .venv/bin/python benchmarks/autoencoder_throughput.py [--samples 12000] [--repeats 3]
    python benchmarks/autoencoder_throughput.py --device cuda --steps 50 --paper-steps 50 \
        --config configs/split_cifar10_paper.yaml     # CIFAR shapes and codes

Without --config: 28x28x1 images and the default codes (m=16 x 8 primes + 10 task bits).

Synthetic images (speed does not depend on content), the codes of a 12,000-sample task.
Prints medians over repeats; no thresholds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from binplay.assignment import CodeBook
from binplay.codes import stream_codes
from binplay.config import AutoencoderConfig, CodesConfig, load_config
from binplay.data.sources import SHAPES
from binplay.models.autoencoder import build_autoencoder
from binplay.train import autoencoder as ae


def _median_time(fn, repeats: int) -> float:
    times = []
    fn()  # warm-up: allocator, cuDNN autotuning, lazy inits
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # GPU work is asynchronous: time it to completion


def bench(preset: str, n: int, steps: int, repeats: int, device: str, codes_cfg: CodesConfig,
          shape: tuple[int, int, int]) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = AutoencoderConfig(preset=preset, batch_size=128)
    encoder, decoder = build_autoencoder(preset, shape, codes_cfg.latent_dim, cfg.width)
    encoder.to(device)
    decoder.to(device)
    images = torch.rand(n, *shape, device=device)
    index = torch.arange(1, n + 1)
    codes = stream_codes(index, torch.zeros_like(index), codes_cfg).to(device)
    task = ae.CurrentTask(images, codes, 1, n)
    opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), 1e-3)
    gen = torch.Generator().manual_seed(0)
    mapping = torch.randperm(n)
    batch = cfg.batch_size
    out = {}
    for name, assign in (("warmup", False), ("assign", True)):
        t = _median_time(lambda assign=assign: ae.encoder_epoch(
            encoder, decoder, opt=opt, task=task, cfg=cfg, past=None, gen=gen, steps=steps,
            batch=batch, assign=assign), repeats)
        out[f"{name}_samples_per_s"] = steps * batch / t
    dec_opt = torch.optim.Adam(decoder.parameters(), 1e-3)
    t = _median_time(lambda: ae.decoder_epoch(decoder, opt=dec_opt, task=task, mapping=mapping,
                                              past=None, gen=gen, steps=steps, batch=batch),
                     repeats)
    out["decoder_samples_per_s"] = steps * batch / t

    # Assignment alone over a full epoch of this task (all n codes, batches of 128).
    def assign_epoch():
        book = CodeBook(task.codes)
        with torch.no_grad():
            for s in range(0, n, batch):
                book.assign(z_all[s:s + batch])

    with torch.no_grad():
        z_all = torch.cat([encoder(images[s:s + 512]) for s in range(0, n, 512)])
    assign_s = _median_time(assign_epoch, repeats)
    epoch_s = n / out["assign_samples_per_s"]  # a full assignment epoch at measured speed
    out["assignment_seconds_per_epoch"] = assign_s
    out["assignment_share_of_epoch"] = assign_s / epoch_s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=12000)
    parser.add_argument("--steps", type=int, default=20, help="steps timed per phase (compact)")
    parser.add_argument("--paper-steps", type=int, default=5,
                        help="steps timed per phase for the paper preset (~50x slower)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", default="compact,paper")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--config", help="take the codes and image shape from this run config")
    args = parser.parse_args()
    codes_cfg, shape = CodesConfig(), (1, 28, 28)
    if args.config:
        run_cfg = load_config(args.config)
        codes_cfg, shape = run_cfg.codes, SHAPES[run_cfg.stream.dataset]
    where = (torch.cuda.get_device_name() if args.device == "cuda"
             else f"{torch.get_num_threads()} CPU threads")
    print(f"torch {torch.__version__}, {where}, images {shape}, latent {codes_cfg.latent_dim}, "
          f"{args.samples} samples/codes, batch 128, median of {args.repeats}")
    rows = {}
    for preset in args.presets.split(","):
        steps = args.paper_steps if preset == "paper" else args.steps
        rows[preset] = bench(preset, args.samples, steps, args.repeats, args.device, codes_cfg, shape)
    keys = list(next(iter(rows.values())))
    print("| metric | " + " | ".join(rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{rows[p][key]:.3g}" for p in rows) + " |")
    if "compact" in rows and "paper" in rows:
        ratio = rows["compact"]["decoder_samples_per_s"] / rows["paper"]["decoder_samples_per_s"]
        print(f"compact / paper decoder-training speed: {ratio:.1f}x")


if __name__ == "__main__":
    main()
