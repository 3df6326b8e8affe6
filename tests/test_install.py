"""A non-editable install carries what the packages need (slow: a fresh virtual environment and a build).

``pip install .`` into a new environment, then from a folder outside the repository: ``bactrian models`` lists the
demo adapters shipped as package data, and the studio finds its demo questions and recorded benchmark results.
Offline: the project's dependencies come from this environment's site-packages through a ``.pth`` file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])  # this environment's site-packages
DEMO_ADAPTERS = ("demo-ar", "demo-en", "demo-es", "demo-id", "demo-ja", "demo-multi", "demo-zh")

pytestmark = pytest.mark.slow


def _copy_sources(dest: Path) -> Path:
    """The files a build reads, copied, so the build's egg-info and build/ folders never land in the working tree."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    for pkg in ("bactrian", "pipelines", "eval_studio"):
        shutil.copytree(REPO / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_non_editable_install_lists_the_demo_adapters_and_finds_the_studio_data(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=False, with_pip=True)
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                     dict(os.environ)).stdout.strip())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACTRIAN_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(HF_HUB_OFFLINE="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               BACTRIAN_HOME=str(tmp_path / "home"))

    # Build with this environment's setuptools (ensurepip's bundled one is too old for pyproject.toml). Only the
    # build tools are linked in while pip runs: pip must not see this environment's own (editable) bactrian-studio.
    assert _run([str(py), "-m", "pip", "uninstall", "-y", "setuptools"], tmp_path, env).returncode == 0
    tools = tmp_path / "build-tools"
    tools.mkdir()
    for entry in SITE.iterdir():
        if entry.name.startswith(("setuptools", "_distutils_hack", "pkg_resources")):
            (tools / entry.name).symlink_to(entry)
    pth = site / "_bactrian_test_deps.pth"
    pth.write_text(f"{tools}\n", "utf-8")
    src = _copy_sources(tmp_path / "src")
    pip = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "."], src, env)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]
    assert (site / "bactrian" / "data" / "adapters").is_dir()
    assert not list(site.glob("__editable__*")), "the install must be a real copy, not an editable one"

    # Run it: the runtime dependencies (torch, peft, ...) from this environment, the project from the new one.
    pth.write_text(f"{SITE}\n", "utf-8")
    away = tmp_path / "elsewhere"
    away.mkdir()
    models = _run([str(env_dir / "bin" / "bactrian"), "models"], away, env)
    assert models.returncode == 0, models.stderr[-3000:]
    listed = {line.split()[0]: line for line in models.stdout.splitlines() if line.strip().startswith("demo-")}
    assert set(listed) == set(DEMO_ADAPTERS), models.stdout
    for line in listed.values():
        assert str(site / "bactrian" / "data" / "adapters" / "gemma-3-270m") in line, line  # the installed copy
        assert str(REPO) not in line

    probe = ("import eval_studio.settings as s, sys; "
             "assert s.DEFAULT_QUESTIONS.is_file(), s.DEFAULT_QUESTIONS; "
             "assert sorted(s.DEFAULT_BENCH_RESULTS.glob('*.json')), s.DEFAULT_BENCH_RESULTS; "
             "print(s.DEFAULT_QUESTIONS)")
    studio = _run([str(py), "-c", probe], away, env)
    assert studio.returncode == 0, studio.stderr[-3000:]
    assert studio.stdout.strip().startswith(str(site))
    assert sys.prefix != str(env_dir)  # it really was another environment
