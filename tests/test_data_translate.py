"""Translate step: code detection, protected spans, the Google v2 backend over real HTTP, the LLM backend."""

import asyncio
import json


from tests import stubapi
from pipelines.data.recipe import parse_recipe
from pipelines.data.sources import Row
from pipelines.data.store import Store
from pipelines.data.translate import TranslateStats, _translate_texts, run_translate, translator_name
from pipelines.data.translate.protect import is_programming, mask, pieces, unmask


def test_programming_rows_are_detected():
    assert is_programming("Write a Python function that reverses a string.")
    assert is_programming("What does this print?", "for i in range(3):\n    print(i)")
    assert is_programming("Fix the bug", "", "```js\nconsole.log(x)\n```")
    assert is_programming("Explain the output", "SELECT name FROM users WHERE id = 1")
    assert not is_programming("Give three tips for staying healthy.", "", "Eat well, sleep, exercise.")
    assert not is_programming("Describe the scientific method.", "", "Observe, hypothesise, test.")


def test_mask_unmask_and_pieces():
    text = "Use `ls -la` at https://example.com/docs and reply to {name} or <noinput>."
    masked, spans = mask(text)
    assert spans == ["`ls -la`", "https://example.com/docs", "{name}", "<noinput>"]
    assert "`" not in masked and "⟦3⟧" in masked
    assert unmask(masked.upper(), spans) == text.upper().replace("`LS -LA`", "`ls -la`").replace(
        "HTTPS://EXAMPLE.COM/DOCS", "https://example.com/docs").replace("{NAME}", "{name}").replace("<NOINPUT>", "<noinput>")
    assert unmask(masked.replace("⟦1⟧", ""), spans) is None  # lost marker
    assert unmask(masked + " ⟦0⟧", spans) is None  # duplicated marker
    assert [p for p, ok in pieces(text) if not ok and any(ch.isalnum() for ch in p)] == spans


class DroppingTranslator:
    """A real (deterministic) translator that loses every marker: forces the piece-by-piece fallback."""

    name = "dropper"

    async def translate(self, texts, lang):
        return [t.replace("⟦", "").replace("⟧", "").upper() for t in texts]

    def secrets(self):
        return []

    async def aclose(self):
        pass


def test_spans_survive_a_backend_that_drops_markers():
    stats = TranslateStats()
    text = "Open {file} with `vim` now"
    out = asyncio.run(_translate_texts(DroppingTranslator(), [text, ""], "zh", stats))
    assert out == ["OPEN {file} WITH `vim` NOW", ""]
    assert stats.marker_fallbacks == 1


ROWS = [
    Row("alpaca-0", "Give three tips for staying healthy.", "", "Eat well.", "alpaca"),
    Row("alpaca-1", "Translate the sentence & keep {name}.", "Line one\nLine two <b>", "x", "alpaca"),
    Row("alpaca-2", "Write a Python function to add two numbers.", "", "def add(a, b):\n    return a + b", "alpaca"),
    Row("alpaca-3", "Name a colour.", "", "Blue.", "alpaca"),
    Row("alpaca-4", "Name a fruit.", "", "Apple.", "alpaca"),
]


def _recipe(tmp_path, translate, languages=("zh", "es")):
    return parse_recipe({"name": "t", "output": str(tmp_path / "out"), "languages": list(languages),
                         "sources": [{"kind": "alpaca", "path": "unused.jsonl"}], "translate": translate})


def test_google_backend_over_http_with_batching_and_resume(tmp_path, monkeypatch):
    key = "AIza-test-SECRET-google-4242"
    log = tmp_path / "google.jsonl"
    server, _ = stubapi.serve(stubapi.StubConfig(log_path=log, google_key=key))
    monkeypatch.setenv("GOOGLE_TEST_KEY", key)
    recipe = _recipe(tmp_path, {"backend": "google", "base_url": f"http://127.0.0.1:{server.server_port}",
                                "api_key_env": "GOOGLE_TEST_KEY", "batch_size": 4})
    with Store(recipe.out / "work.db") as store:
        stats = run_translate(recipe, store, ROWS, progress=False)
        assert (stats.translated, stats.code_rows, stats.failed) == (8, 2, 0)
        zh = store.translations("google", "zh")
        assert zh["alpaca-0"]["instruction"] == "[zh] Give three tips for staying healthy."
        # HTML mode round trip: '&' and '<b>' come back as text, line breaks survive, placeholders are kept
        assert zh["alpaca-1"]["instruction"] == "[zh] Translate the sentence & keep {name}."
        assert zh["alpaca-1"]["input"] == "[zh] Line one\nLine two <b>"
        assert zh["alpaca-2"]["untranslated"] and zh["alpaca-2"]["instruction"] == ROWS[2].instruction
        reqs = [json.loads(line) for line in log.read_text().splitlines()]
        assert all(r["n"] <= 4 for r in reqs) and sum(r["n"] for r in reqs) == (4 + 1) * 2  # 4 instructions + 1 non-empty input, x 2 languages
        again = run_translate(recipe, store, ROWS, progress=False)
        assert again.pending == 0 and len(log.read_text().splitlines()) == len(reqs)
    server.shutdown()
    assert key not in (recipe.out / "work.db").read_bytes().decode("latin-1")


def test_google_bad_key_is_recorded_not_raised(tmp_path, monkeypatch):
    server, _ = stubapi.serve(stubapi.StubConfig(google_key="right-key"))
    monkeypatch.setenv("GOOGLE_TEST_KEY", "wrong-key-SECRET-777")
    recipe = _recipe(tmp_path, {"backend": "google", "base_url": f"http://127.0.0.1:{server.server_port}",
                                "api_key_env": "GOOGLE_TEST_KEY"}, languages=("zh",))
    with Store(recipe.out / "work.db") as store:
        stats = run_translate(recipe, store, ROWS, progress=False)
        assert stats.failed == 4 and "403" in stats.errors[0]
        assert store.query("SELECT COUNT(*) FROM failures")[0][0] == 4
    server.shutdown()
    assert b"wrong-key-SECRET-777" not in (recipe.out / "work.db").read_bytes()


def test_llm_backend_through_openai_client(tmp_path):
    server, _ = stubapi.serve(stubapi.StubConfig(errors=[429, 503]))
    recipe = _recipe(tmp_path, {"backend": "llm", "model": "stub", "concurrency": 3, "api_key_env": None,
                                "base_url": f"http://127.0.0.1:{server.server_port}/v1"}, languages=("es",))
    with Store(recipe.out / "work.db") as store:
        stats = run_translate(recipe, store, ROWS, progress=False)
        assert (stats.translated, stats.failed, stats.marker_fallbacks) == (4, 0, 0)  # 429 and 503 were retried
        es = store.translations(translator_name(recipe), "es")
        assert es["alpaca-1"]["instruction"] == "[Spanish] Translate the sentence & keep {name}."
    server.shutdown()


def test_seq2seq_backend_with_a_tiny_local_model(tmp_path):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from bactrian.testing import make_tokenizer

    tok = make_tokenizer()
    cfg = BartConfig(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=128,
                     pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     decoder_start_token_id=tok.eos_token_id, forced_bos_token_id=None)
    torch.manual_seed(0)
    folder = tmp_path / "tiny-mt"
    BartForConditionalGeneration(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    recipe = _recipe(tmp_path, {"backend": "seq2seq", "model": str(folder), "max_tokens": 8}, languages=("de",))
    with Store(recipe.out / "work.db") as store:
        stats = run_translate(recipe, store, ROWS[:2], progress=False)
        assert stats.translated == 2 and stats.failed == 0
        de = store.translations(translator_name(recipe), "de")
        # gibberish output, but the placeholder is protected whatever the model does
        assert "{name}" in de["alpaca-1"]["instruction"]
