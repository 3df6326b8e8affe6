"""Data files of the studio's UI (example prompts), read with ``importlib.resources``."""
