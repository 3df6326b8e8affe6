#!/usr/bin/env bash
# One command from a fresh machine to a running demo: set up, then launch the studio.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
exec .venv/bin/python app.py "$@"
