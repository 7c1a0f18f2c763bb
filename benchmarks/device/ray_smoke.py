"""Smallest check that a carried Ray works: imports, an actor call, and a one-worker
TorchTrainer run (use_gpu with --gpu). Prints where ray came from and one line per step.

    python benchmarks/device/ray_smoke.py [--gpu] [--dashboard]
"""

import argparse
import tempfile
import time


def train_loop(config):
    import ray.train
    import ray.train.torch
    import torch

    model = ray.train.torch.prepare_model(torch.nn.Linear(8, 1))
    device = ray.train.torch.get_device()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 8, device=device), torch.randn(64, 1, device=device)
    for _ in range(5):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"worker: device {device} ({name}), loss {loss.item():.4f}", flush=True)
    if config["gpu"] and device.type != "cuda":
        raise RuntimeError(f"use_gpu=True but the worker got {device}")
    ray.train.report({"loss": loss.item(), "device": f"{device} {name}"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--dashboard", action="store_true")
    args = ap.parse_args()
    t = time.time()
    import ray
    import ray.train
    import ray.train.torch
    import ray.tune  # noqa: F401

    print(f"ray {ray.__version__} from {ray.__file__} (imports {time.time() - t:.1f}s)", flush=True)
    t = time.time()
    ray.init(address="local", include_dashboard=args.dashboard, dashboard_host="127.0.0.1")
    print(f"ray.init {time.time() - t:.1f}s; resources {ray.cluster_resources()}", flush=True)

    @ray.remote(num_cpus=0)
    class Echo:
        def plus_one(self, x):
            return x + 1

    t = time.time()
    assert ray.get(Echo.remote().plus_one.remote(41)) == 42
    print(f"actor ok {time.time() - t:.1f}s", flush=True)

    t = time.time()
    trainer = ray.train.torch.TorchTrainer(
        train_loop,
        train_loop_config={"gpu": args.gpu},
        scaling_config=ray.train.ScalingConfig(num_workers=1, use_gpu=args.gpu),
        run_config=ray.train.RunConfig(name="ray_smoke", storage_path=tempfile.mkdtemp()),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    print(f"TorchTrainer ok {time.time() - t:.1f}s", flush=True)
    ray.shutdown()
    print("RAY_SMOKE_OK")


if __name__ == "__main__":
    main()
