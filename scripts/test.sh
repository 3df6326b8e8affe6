#!/usr/bin/env bash
# One command from a fresh machine to the test results: set up, then run the whole suite.
# Lint first (ruff, configured in pyproject.toml; a second): a lint error fails the run before any test starts.
# Extra arguments go to pytest (e.g. -m "not slow" for a quick run).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test || exit 1
.venv/bin/ruff check . || { echo "ruff found lint errors (above): fix them, or see [tool.ruff] in pyproject.toml"; exit 1; }
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m pytest -ra --durations=15 "$@"  # the 15 slowest: keep the suite under ~15 min
rc=$?
# pytest exits 5 when a selection matched no test: that is not a failure of the code.
[ "$rc" = 5 ] && { echo "no tests were selected"; exit 0; }
exit "$rc"
