"""Zero-shot benchmarks (XCOPA, XStoryCloze, XWinograd, SentimentX) through lm-evaluation-harness.

``catalog`` (tasks, languages, checks) -> ``runner`` (model + adapter -> lm-eval) -> ``results`` (JSON, text
tables). Task definitions are YAML data in ``tasks/``. Charts and the Leaderboard/report views live in the studio
(``eval_studio.analysis.bench_views``), over the results ingested with ``bactrian studio import-bench``.
"""
