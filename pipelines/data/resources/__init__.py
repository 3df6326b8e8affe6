"""Data files of the data pipeline (prompts, price table, detection patterns)."""
