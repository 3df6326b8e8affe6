"""First and second start of ``bash scripts/demo.sh`` on a fresh clone: seconds until the studio answers HTTP.

    python bench/startup.py                       # clone this repository's HEAD into /tmp/bx-startup, start twice
    python bench/startup.py --working-tree        # the same, with the uncommitted changes copied over the clone

A start is timed from launching the script to the first ``200`` from ``GET /`` on the studio's port; then the
script's whole process group is stopped. The first start builds ``.venv`` (torch from the local wheel when there
is one, everything else from the package index with pip's cache off, as on a new machine), prepares the embedded
model into a fresh ``BACTRIAN_CACHE`` and opens a fresh database; the second finds all of that in place. The
output (stdout and ``--log``) is the record for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_clone(source: Path, dest: Path, working_tree: bool) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["git", "clone", "-q", str(source), str(dest)], check=True)
    if working_tree:  # tracked and untracked files that git does not ignore: what a commit of them would hold
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=source,
                               check=True, capture_output=True).stdout.decode().split("\0")
        for rel in filter(None, files):
            src = source / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
            elif not src.exists() and (dest / rel).exists():
                (dest / rel).unlink()  # deleted in the working tree


def timed_start(clone: Path, env: dict[str, str], port: int, log, timeout: float) -> float:
    """Seconds from ``bash scripts/demo.sh`` to the first 200 on ``/``; the process group is stopped after."""
    t0 = time.monotonic()
    proc = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        while time.monotonic() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"demo.sh exited with {proc.returncode} before answering (see the log)")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"no answer within {timeout:.0f} s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, default=REPO)
    p.add_argument("--dest", type=Path, default=Path("/tmp/bx-startup"))
    p.add_argument("--working-tree", action="store_true", help="copy uncommitted changes over the clone")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--log", type=Path, default=Path("/tmp/bx-startup.log"))
    args = p.parse_args(argv)

    clone = args.dest / "repo"
    fresh_clone(args.source, clone, args.working_tree)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACTRIAN_", "VIRTUAL_ENV"))}
    env.update(GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               PIP_NO_CACHE_DIR="1", BACTRIAN_HOME=str(args.dest / "home"), BACTRIAN_CACHE=str(args.dest / "cache"),
               PATH=os.pathsep.join(x for x in env.get("PATH", "").split(os.pathsep) if ".venv" not in x))
    for d in ("home", "cache"):
        shutil.rmtree(args.dest / d, ignore_errors=True)
    times = {}
    with args.log.open("w") as log:
        for which in ("first", "second"):
            print(f"--- {which} start ---", file=log, flush=True)
            times[which] = round(timed_start(clone, env, port, log, args.timeout), 1)
            print(f"{which} start: {times[which]} s", flush=True)
    load = os.getloadavg()
    result = {**{f"{k}_start_s": v for k, v in times.items()}, "cores": os.cpu_count(),
              "load_after": [round(x, 2) for x in load], "working_tree": args.working_tree,
              "date": time.strftime("%Y-%m-%d %H:%M"), "python": sys.version.split()[0]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
