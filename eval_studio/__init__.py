"""Bactrian-X Studio's evaluation side: the store (votes, battles, judgments), LLM judges, ratings, plots, UI.

Imports ``bactrian`` and never ``pipelines`` (see docs/DESIGN.md).
"""
