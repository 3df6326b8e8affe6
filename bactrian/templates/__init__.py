"""Prompt templates as data (alpaca-lora's format: prompt_input, prompt_no_input, response_split)."""
