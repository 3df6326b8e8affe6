"""lm-eval task definitions (YAML data) for the paper's zero-shot benchmarks; see ``pipelines.bench.catalog``."""
