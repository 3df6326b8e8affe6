"""Filter decisions: empty, refusal, length outliers, language id (real lingua), duplicates, the keep flag."""

from pipelines.data.filter import Candidate, LanguageId, decide, is_refusal
from pipelines.data.recipe import FilterSpec


def _c(i, out, instruction="q", untranslated=False):
    return Candidate(f"r-{i}", instruction, "", out, "stop", untranslated)


ES = [
    "La capital de Francia es París, una ciudad conocida por su arte y su historia.",
    "El agua hierve a cien grados centígrados cuando la presión es normal.",
    "Para mantenerse sano conviene comer bien, dormir lo suficiente y hacer ejercicio.",
]


def test_refusal_patterns():
    assert is_refusal("As an AI language model, I cannot have opinions.")
    assert is_refusal("Como modelo de lenguaje, no puedo responder.")
    assert is_refusal("作为一个人工智能语言模型，我无法回答。")
    assert not is_refusal("Madrid es la capital de España.")


def test_decisions_by_reason():
    lid = LanguageId(["es"], 0.5)
    cands = [_c(i, ES[i % 3] + f" Dato {i}.", instruction=f"q{i}") for i in range(12)]
    cands += [
        _c(20, ""),
        _c(21, "Como modelo de lenguaje, no puedo ayudar con eso."),
        _c(22, "The capital of France is Paris, a city known for its art and history."),
        _c(23, ES[0] + " Dato 0.", instruction="q0"),  # exact duplicate of r-0
        _c(24, "x" * 5000),
        _c(25, "def double(x):\n    return x * 2  # English code answer that doubles a value", untranslated=True),
    ]
    out = {r: (k, why, det) for r, k, why, det in decide(cands, "es", FilterSpec(), lid)}
    assert out["r-0"] == (True, "kept", "es")
    assert out["r-20"][:2] == (False, "empty")
    assert out["r-21"][:2] == (False, "refusal")
    assert out["r-22"] == (False, "langid_mismatch", "en")
    assert out["r-23"][:2] == (False, "duplicate")
    assert out["r-24"][:2] == (False, "length_outlier")
    assert out["r-25"][:2] == (True, "kept")  # code rows stay English: no language check
    kept = decide(cands, "es", FilterSpec(keep_langid_failures=True), lid)
    assert [k for r, k, why, _ in kept if r == "r-22"] == [True]


def test_unsupported_language_is_not_checked():
    lid = LanguageId(["km"], 0.5)
    assert lid.check("anything at all", "km") == (None, None)


def test_report_tokenizer_matches_transformers(tmp_path):
    """The report counts tokens with ``tokenizers`` straight from tokenizer.json (no torch import): the ids must
    be the ones transformers' tokenizer gives for the same folder."""
    from transformers import AutoTokenizer

    from bactrian.testing import make_tokenizer
    from pipelines.data.report import load_tokenizer

    make_tokenizer().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')  # a model folder, as the recipe names one
    texts = ["Give three tips for staying healthy.", "给出三个保持健康的建议。", "ثلاث نصائح", " lead  space\n", "", "<eos> x"]
    fast = load_tokenizer(str(tmp_path))
    assert type(fast).__name__ == "_RustTokenizer"
    want = AutoTokenizer.from_pretrained(str(tmp_path))(texts, add_special_tokens=False)["input_ids"]
    assert fast(texts, add_special_tokens=False)["input_ids"] == want
