"""Gradio building blocks used by more than one tab."""

from __future__ import annotations

from typing import Any

import gradio as gr

from bactrian.generation import GenerationParams
from bactrian.languages import all_languages

from eval_studio.ui.common import Rejected, Translator
from eval_studio.ui.text import t


def params_block(tr: Translator, defaults: dict[str, Any], lang: str, prefix: str) -> list[gr.components.Component]:
    """The generation-parameter sliders (max tokens, temperature, top-p, top-k, repetition penalty, seed)."""
    d = GenerationParams(**{k: v for k, v in defaults.items() if k in GenerationParams.__dataclass_fields__})
    with tr.add(gr.Accordion(t("params", lang), open=False, elem_id=f"{prefix}-params"), label="params"):
        with gr.Row():
            comps = [
                tr.add(gr.Slider(1, 1024, value=d.max_new_tokens, step=1, label=t("max_new_tokens", lang), elem_id=f"{prefix}-max-tokens"), label="max_new_tokens"),
                tr.add(gr.Slider(0.0, 2.0, value=d.temperature, step=0.05, label=t("temperature", lang)), label="temperature"),
                tr.add(gr.Slider(0.05, 1.0, value=d.top_p, step=0.05, label=t("top_p", lang)), label="top_p"),
            ]
        with gr.Row():
            comps += [
                tr.add(gr.Slider(0, 200, value=d.top_k, step=1, label=t("top_k", lang)), label="top_k"),
                tr.add(gr.Slider(1.0, 2.0, value=d.repetition_penalty if d.repetition_penalty >= 1 else 1.0, step=0.05,
                                 label=t("repetition_penalty", lang)), label="repetition_penalty"),
                tr.add(gr.Number(value=-1 if d.seed is None else d.seed, precision=0, label=t("seed", lang)), label="seed"),
            ]
    return comps


def message_row(tr: Translator, lang: str, prefix: str) -> tuple[gr.Textbox, gr.Button]:
    """The message box and its Send button (Chat and Arena share the layout and the element ids' shape)."""
    with gr.Row():
        msg = tr.add(gr.Textbox(label=t("message", lang), placeholder=t("placeholder", lang), lines=2, scale=5,
                                elem_id=f"{prefix}-input"), label="message", placeholder="placeholder")
        send = tr.add(gr.Button(t("send", lang), variant="primary", scale=1, elem_id=f"{prefix}-send"), value="send")
    return msg, send


def stop_button(tr: Translator, lang: str, prefix: str) -> gr.Button:
    """Stop: wired with ``cancels=[...]`` to the tab's generating events. Gradio then closes the handler's generator,
    and closing ``stream_columns`` cancels every column's request at the service's next decode step."""
    return tr.add(gr.Button(t("stop", lang), variant="stop", elem_id=f"{prefix}-stop"), value="stop")


def language_choices() -> list[tuple[str, str]]:
    return [(f"{lang.native} ({lang.name}, {code})", code) for code, lang in all_languages().items()]


def notify(err: Rejected, lang: str) -> None:
    """Show a refused input as a toast (the event still completes, nothing is stored)."""
    gr.Warning(err.text(lang))
