"""Studio UI test support: the real Gradio app on 127.0.0.1 (tiny model, temp SQLite), and Chromium for Playwright."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import free_port

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "assets" / "screenshots"
PASSWORDS = {"ana": "ana-secret-1", "bob": "bob-secret-2", "cy": "cy-secret-3"}
DEAD_URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port: connection refused at once


def users_text() -> str:
    from eval_studio.auth import hash_password

    roles = {"ana": "admin", "bob": "annotator", "cy": "annotator"}
    return ",".join(f"{n}:{hash_password(p)}:{roles[n]}" for n, p in PASSWORDS.items())


def studio_settings(tiny_base: Path, tiny_adapters: dict, db_path: Path, **over):
    from eval_studio.settings import ExternalModel, Settings

    values = dict(
        db_url=f"sqlite:///{db_path}", base=str(tiny_base), adapters_dirs=(str(tiny_adapters["root"]),),
        include_default_adapters=False, users_text=users_text(), pregenerate=0, questions_file=None,
        external_models=(ExternalModel("offline-gpt", DEAD_URL, "gpt-x", None),), battle_external=False,
        gen_defaults={"max_new_tokens": 10, "min_tokens": 4, "temperature": 0.7}, max_message_chars=500, overlap=2,
    )
    values.update(over)
    return Settings(**values)


def demo_pairs(n: int = 5) -> list[dict]:
    langs = ["en", "zh", "es", "ar", "ja"]
    return [
        {"id": f"q{i}", "question": f"Question number {i}: what is {i} + {i}?", "answer_a": f"It is {2 * i}.",
         "answer_b": f"Maybe {2 * i + 1}.", "model_a": "alpha", "model_b": "beta", "language": langs[i % len(langs)],
         "category": "math"}
        for i in range(n)
    ]


def write_pairs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


class RunningStudio:
    """``build_demo`` + ``launch(prevent_thread_lock=True)`` on a free loopback port."""

    def __init__(self, settings, engine=None):
        from eval_studio.ui.app import build_demo

        self.settings = settings
        self.demo = build_demo(settings, engine)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ctx(self):
        return self.demo.studio

    def __enter__(self) -> "RunningStudio":
        self.demo.launch(server_name="127.0.0.1", server_port=self.port, prevent_thread_lock=True, quiet=True)
        return self

    def __exit__(self, *exc) -> None:
        self.demo.close()

    def sql(self, query: str, *args) -> list[tuple]:
        path = self.settings.db_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as con:
            return con.execute(query, args).fetchall()


def make_long_base(tiny_base: Path, folder: Path) -> Path:
    """The tiny model's tokenizer on a somewhat larger random Llama (a 2048-token context): through the studio a
    few hundred tokens take seconds on a CPU, long enough to watch a reply stream (or stop it); the tiny model
    itself answers 200 tokens in a fraction of a second on an idle machine."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if (folder / "config.json").exists():
        return folder
    tok = AutoTokenizer.from_pretrained(tiny_base)
    config = AutoConfig.for_model("llama", vocab_size=len(tok), hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                                  num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=2048,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                  tie_word_embeddings=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_random_adapter(base: Path, folder: Path, name: str, languages: list[str], seed: int = 0) -> Path:
    """An untrained LoRA adapter with random (non-zero) weights and a manifest naming its languages: a stand-in
    for the demo adapters (``demo-multi``, ``demo-ar``...) where only names and languages matter."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if (folder / "adapter_config.json").exists():
        return folder
    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(folder)
    manifest = {"name": name, "base_model": str(Path(base).resolve()), "languages": languages, "description": "test adapter"}
    (folder / "bactrian_adapter.json").write_text(json.dumps(manifest), "utf-8")
    return folder


def have_chromium() -> bool:
    return Path(CHROMIUM).is_file() and shutil.which(CHROMIUM) is not None


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])


@contextmanager
def studio_page(url: str, timeout_ms: int = 60_000):
    """A fresh Chromium page on the studio, opened once its Chat tab is there (closed with the browser after)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_browser(p)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 1000})
            pg.set_default_timeout(timeout_ms)
            pg.goto(url)
            pg.get_by_role("tab", name="Chat").wait_for()
            yield pg
        finally:
            browser.close()


def alnum(text: str) -> str:
    """Letters, digits and U+FFFD: compares model text with what the browser rendered (markdown, spacing aside).

    A random tiny model often emits lone byte tokens, which decode to U+FFFD; they are real output too.
    """
    return "".join(ch for ch in text if ch.isalnum() or ch == "\ufffd")


def pick(page, elem_id: str, name: str) -> None:
    """Choose the dropdown option whose label ends with the variant name (labels carry a language group)."""
    box = page.locator(f"#{elem_id} input[role=combobox]")
    box.click()
    options = page.locator(f"#{box.get_attribute('aria-controls')}").get_by_role("option")
    options.filter(has_text=name).last.click()


def ask_named_arena(page, model_a: str, model_b: str, question: str) -> None:
    """Open the Arena, pick two named models and send one question; waits until both answers are complete."""
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-mode").get_by_text("Named").click()
    pick(page, "arena-pick-a", model_a)
    pick(page, "arena-pick-b", model_b)
    page.locator("#arena-input textarea").fill(question)
    page.locator("#arena-send").click()
    page.locator("#arena-vote-a").wait_for(state="visible")  # shown once both columns are complete
