"""Tiny randomly initialised models for fast plumbing tests (built from a config, fully offline).

The tokenizer is a small byte-level BPE trained in milliseconds on a few multilingual lines, so any
Unicode text round-trips and nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

_CORPUS = [
    "### Input:\nWhat is the capital of France?\n\n### Output:\nParis is the capital of France.",
    "### Input:\n中国的首都是哪里？\n\n### Output:\n北京是中国的首都。",
    "### Input:\n¿Cuál es la capital de España?\n\n### Output:\nMadrid es la capital de España.",
    "### Input:\nما هي عاصمة مصر؟\n\n### Output:\nالقاهرة هي عاصمة مصر.",
    "### Input:\nApa ibu kota Indonesia?\n\n### Output:\nJakarta adalah ibu kota Indonesia.",
    "### Input:\n日本の首都はどこですか？\n\n### Output:\n東京は日本の首都です。",
    "Write a short poem about the sea. The waves are blue and the wind is free.",
]


def make_tokenizer(vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def make_tiny_base(folder: str | Path, arch: str = "llama", seed: int = 0, hub_id: str | None = None) -> Path:
    """Write a tiny random causal LM (``llama``, ``gemma3_text`` or ``bloom``) + tokenizer to ``folder``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    tok = make_tokenizer()
    common = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.3,  # large random weights make outputs vary, so tests can tell variants apart
    )
    if arch == "gemma3_text":
        common.update(head_dim=8, sliding_window=64)
    if arch == "bloom":  # BLOOM names its sizes differently and uses ALiBi instead of positions
        common = dict(vocab_size=len(tok), hidden_size=32, n_layer=2, n_head=4, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, initializer_range=0.3)
    config = AutoConfig.for_model(arch, **common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    if hub_id:
        import json

        (folder / "bactrian_base.json").write_text(json.dumps({"name": folder.name, "hub_id": hub_id}), "utf-8")
    return folder
