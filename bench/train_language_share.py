"""Share of answers in the asked language: bare base vs the demo adapters (issue 3, demo adapters).

For each seed instruction of ``assets/instructions/demo.jsonl`` (the first N per language), generate greedily
with the Bactrian-X template, ``<unused*>`` tokens suppressed and stopping on the base's stop ids, then
identify the answer's language with lingua (restricted to the Bactrian-X languages lingua knows). Configs:
the bare base, ``demo-multi`` on every language, and each ``demo-<lang>`` on its own language.

    BACTRIAN_CACHE=/tmp/bcache python bench/train_language_share.py --per-language 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def detector():
    from lingua import Language, LanguageDetectorBuilder

    from bactrian.languages import language_codes

    codes = set(language_codes())
    langs = [lang for lang in Language.all() if lang.iso_code_639_1.name.lower() in codes]
    return LanguageDetectorBuilder.from_languages(*langs).with_preloaded_language_models().build()


def detect(det, text: str) -> str | None:
    found = det.detect_language_of(text) if text.strip() else None
    return found.iso_code_639_1.name.lower() if found else None


def generate(model, tok, prompts: list[str], stop_ids: list[int], suppress: list[int], max_new: int, batch: int) -> list[str]:
    import torch

    out: list[str] = []
    for s in range(0, len(prompts), batch):
        enc = tok(prompts[s : s + batch], return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new, eos_token_id=stop_ids,
                                 suppress_tokens=suppress, pad_token_id=tok.pad_token_id)
        for row in gen[:, enc["input_ids"].shape[1]:]:
            ids = [int(i) for i in row if int(i) not in stop_ids and int(i) != tok.pad_token_id]
            out.append(tok.decode(ids, skip_special_tokens=True).strip())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO / "assets/instructions/demo.jsonl"))
    ap.add_argument("--adapters", default=str(REPO / "assets/adapters/gemma-3-270m"))
    ap.add_argument("--base", default="gemma-3-270m")
    ap.add_argument("--per-language", type=int, default=20)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--json", help="also write rows and answers here")
    args = ap.parse_args(argv)

    from peft import PeftModel

    from bactrian.models import load_base
    from bactrian.prompter import Prompter

    rows = [json.loads(line) for line in Path(args.data).read_text("utf-8").splitlines() if line.strip()]
    langs = list(dict.fromkeys(r["language"] for r in rows))
    picked = {lang: [r for r in rows if r["language"] == lang][: args.per_language] for lang in langs}
    base = load_base(args.base)
    tok, spec = base.tokenizer, base.spec
    stop_ids = list(spec.stop_token_ids) or [tok.eos_token_id]
    prefix = spec.suppress_token_prefix
    suppress = [i for t, i in tok.get_vocab().items() if prefix and t.startswith(prefix)]
    prompter = Prompter.load("bactrian-x")
    det = detector()
    gold_ok = sum(detect(det, r["output"]) == r["language"] for rs in picked.values() for r in rs)
    n_all = sum(len(rs) for rs in picked.values())

    adapters = Path(args.adapters)
    model = PeftModel.from_pretrained(base.model, str(adapters / "demo-multi"), adapter_name="demo-multi")
    for lang in langs:
        if (adapters / f"demo-{lang}").is_dir():
            model.load_adapter(str(adapters / f"demo-{lang}"), adapter_name=f"demo-{lang}")
    model.eval()

    results: dict[str, dict[str, tuple[int, int]]] = {"base": {}, "demo-multi": {}, "demo-<lang>": {}}
    answers = []
    t0 = time.time()
    for lang in langs:
        prompts = [prompter.build(r["instruction"], r["input"] or None) for r in picked[lang]]
        configs = [("base", None), ("demo-multi", "demo-multi")]
        if f"demo-{lang}" in model.peft_config:
            configs.append(("demo-<lang>", f"demo-{lang}"))
        for label, adapter in configs:
            if adapter is None:
                with model.disable_adapter():
                    texts = generate(model, tok, prompts, stop_ids, suppress, args.max_new_tokens, args.batch)
            else:
                model.set_adapter(adapter)
                texts = generate(model, tok, prompts, stop_ids, suppress, args.max_new_tokens, args.batch)
            hits = [detect(det, t) == lang for t in texts]
            results[label][lang] = (sum(hits), len(hits))
            answers += [{"config": label, "language": lang, "id": r["id"], "answer": t, "in_language": h}
                        for r, t, h in zip(picked[lang], texts, hits)]
            print(f"  {lang} {label:12s} {sum(hits)}/{len(hits)}", file=sys.stderr, flush=True)

    print(f"\nAnswers in the asked language ({args.per_language} seed instructions per language, greedy, "
          f"max {args.max_new_tokens} new tokens; {time.time() - t0:.0f}s)")
    print(f"language-id check on the gold answers: {gold_ok}/{n_all}\n")
    print("| config | " + " | ".join(langs) + " | all |")
    print("|---" * (len(langs) + 2) + "|")
    for label, per in results.items():
        if not per:
            continue
        cells = [f"{per[lang][0]}/{per[lang][1]}" if lang in per else "-" for lang in langs]
        hit, tot = sum(v[0] for v in per.values()), sum(v[1] for v in per.values())
        print(f"| {label} | " + " | ".join(cells) + f" | {hit}/{tot} ({100 * hit / tot:.0f}%) |")
    if args.json:
        Path(args.json).write_text(json.dumps(answers, ensure_ascii=False, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
