#!/usr/bin/env bash
# GPU checks for a lent machine, each step under its own time limit, logs in $OUT.
#
#   bash benchmarks/gpu_check.sh env smoke nccl throughput      # ~2 minutes
#   bash benchmarks/gpu_check.sh mnist cifar                    # the paper-preset runs
#
# Needs python3 with torch (CUDA), BINPLAY_DATA_MIRROR holding MNIST/ and cifar10/, and
# the Python packages of pyproject.toml except Ray (the runs are in-process:
# ray.num_workers=0). Budgets of the paper-preset runs come from MNIST_SET/CIFAR_SET.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/service:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
RUNS=${RUNS:-/tmp/gpu_runs}
INPROC=(--set ray.num_workers=0 --set run.device=cuda --set run.threads=8 --set "run.storage_path=$RUNS")

step() {  # step NAME LIMIT_S CMD...: run, keep the log, print its tail and the exit code
  local name=$1 limit=$2 start rc
  shift 2
  echo "=== $name (limit ${limit}s): $*"
  start=$(date +%s)
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n "${TAIL:-15}" "$OUT/$name.log"
  echo "=== $name: rc=$rc, $(($(date +%s) - start)) s"
}

for what in "$@"; do
  case $what in
    env) step env 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
           $PY -c 'import torch, torchvision, pydantic, pyarrow, yaml, matplotlib;
print(torch.__version__, torchvision.__version__, pydantic.__version__, torch.cuda.get_device_name())'" ;;
    smoke) step smoke 120 "$PY" -m jobs.train --config configs/smoke.yaml --set stream.dataset=mnist \
             "${INPROC[@]}" ;;
    nccl) step nccl 90 "$PY" benchmarks/nccl_check.py ;;
    throughput) step throughput 240 bash -c "$PY benchmarks/autoencoder_throughput.py --device cuda \
                  --steps 50 --paper-steps 50 && $PY benchmarks/autoencoder_throughput.py --device cuda \
                  --steps 30 --paper-steps 30 --config configs/split_cifar10_paper.yaml" ;;
    mnist) step mnist "${MNIST_LIMIT:-240}" "$PY" -m jobs.train --config configs/split_mnist_paper.yaml \
             "${INPROC[@]}" ${MNIST_SET:-} ;;
    cifar) step cifar "${CIFAR_LIMIT:-240}" "$PY" -m jobs.train --config configs/split_cifar10_paper.yaml \
             "${INPROC[@]}" ${CIFAR_SET:-} ;;
    *) echo "unknown step $what" >&2; exit 2 ;;
  esac
done
for name in split_mnist_paper split_cifar10_paper; do
  [ -f "$RUNS/$name/report.json" ] && cp "$RUNS/$name/report.json" "$OUT/$name.report.json"
done
exit 0
