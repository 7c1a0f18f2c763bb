#!/usr/bin/env bash
# Issue 12's checks on a lent GPU machine, in one call (README.md beside this file):
#
#   run(command="bash benchmarks/device/issue12.sh", carry=[".device-carry"], timeout_s=590)
#
# Steps, each under its own time limit so one that hangs leaves time for the next; logs
# and the benchmark's table land in $OUT:
#   1. install the carried Ray and wheels into /tmp/site (skipped on a warm machine)
#   2. ray_smoke.py --gpu: ray.init with the dashboard, an actor, a use_gpu TorchTrainer
#   3. the smoke job on Ray Train with ray.use_gpu=true, inline replay and then replay
#      actors that book a quarter of the GPU each (the worker half)
#   4. benchmarks/replay_actors.py on the CPU (the trainer at 2 threads, actors on the
#      spare cores): the speedup where there are spare cores
# STEPS="smoke gpu_train bench" picks steps (default all).
set -u
C=$PWD/.device-carry
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ ! -f /tmp/site/ray/__init__.py ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$C"/whl/*.whl && tar -xJf "$C"/ray-*-cp312-pruned.tar.xz -C /tmp/site \
    || { echo "install failed"; exit 1; }
fi
export PYTHONPATH=/tmp/site:$PWD/service:$PWD BINPLAY_DATA_MIRROR=$C/data
python3 -c 'import ray, pydantic, torch; print("ray", ray.__version__, ray.__file__, "pydantic",
pydantic.__version__, "torch", torch.__version__, torch.cuda.get_device_name())'
echo "cpus: $(nproc)"

step() {  # step NAME LIMIT_S CMD...
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  echo "=== $name: rc=$rc, $((SECONDS - start)) s (limit $limit s)"
}
GPU_JOB=(python3 -m jobs.train --config configs/smoke.yaml --set stream.dataset=mnist
         --set ray.use_gpu=true --set run.device=cuda)

for s in ${STEPS:-smoke gpu_train bench}; do
  case $s in
    smoke) step ray_smoke 90 python3 benchmarks/device/ray_smoke.py --gpu --dashboard
           grep -E 'actor ok|worker:|TorchTrainer|RAY_SMOKE|Error' "$OUT/ray_smoke.log" ;;
    gpu_train)
      step train_gpu_inline 150 "${GPU_JOB[@]}" --set run.storage_path=/tmp/runs_gpu_inline
      grep -E 'ray ready|device|average accuracy|Error' "$OUT/train_gpu_inline.log" | tail -4
      step train_gpu_actors 120 "${GPU_JOB[@]}" --set run.storage_path=/tmp/runs_gpu_actors \
        --set ray.gpus_per_worker=0.5 --set replay.mode=actors --set replay.actors=2 \
        --set replay.gpus_per_actor=0.25
      grep -E 'actors|average accuracy|Error' "$OUT/train_gpu_actors.log" | tail -4 ;;
    bench)
      step replay_actors 300 python3 benchmarks/replay_actors.py --config configs/split_mnist.yaml \
        --actors 1,2 --trainer-threads 2 --inline-threads 2 --set run.device=cpu \
        --set "stream.tasks=[[0,1],[2,3]]" --set autoencoder.samples_per_class=1000 \
        --set autoencoder.decoder_epochs=8 --set classifier.epochs=3 \
        --set stream.test_per_class=200 --out /tmp/bench/actors
      grep -E '^\||medians|done:|Error' "$OUT/replay_actors.log" ;;
    *) echo "unknown step $s" >&2 ;;
  esac
done
exit 0
