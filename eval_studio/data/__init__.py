"""Small data files of the studio that we wrote ourselves: reference numbers with their citation, the demo question
set (``questions/``) and the recorded benchmark results ingested at start (``bench_results/``, see bench/RESULTS.md)."""
