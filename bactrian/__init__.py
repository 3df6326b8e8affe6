"""Bactrian-X Studio library: languages, prompt templates, models, adapters, generation, OpenAI-compatible API.

This package imports no other project package (pipelines/ and eval_studio/ build on it).
"""

__version__ = "0.1.0"
