"""The Space builds (slow: a fresh virtual environment and a full install): as the Space builder does, pip installs
requirements.txt alone into a new environment, then the app module is imported and its ``demo`` is a Blocks.

The README's front matter is checked against the files it names in tests/test_space.py (fast)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _for_this_network(text: str) -> str:
    """requirements.txt as the builder reads it, less the PyTorch index where that index is unreachable and pip
    already finds the same CPU wheel in its local links (this sandbox: only PyPI answers, and pip would wait ~9 s
    on the dead index for every one of ~100 packages). The pins are untouched: torch==X+cpu must still resolve."""
    torch_pin = re.search(r"^torch==(\S+)$", text, re.M)
    links = [Path(p) for p in os.environ.get("PIP_FIND_LINKS", "/opt/wheels").split()]
    local = torch_pin and any(d.is_dir() and list(d.glob(f"torch-{torch_pin.group(1)}-*.whl")) for d in links)
    try:
        socket.getaddrinfo("download.pytorch.org", 443)
        reachable = True
    except OSError:
        reachable = False
    if reachable or not local:
        return text
    return "\n".join(line for line in text.splitlines() if "download.pytorch.org" not in line) + "\n"


def test_requirements_txt_alone_builds_an_environment_that_serves_app_demo(tmp_path):
    env_dir = tmp_path / "space-venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # the builder mounts requirements.txt alone (no other file of the repository is there yet)
    alone = tmp_path / "build" / "requirements.txt"
    alone.parent.mkdir()
    alone.write_text(_for_this_network((REPO / "requirements.txt").read_text("utf-8")), "utf-8")
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(alone)],
                         cwd=alone.parent, capture_output=True, text=True, timeout=1800)
    assert pip.returncode == 0, pip.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACTRIAN_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(HF_HUB_OFFLINE="1", BACTRIAN_HOME=str(tmp_path / "home"), BACTRIAN_PREGENERATE="0",
               GRADIO_ANALYTICS_ENABLED="False")
    probe = "import app, gradio; assert isinstance(app.demo, gradio.Blocks); print('demo ok', app.demo.studio.service.base_name)"
    run = subprocess.run([str(py), "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "demo ok gemma-3-270m" in run.stdout
    assert sys.prefix != str(env_dir)  # it really was another environment
