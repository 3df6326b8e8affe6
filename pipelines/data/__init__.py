"""The Bactrian-X data pipeline: sources -> translate -> respond -> filter -> report -> export."""
