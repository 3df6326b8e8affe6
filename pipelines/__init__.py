"""Pipelines built on the bactrian library: data, train, bench."""
