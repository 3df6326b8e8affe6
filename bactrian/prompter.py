"""One object that builds prompts and cuts the reply out of the model output.

Templates are JSON files in ``bactrian/templates`` (alpaca-lora's format). The special name ``chat``
uses the tokenizer's own chat template when it has one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

CHAT = "chat"
MAX_MESSAGE_CHARS = 20_000  # a friendly cap on one message, before tokenizing anything


class InputError(ValueError):
    """The request itself is bad (empty, too long, unknown variant); safe to show to the user."""


def check_messages(messages: list[dict[str, str]]) -> None:
    """Refuse OpenAI-style messages no prompt can be built from, naming the problem."""
    if not messages:
        raise InputError("messages must not be empty")
    for m in messages:
        if m.get("role") not in ("system", "user", "assistant"):
            raise InputError(f"unknown message role {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            raise InputError("message content must be a string")
        if len(m["content"]) > MAX_MESSAGE_CHARS:
            raise InputError(f"a message has {len(m['content'])} characters; the limit is {MAX_MESSAGE_CHARS}")
    if not messages[-1]["content"].strip():
        raise InputError("the last message is empty")


def template_names() -> list[str]:
    files = resources.files("bactrian.templates").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".json")) + [CHAT]


@dataclass(frozen=True)
class Prompter:
    name: str
    prompt_input: str = ""
    prompt_no_input: str = ""
    response_split: str = ""
    stop: tuple[str, ...] = field(default_factory=tuple)
    tokenizer: Any = None  # only for the chat template

    @classmethod
    def load(cls, name: str = "bactrian-x", tokenizer: Any = None) -> "Prompter":
        if name == CHAT:
            if tokenizer is None or not getattr(tokenizer, "chat_template", None):
                raise ValueError("template 'chat' needs a tokenizer that has a chat template")
            return cls(name=CHAT, tokenizer=tokenizer)
        path = resources.files("bactrian.templates").joinpath(f"{name}.json")
        if not path.is_file():
            raise ValueError(f"unknown prompt template {name!r}; known: {', '.join(template_names())}")
        raw = json.loads(path.read_text("utf-8"))
        return cls(
            name=name,
            prompt_input=raw["prompt_input"],
            prompt_no_input=raw["prompt_no_input"],
            response_split=raw["response_split"],
            stop=tuple(raw.get("stop", ())),
        )

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, preferred: str | None = None) -> "Prompter":
        """The model's own chat template when it has one, else the Bactrian-X template."""
        if preferred:
            return cls.load(preferred, tokenizer)
        if getattr(tokenizer, "chat_template", None):
            return cls.load(CHAT, tokenizer)
        return cls.load("bactrian-x")

    def build(self, instruction: str, input: str | None = None) -> str:
        """The prompt for one instruction (+ optional input); the model continues with the reply."""
        if self.name == CHAT:
            content = instruction if not input else f"{instruction}\n\n{input}"
            return self.build_chat([{"role": "user", "content": content}])
        if input:
            return self.prompt_input.format(instruction=instruction, input=input)
        return self.prompt_no_input.format(instruction=instruction)

    def build_chat(self, messages: list[dict[str, str]]) -> str:
        """A prompt from OpenAI-style messages.

        With a chat template the tokenizer renders them. Otherwise the last user message is the
        instruction and earlier turns are kept as context, since the paper's template is single-turn.
        """
        if self.name == CHAT:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        system = "\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        if not turns or turns[-1]["role"] != "user":
            raise ValueError("the last message must come from the user")
        prompt = ""
        for m in turns[:-1]:
            if m["role"] == "user":
                prompt += self.prompt_no_input.format(instruction=m["content"])
            else:
                prompt += m["content"].strip() + "\n\n"
        last = turns[-1]["content"]
        if system:
            return prompt + self.prompt_input.format(instruction=system, input=last)
        return prompt + self.prompt_no_input.format(instruction=last)

    def prompt_for(self, messages: list[dict[str, str]]) -> str:
        """The prompt for a chat request, after checking the messages (``InputError`` names what is wrong)."""
        check_messages(messages)
        try:
            return self.build_chat(messages)
        except ValueError as e:
            raise InputError(str(e)) from e

    def extract(self, output: str) -> str:
        """The reply: the text after the last response split, cut at the first stop string."""
        text = output
        if self.response_split and self.response_split in text:
            text = text.split(self.response_split)[-1]
        for s in self.stop:
            if s in text:
                text = text.split(s)[0]
        return text.strip()
