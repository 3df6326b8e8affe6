"""``bactrian run``: the whole flow of the paper as one resumable command (data -> adapter -> benchmarks -> studio)."""
