#!/usr/bin/env bash
# Create or reuse the gpusq_mm virtual environment and install the pinned
# OpenMMLab stack into it, including mmcv 2.1.0 compiled with its CPU ops
# against the environment's torch.
#
# Environment variables:
#   GPUSQ_VENV        venv path (default: <repo>/.venv)
#   GPUSQ_WHEELHOUSE  where built mmcv wheels are kept
#                     (default: ~/.cache/gpusq_mm/wheelhouse)
#   GPUSQ_PYTHON      interpreter used to create the venv (default: python3)
#   GPUSQ_MAX_JOBS    parallel C++ jobs for the mmcv build (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GPUSQ_VENV:-$ROOT/.venv}"
WHEELHOUSE_ROOT="${GPUSQ_WHEELHOUSE:-$HOME/.cache/gpusq_mm/wheelhouse}"
PYTHON="${GPUSQ_PYTHON:-python3}"
MAX_JOBS="${GPUSQ_MAX_JOBS:-$(nproc)}"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
CONSTRAINTS="$ROOT/requirements/constraints.txt"

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }

# The stamp is a hash of everything that decides the environment's content;
# when it matches and the stack imports, there is nothing to do.
stamp_of() {
  cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT/tools/setup_env.sh" \
    | sha256sum | cut -d' ' -f1
}

check_stack() {
  "$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import mmcv.ops  # compiled ops: fails on an mmcv built for another torch
import gpusq_mm  # noqa: F401
import torch
assert torch.__version__.split('+')[0] == '2.14.1', torch.__version__
for name in ('mmengine', 'mmdet', 'mmsegmentation', 'mmpretrain', 'onnx',
             'onnxruntime', 'openvino'):
    md.version(name)
PY
}

STAMP_FILE="$VENV/.gpusq_setup_stamp"
if [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$(stamp_of)" ]] \
    && check_stack 2>/dev/null; then
  log "environment $VENV is up to date"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

log "installing build tools and torch $TORCH_VERSION"
"${PIP[@]}" install -q -c "$CONSTRAINTS" "setuptools==80.9.0" wheel \
  "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

# mmcv: our own wheelhouse keyed by Python and torch version. pip's wheel
# cache ignores the torch version, so the build never goes through it.
PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
TORCH_TAG="$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
WHEELHOUSE="$WHEELHOUSE_ROOT/$PY_TAG-torch$TORCH_TAG"
mkdir -p "$WHEELHOUSE"
MMCV_WHEEL="$(ls "$WHEELHOUSE"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -1 || true)"
if [[ -z "$MMCV_WHEEL" ]]; then
  log "building mmcv $MMCV_VERSION with CPU ops against torch $TORCH_TAG (~10 min on 2 cores)"
  BUILD="$(mktemp -d)"
  trap 'rm -rf "$BUILD"' EXIT
  "${PIP[@]}" download -q --no-cache-dir --no-deps --no-binary :all: \
    -d "$BUILD" "mmcv==$MMCV_VERSION"
  tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
  SRC="$BUILD/mmcv-$MMCV_VERSION"
  # torch >= 2.14 headers need C++20; mmcv 2.1.0 hard-codes C++17.
  sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  (cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$MAX_JOBS" \
    "${PIP[@]}" wheel -q --no-cache-dir --no-deps --no-build-isolation \
    -w "$BUILD/out" .)
  # Move in atomically so a killed build never leaves a partial wheel.
  WHL="$(ls "$BUILD"/out/mmcv-*.whl)"
  cp "$WHL" "$WHEELHOUSE/.tmp-$(basename "$WHL")"
  mv "$WHEELHOUSE/.tmp-$(basename "$WHL")" "$WHEELHOUSE/$(basename "$WHL")"
  MMCV_WHEEL="$WHEELHOUSE/$(basename "$WHL")"
fi
log "installing $MMCV_WHEEL"
"${PIP[@]}" install -q --no-cache-dir --no-deps --force-reinstall "$MMCV_WHEEL"

log "installing the OpenMMLab stack, ONNX, OpenVINO and test requirements"
"${PIP[@]}" install -q -c "$CONSTRAINTS" \
  -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" \
  -r "$ROOT/requirements/optional.txt"

log "installing gpusq_mm (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

check_stack
stamp_of > "$STAMP_FILE"
log "environment $VENV is ready"
