"""LLM judges: prompts as data, strict verdict parsing, and a background runner over stored pairs."""

from eval_studio.judge.prompts import JudgePrompt, get_prompt, prompt_names
from eval_studio.judge.runner import JudgeConfig, JudgeRunner, Progress, judge_pairs

__all__ = ["JudgeConfig", "JudgePrompt", "JudgeRunner", "Progress", "get_prompt", "judge_pairs", "prompt_names"]
