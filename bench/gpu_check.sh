#!/usr/bin/env bash
# GPU check, one command, under 8 minutes: `bash bench/gpu_check.sh` from the repository root.
#
# Made for a borrowed GPU machine that has no package index and only this tree (~64 MiB, no weights, no .venv):
#   1. say what is installed (python, torch + CUDA, transformers, peft, fastapi, uvicorn, openai, pytest) and
#      what is missing -- nothing can be installed there, so missing parts are reported, not fixed;
#   2. run the device and service tests on CUDA (BACTRIAN_TEST_DEVICE=cuda: tests/test_devices.py also places
#      the tiny model on that device in its auto dtype, bf16 on a recent GPU); tiny random models, no downloads;
#   3. print the throughput table (bench/gpu_throughput.py: 1, 8, 32 concurrent streams, mixed adapters).
# Env: PYTHON (default python3), GPU_CHECK_SECONDS (overall bound, default 460).
set -u

# The whole script runs under one `timeout` (re-executed once beneath it), so it can never pass 8 minutes.
if [ -z "${GPU_CHECK_INNER:-}" ]; then
  GPU_CHECK_INNER=1 exec timeout --kill-after=10 "${GPU_CHECK_SECONDS:-460}" bash "$0" "$@"
fi

cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
scratch="$(mktemp -d)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export BACTRIAN_HOME="$scratch/home" BACTRIAN_CACHE="$scratch/cache"   # nothing written outside the scratch dir
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"                     # the tree is not pip-installed there

status=0
echo "== 1. what is installed"
"$PY" - <<'EOF'
import importlib.metadata as md, platform, sys
print(f"python          {platform.python_version()} ({sys.executable})")
missing = []
for dist, mod in [("torch", "torch"), ("transformers", "transformers"), ("peft", "peft"), ("tokenizers", "tokenizers"),
                  ("safetensors", "safetensors"), ("accelerate", "accelerate"), ("huggingface_hub", "huggingface_hub"),
                  ("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("httpx", "httpx"), ("openai", "openai"),
                  ("pytest", "pytest"), ("platformdirs", "platformdirs"), ("lm_eval", "lm_eval")]:
    try:
        __import__(mod)
        print(f"{dist:<16}{md.version(dist)}")
    except Exception as e:  # not installed, or broken
        missing.append(dist)
        print(f"{dist:<16}MISSING ({type(e).__name__}: {str(e)[:80]})")
try:
    import torch
    print(f"torch CUDA      built for {torch.version.cuda}, available: {torch.cuda.is_available()}")
    for i in range(torch.cuda.device_count()):
        print(f"  cuda:{i}        {torch.cuda.get_device_name(i)}, capability {torch.cuda.get_device_capability(i)}, "
              f"{torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB")
    from bactrian.devices import resolve_placement
    print(f"auto choice     {resolve_placement().summary()}")
except Exception as e:
    print(f"torch/bactrian check failed: {type(e).__name__}: {e}")
print("MISSING: " + (", ".join(missing) if missing else "nothing"))
EOF

# `bactrian ...` subcommands are entry points; without an installed dist-info, publish pyproject's in a temp egg-info.
if ! "$PY" -c "from importlib.metadata import entry_points as e; assert list(e(group='bactrian.commands'))" 2>/dev/null; then
  mkdir -p "$scratch/ep/bactrian_studio.egg-info"
  "$PY" - "$scratch/ep/bactrian_studio.egg-info" <<'EOF'
import re, sys  # pyproject's [project.entry-points."bactrian.commands"] table (no tomllib before Python 3.11)
table = open("pyproject.toml", encoding="utf-8").read().split('[project.entry-points."bactrian.commands"]')[1].split("\n[")[0]
eps = dict(re.findall(r'^(\w+)\s*=\s*"([^"]+)"', table, re.M))
open(f"{sys.argv[1]}/PKG-INFO", "w").write("Metadata-Version: 2.1\nName: bactrian-studio\nVersion: 0\n")
open(f"{sys.argv[1]}/entry_points.txt", "w").write("[bactrian.commands]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
EOF
  export PYTHONPATH="$scratch/ep:$PYTHONPATH"
  echo "(bactrian entry points taken from pyproject.toml)"
fi

echo "== 2. device + service tests on CUDA"
tests=()
for t in tests/test_devices.py tests/test_service.py; do
  if [ -f "$t" ]; then tests+=("$t"); else echo "SKIPPED: $t is not in this tree"; fi
done
if ! "$PY" -c "import pytest" 2>/dev/null; then
  echo "SKIPPED: pytest is missing"
elif [ ${#tests[@]} -gt 0 ]; then
  BACTRIAN_TEST_DEVICE=cuda timeout 240 "$PY" -m pytest "${tests[@]}" -q -x -p no:cacheprovider
  rc=$?; echo "tests exit code: $rc"; [ $rc -eq 0 ] || status=$rc
fi

echo "== 3. throughput (1, 8, 32 concurrent streams, mixed adapters)"
if [ -f bench/gpu_throughput.py ]; then
  timeout 170 "$PY" bench/gpu_throughput.py
  rc=$?; echo "throughput exit code: $rc"; [ $rc -eq 0 ] || status=$rc
else
  echo "SKIPPED: bench/gpu_throughput.py is not in this tree"
fi
rm -rf "$scratch"
exit $status
