"""Offline end-to-end: `bactrian serve` (a tiny model) is both the LLM translator and the responder for the shipped
small recipe (20 Alpaca rows x 3 languages), driven by `bactrian data run` over real HTTP with the openai client."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca" / "alpaca_data_en_52k.jsonl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_tiny(tmp_path):
    from bactrian.testing import make_tiny_base

    folder = make_tiny_base(tmp_path / "tiny-base")
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - the server writes to it until the fixture ends
    # One intra-op thread: for a 32-wide model torch's thread pool only adds synchronisation, and on a loaded
    # 2-core box each decode step then waited ~40 ms for the other thread (~1.1 s vs ~0.13 s for 8 requests x 24
    # tokens), which made generation most of this test's time. The requests still go through real decoding.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bactrian.cli", "serve", "--base", str(folder), "--port", str(port),
                             "--host", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, env=env)
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=5)
    deadline = time.time() + 120
    model = None
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"bactrian serve exited: {(tmp_path / 'serve.log').read_text()[-2000:]}")
        try:
            model = client.models.list().data[0].id
            break
        except openai.APIConnectionError:
            time.sleep(0.5)
    assert model, "server did not start"
    yield folder, f"http://127.0.0.1:{port}/v1", model
    proc.kill()
    proc.wait()
    log.close()


@pytest.mark.shared
def test_offline_small_recipe_end_to_end(tmp_path, served_tiny):
    if not ALPACA.is_file():
        pytest.skip(f"shared data absent: {ALPACA}")
    from datasets import load_dataset, load_from_disk

    folder, url, model = served_tiny
    out = tmp_path / "run"
    sets = [f"sources.0.path={ALPACA}", f"translate.base_url={url}", f"translate.model={model}",
            f"respond.base_url={url}", f"respond.model={model}", "translate.max_tokens=24", "respond.max_tokens=24",
            "respond.temperature=0", f"report.tokenizer={folder}", "filter.outlier_mad=0",
            "translate.concurrency=8", "respond.concurrency=8"]
    cmd = [sys.executable, "-m", "bactrian.cli", "data", "run", str(REPO / "recipes/data/offline-small.yaml"),
           "--output", str(out), "--no-progress", "--yes"]
    for s in sets:
        cmd += ["--set", s]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((out / "report" / "report.json").read_text())
    counts = json.loads((out / "export" / "counts.json").read_text())
    assert set(counts) == {"zh", "es", "ar"}
    for lang, rep in report["languages"].items():
        assert rep["responses"] == 20
        # The tiny model answers gibberish: language id fails, and the recipe's keep_langid_failures keeps
        # those rows (counted under kept_despite); only explicit drops (e.g. empty output) are removed.
        assert rep["kept"] + sum(rep["dropped"].values()) == 20
        assert set(rep["dropped"]) <= {"empty", "refusal", "duplicate"}
        assert sum(rep["kept_despite"].values()) >= 1 and set(rep["kept_despite"]) <= {"langid_mismatch", "langid_uncertain"}
        assert counts[lang] == rep["kept"] >= 15
        assert rep["fertility"]["output_tokens_per_char"] > 0
        assert rep["langid_detector"] == "lingua"  # the detector is named per language
    for lang, n in counts.items():
        dd = load_from_disk(str(out / "export" / "disk" / lang))
        assert list(dd) == ["train"] and dd["train"].num_rows == n
        hub = load_dataset(str(out / "export" / "hub"), lang)
        assert hub["train"].num_rows == n
        ids = hub["train"]["id"]
        assert all(i.startswith("alpaca-") for i in ids) and len(set(ids)) == n
    html = (out / "report" / "report.html").read_text("utf-8")
    assert len(html) > 100_000 and "id='langid-detectors'" in html  # plotly inlined: viewable offline
    card = (out / "export" / "hub" / "README.md").read_text()
    assert "license: cc-by-nc-4.0" in card and "config_name: zh" in card
