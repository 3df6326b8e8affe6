#!/usr/bin/env bash
# Rebuild the demo adapters shipped as package data in bactrian/data/adapters/gemma-3-270m/ (CPU, one adapter at a time).
# Extra arguments go to `bactrian train`, e.g. --set train.epochs=1 for a quicker build.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bactrian train recipes/train/demo/multi.yaml recipes/train/demo/{en,zh,es,ar,id,ja}.yaml "$@"
