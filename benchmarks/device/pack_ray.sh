#!/usr/bin/env bash
# Packs the pinned Ray, pruned, plus the wheels that the lent GPU machine lacks, into
# one folder small enough to travel with the repo in a device `run` (64 MiB per call).
#
#   bash benchmarks/device/pack_ray.sh [DEST]        # DEST defaults to .device-carry
#
# DEST gets:
#   ray-<ver>-cp<PY>-pruned.tar.xz   the Ray wheel unpacked, minus PRUNE below; unpack it
#                                    into a site folder (tar -xJf ... -C /tmp/site)
#   whl/*.whl                        the other packages, one version each, --no-deps
#   data/MNIST/raw/*.gz              copied from DATA_FROM (default ../shared/data) when
#                                    there, for BINPLAY_DATA_MIRROR=DEST/data (11.6 MB;
#                                    DATA_FROM= skips it). cifar10 (57 MB) does not fit.
# Needs network (pip download) here, never on the device. Env:
#   PYVER=3.12 (the device's python3; 3.11 builds a copy that imports here, for checks)
#   RAY_VERSION (default: read from pyproject.toml, the one place Ray is pinned)
#   WORK=/tmp/raypack/build (scratch), PY=python3 (the pip that downloads)
#   LEAN=1 leaves out the wheels only ray[default]'s extras need beyond imports
#          (virtualenv, py-spy, google-auth's cryptography): ~14 MB less, runtime_env pip
#          and the dashboard's py-spy profiling then fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.device-carry}
PYVER=${PYVER:-3.12}
PY=${PY:-python3}
WORK=${WORK:-/tmp/raypack/build}
RAY_VERSION=${RAY_VERSION:-$(grep -oE '"ray\[[a-z,]+\]==[0-9.]+"' pyproject.toml | grep -oE '[0-9]+\.[0-9]+\.[0-9]+')}
[ -n "$RAY_VERSION" ] || { echo "no ray pin found in pyproject.toml" >&2; exit 2; }
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
DL=("$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER"
    --implementation cp "${PLAT[@]}")

# What `ray[default,train,tune]==2.60.0` + pydantic + pyyaml resolve to (pip install
# --dry-run --report, cp312 manylinux, 2026-11) minus the packages that KINDS.md lists on
# the device image ('cuda': torch, numpy, pandas, pyarrow, fsspec, aiohttp, grpcio,
# protobuf, requests, pyyaml, click, filelock, msgpack, packaging, attrs, ... are there).
# Versions are the ones in the repo's .venv. Re-derive them when the Ray pin moves.
DEPS=(
  # ray core
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  # ray[train,tune] and the project (service/binplay/config.py)
  tensorboardx==2.6.5 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5 tzdata==2026.6
  # ray[default]: the project calls ray.init(include_dashboard=True), which raises
  # "Cannot include dashboard with missing packages" unless ray.dashboard.optional_deps imports
  aiohttp-cors==0.8.1 colorful==0.5.8 opencensus==0.11.4 opencensus-context==0.1.3
  google-api-core==2.44.0 googleapis-common-protos==1.76.0 proto-plus==1.29.0
  google-auth==2.63.0 pyasn1==0.6.5 pyasn1-modules==0.4.2
  opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-proto==1.45.2
  opentelemetry-exporter-prometheus==0.66b2 opentelemetry-semantic-conventions==0.66b2
  smart-open==9.0.2
)
HEAVY=(virtualenv==21.15.11 distlib==0.4.4 platformdirs==4.14.8 python-discovery==1.9.6
       py-spy==0.4.3 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12)
[ "${LEAN:-0}" = 1 ] || DEPS+=("${HEAVY[@]}")

# Left out of the Ray tree: not imported by ray, ray.train, ray.tune, ray.data, the
# dashboard or the actors/Train paths this project uses.
PRUNE=(ray/jars          # Java workers (~33 MB, already zip-compressed)
       ray/rllib ray/llm ray/serve/llm
       ray/tune/examples ray/train/examples ray/train/v2/examples)
# Kept on purpose: ray/dashboard (client/build too: on Linux the dashboard head raises
# FrontendNotFoundError without it, and binplay starts Ray with include_dashboard=True),
# ray/_private/runtime_env/agent (the raylet starts that agent on every node),
# ray/serve (the dashboard's serve module), ray/data, ray/autoscaler.

tag=cp${PYVER/./}
mkdir -p "$WORK" "$DEST/whl"
DEST=$(cd "$DEST" && pwd)
"${DL[@]}" -d "$WORK/ray-$tag" "ray==$RAY_VERSION"
rm -rf "$WORK/tree-$tag" && mkdir -p "$WORK/tree-$tag"
unzip -q "$WORK/ray-$tag"/ray-"$RAY_VERSION"-"$tag"-*.whl -d "$WORK/tree-$tag"
(cd "$WORK/tree-$tag" && rm -rf "${PRUNE[@]}")
tarball="$DEST/ray-$RAY_VERSION-$tag-pruned.tar.xz"
XZ_OPT='-9 -T1' nice -n 19 tar -C "$WORK/tree-$tag" -cJf "$tarball" .

rm -f "$DEST"/whl/*.whl
"${DL[@]}" -d "$DEST/whl" "${DEPS[@]}"

DATA_FROM=${DATA_FROM-../shared/data}
rm -rf "$DEST/data"
if [ -n "$DATA_FROM" ] && [ -d "$DATA_FROM/MNIST/raw" ]; then
  mkdir -p "$DEST/data/MNIST" && cp -r "$DATA_FROM/MNIST/raw" "$DEST/data/MNIST/"
fi

echo "unpacked Ray after pruning: $(du -sb "$WORK/tree-$tag" | cut -f1) bytes"
echo "tarball: $(stat -c %s "$tarball") bytes  $tarball"
echo "wheels:  $(cat "$DEST"/whl/*.whl | wc -c) bytes in $(ls "$DEST"/whl/*.whl | wc -l) files"
[ -d "$DEST/data" ] && echo "data:    $(du -sb "$DEST/data" | cut -f1) bytes  $DEST/data"
repo=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -sb "$DEST" | cut -f1)
echo "repo (tracked): $repo bytes; all: $((repo + carry)) bytes of the 67108864 (64 MiB) a call carries"
case "$DEST/" in
  "$PWD"/*) git check-ignore -q "$DEST" || echo "warning: $DEST is not ignored: echo /${DEST#"$PWD"/}/ >> .git/info/exclude" >&2 ;;
esac
