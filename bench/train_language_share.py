"""Share of answers in the asked language: bare base vs the demo adapters (issue 3, demo adapters).

For each seed instruction of ``assets/instructions/demo.jsonl`` (the first N per language), generate greedily
with the Bactrian-X template, ``<unused*>`` tokens suppressed and stopping on the base's stop ids, then
identify the answer's language with lingua (restricted to the Bactrian-X languages lingua knows). Configs:
the bare base, ``demo-multi`` on every language, and each ``demo-<lang>`` on its own language.

The seed instructions are also the demo adapters' training data; each adapter's manifest says how its
held-out split was drawn, so a second table counts only the instructions that adapter never trained on.

Any adapter on any instruction file (e.g. the real-data run of issue 3): ``--adapter PATH`` (repeatable)
replaces the demo adapters, ``--language`` tags records that have no ``language`` field and ``--tail`` takes
the last N records instead of the first (rows a run capped by ``data.max_examples`` never saw), and
``--unseen-only`` keeps only records that an adapter of that language did not train on.

    BACTRIAN_CACHE=/tmp/bcache python bench/train_language_share.py --per-language 20
    python bench/train_language_share.py --data ../shared/data/alpaca_zh/alpaca_zh_52k_v3.jsonl --language zh \
        --tail --per-language 20 --max-new-tokens 48 --adapter ~/.bactrian/runs/alpaca-zh-short/adapter
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


def generate(model, tok, prompts: list[str], stop_ids: list[int], suppress: list[int], max_new: int,
             batch: int) -> tuple[list[str], list[bool]]:
    """Greedy answers, and whether each ended on a stop token (rather than at ``max_new``)."""
    import torch

    out: list[str] = []
    stopped: list[bool] = []
    for s in range(0, len(prompts), batch):
        enc = tok(prompts[s : s + batch], return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new, eos_token_id=stop_ids,
                                 suppress_tokens=suppress, pad_token_id=tok.pad_token_id)
        for row in gen[:, enc["input_ids"].shape[1]:]:
            stopped.append(any(int(i) in stop_ids for i in row))
            ids = [int(i) for i in row if int(i) not in stop_ids and int(i) != tok.pad_token_id]
            out.append(tok.decode(ids, skip_special_tokens=True).strip())
    return out, stopped


def trained_rows(adapter_dir: Path, rows: list[dict]) -> set[int] | None:
    """Indices (into ``rows``) of the records the adapter trained on, rebuilt from its manifest's recipe with
    the trainer's own loading and eval split; None when the manifest does not say or its data is gone."""
    manifest = adapter_dir / "bactrian_adapter.json"
    if not manifest.is_file():
        return None
    recipe = json.loads(manifest.read_text("utf-8")).get("training", {}).get("recipe")
    if not recipe:
        return None
    from pipelines.train.data import load_records, split_eval
    from pipelines.train.recipe import DataSettings

    d = DataSettings(**recipe["data"])
    path = Path(d.path) if Path(d.path).is_absolute() else REPO / d.path
    try:
        recs = load_records(DataSettings(**dict(recipe["data"], path=str(path))))
    except Exception:  # noqa: BLE001 - data moved or changed: nothing to claim
        return None
    train, _ = split_eval(recs, d.eval_fraction, d.eval_max, d.seed)
    key = {(r.instruction, r.input, r.output) for r in train}
    return {i for i, r in enumerate(rows) if (r["instruction"], r.get("input") or "", r["output"]) in key}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO / "assets/instructions/demo.jsonl"))
    ap.add_argument("--adapters", default=str(REPO / "bactrian/data/adapters/gemma-3-270m"))
    ap.add_argument("--base", default="gemma-3-270m")
    ap.add_argument("--per-language", type=int, default=20)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--adapter", action="append", default=[], metavar="PATH",
                    help="evaluate these adapter folders (each on every language) instead of the demo adapters")
    ap.add_argument("--language", help="language code of records without a 'language' field")
    ap.add_argument("--tail", action="store_true", help="the last N records per language instead of the first N")
    ap.add_argument("--unseen-only", action="store_true",
                    help="only records that the language's adapter(s) did not train on (per their manifests)")
    ap.add_argument("--json", help="also write rows and answers here")
    args = ap.parse_args(argv)

    from peft import PeftModel

    from bactrian.models import load_base
    from bactrian.prompter import Prompter

    rows = [json.loads(line) for line in Path(args.data).read_text("utf-8").splitlines() if line.strip()]
    for i, r in enumerate(rows):
        r.setdefault("language", args.language)
        r.setdefault("id", i)
        r["_row"] = i
        if not r["language"]:
            print(f"error: {args.data} row {i + 1} has no language; pass --language", file=sys.stderr)
            return 2
    langs = list(dict.fromkeys(r["language"] for r in rows))
    if args.adapter:
        folders = {Path(a).name if Path(a).name != "adapter" else Path(a).parent.name: Path(a) for a in args.adapter}
    else:
        adapters = Path(args.adapters)
        folders = {"demo-multi": adapters / "demo-multi"}
        folders |= {f"demo-{lang}": adapters / f"demo-{lang}" for lang in langs if (adapters / f"demo-{lang}").is_dir()}
    trained = {name: trained_rows(folder, rows) for name, folder in folders.items()}

    def adapters_for(lang: str) -> list[str]:
        return list(folders) if args.adapter else [a for a in ("demo-multi", f"demo-{lang}") if a in folders]

    def candidates(lang: str) -> list[dict]:
        rs = [r for r in rows if r["language"] == lang]
        if args.unseen_only:  # rows at least one of this language's adapters did not train on
            rs = [r for r in rs if any(trained[a] is not None and r["_row"] not in trained[a] for a in adapters_for(lang))]
        return rs

    n = args.per_language
    picked = {lang: candidates(lang)[-n if args.tail else 0 :][:n] for lang in langs}
    base = load_base(args.base)
    tok, spec = base.tokenizer, base.spec
    stop_ids = list(spec.stop_token_ids) or [tok.eos_token_id]
    prefix = spec.suppress_token_prefix
    suppress = [i for t, i in tok.get_vocab().items() if prefix and t.startswith(prefix)]
    prompter = Prompter.load("bactrian-x")
    det = detector()
    gold_ok = sum(detect(det, r["output"]) == r["language"] for rs in picked.values() for r in rs)
    n_all = sum(len(rs) for rs in picked.values())

    model = None
    for name, folder in folders.items():
        if model is None:
            model = PeftModel.from_pretrained(base.model, str(folder), adapter_name=name)
        else:
            model.load_adapter(str(folder), adapter_name=name)
    model.eval()

    def configs_for(lang: str) -> list[tuple[str, str | None]]:
        if args.adapter:
            return [("base", None)] + [(name, name) for name in folders]
        out = [("base", None), ("demo-multi", "demo-multi")]
        return out + ([("demo-<lang>", f"demo-{lang}")] if f"demo-{lang}" in folders else [])

    labels = ["base"] + (list(folders) if args.adapter else ["demo-multi", "demo-<lang>"])
    results: dict[str, dict[str, tuple[int, int]]] = {label: {} for label in labels}
    unseen: dict[str, dict[str, tuple[int, int]]] = {label: {} for label in labels}
    answers = []
    t0 = time.time()
    for lang in langs:
        prompts = [prompter.build(r["instruction"], r["input"] or None) for r in picked[lang]]
        for label, adapter in configs_for(lang):
            if adapter is None:
                with model.disable_adapter():
                    texts, ends = generate(model, tok, prompts, stop_ids, suppress, args.max_new_tokens, args.batch)
            else:
                model.set_adapter(adapter)
                texts, ends = generate(model, tok, prompts, stop_ids, suppress, args.max_new_tokens, args.batch)
            found = [detect(det, t) for t in texts]
            hits = [f == lang for f in found]
            results[label][lang] = (sum(hits), len(hits))
            # base: no training at all, so every instruction is unseen; an adapter: those it did not train on
            ids = None if adapter is None else trained.get(adapter)
            if adapter is None or ids is not None:
                mask = [adapter is None or r["_row"] not in ids for r in picked[lang]]
                unseen[label][lang] = (sum(h for h, m in zip(hits, mask) if m), sum(mask))
            answers += [{"config": label, "adapter": adapter, "language": lang, "id": r["id"], "answer": t,
                         "detected": f, "in_language": h, "stopped": e, "template_echo": "###" in t,
                         "trained_on": None if adapter is None or ids is None else r["_row"] in ids}
                        for r, t, f, h, e in zip(picked[lang], texts, found, hits, ends)]
            print(f"  {lang} {label:12s} {sum(hits)}/{len(hits)}", file=sys.stderr, flush=True)

    which = ("last" if args.tail else "first") + (" unseen" if args.unseen_only else "")
    print(f"\nAnswers in the asked language ({which} {args.per_language} instructions per language of "
          f"{Path(args.data).name}, greedy, max {args.max_new_tokens} new tokens; {time.time() - t0:.0f}s)")
    print(f"language-id check on the gold answers: {gold_ok}/{n_all}\n")
    print_table(results, langs)
    if any(per for label, per in unseen.items() if label != "base"):
        print("\nOnly instructions the adapter did not train on (held out or beyond its data; base: all):\n")
        print_table(unseen, langs)
    print("\nHow the answers end (all languages): stopped = a stop token before the limit; "
          "template echo = the answer contains the template's '###' headers\n")
    print("| config | answers | stopped | template echo | empty | mean characters |")
    print("|---|---|---|---|---|---|")
    for label in labels:
        got = [a for a in answers if a["config"] == label]
        if got:
            k = len(got)

            def share(key: str) -> str:
                return f"{sum(bool(a[key]) for a in got)}/{k}"

            empty = sum(not a["answer"] for a in got)
            print(f"| {label} | {k} | {share('stopped')} | {share('template_echo')} | {empty}/{k} | "
                  f"{sum(len(a['answer']) for a in got) / k:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(answers, ensure_ascii=False, indent=1), "utf-8")
    return 0


def print_table(results: dict[str, dict[str, tuple[int, int]]], langs: list[str]) -> None:
    print("| config | " + " | ".join(langs) + " | all |")
    print("|---" * (len(langs) + 2) + "|")
    for label, per in results.items():
        tot = sum(v[1] for v in per.values())
        if not tot:
            continue
        cells = [f"{per[lang][0]}/{per[lang][1]}" if lang in per else "-" for lang in langs]
        hit = sum(v[0] for v in per.values())
        print(f"| {label} | " + " | ".join(cells) + f" | {hit}/{tot} ({100 * hit / tot:.0f}%) |")


if __name__ == "__main__":
    sys.exit(main())
