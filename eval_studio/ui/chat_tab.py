"""Chat tab: one variant (base, adapter or external), streamed replies, parameters, regenerate, clear."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

import gradio as gr

from bactrian.generation import GenerationParams

from eval_studio.auth import User
from eval_studio.store.repo import add_turn, start_conversation
from eval_studio.ui.common import Rejected, Translator, as_chat, check_message, check_rate, make_params, session_key
from eval_studio.ui.context import StudioContext
from eval_studio.ui.streaming import Column, Job, stream_columns
from eval_studio.ui.text import examples, t
from eval_studio.ui.widgets import message_row, notify, params_block, stop_button


@dataclass(frozen=True)
class ChatState:
    """One visitor's chat, kept in ``gr.State`` (copied per session). Frozen: a completed reply makes a new one."""

    history: list[dict[str, str]] = field(default_factory=list)  # {"role", "content"} messages, replies included
    conversation_id: int | None = None  # the stored conversation the next turns are added to
    model: str | None = None  # the variant that conversation is with


def chat_turn(ctx: StudioContext, state: ChatState, message: str | None, model: str, params: GenerationParams,
              user: User | None, regenerate: bool = False,
              session: str | None = None) -> Iterator[tuple[list[dict[str, str]], ChatState, Column]]:
    """Stream one reply: yields (raw display history, state, column). Rejected input, or a visitor ``session`` over
    its rate limit, raises before anything runs.

    The exchange is stored only once the reply is complete and the model did not fail.
    """
    history = list(state.history)
    if regenerate:
        if len(history) < 2 or history[-1]["role"] != "assistant":
            raise Rejected("nothing_to_regenerate")
        history = history[:-1]
    else:
        text = check_message(message, ctx.settings.max_message_chars)
        history.append({"role": "user", "content": text})
    ctx.catalog.get(model)
    check_rate(ctx.limiter, "generate", session, user)
    col = Column()
    with closing(stream_columns(ctx.catalog, [Job(model, history, params)])) as snapshots:
        for (col,) in snapshots:
            yield history + [{"role": "assistant", "content": col.text}], state, col
    if not col.ok:
        return
    reply = {"role": "assistant", "content": col.text}
    conv = state.conversation_id
    if conv is None or state.model != model:  # a new model continues the context in a new stored conversation
        conv = start_conversation(ctx.db, model, annotator=user.name if user else None, mode="chat", params=params.as_dict())
        for m in history[:-1]:
            add_turn(ctx.db, conv, m["role"], m["content"])
    if not regenerate or state.conversation_id != conv:
        add_turn(ctx.db, conv, "user", history[-1]["content"])
    add_turn(ctx.db, conv, "assistant", col.text, {**params.as_dict(), "finish_reason": col.finish_reason, "regenerated": regenerate})
    yield history + [reply], ChatState(history=history + [reply], conversation_id=conv, model=model), col


def build_chat_tab(ctx: StudioContext, tr: Translator, user_state: gr.State, ui_lang: gr.Radio) -> None:
    lang0 = ctx.settings.ui_lang
    state = gr.State(ChatState())
    choices = ctx.catalog.choices()
    model = tr.add(gr.Dropdown(choices, value=ctx.catalog.default_variant(), label=t("model", lang0), elem_id="chat-model"),
                   label="model")
    if ctx.demo_note:
        tr.add(gr.Markdown(t("demo_note", lang0), elem_id="chat-demo-note"), value="demo_note")
    chatbot = gr.Chatbot(height=420, show_label=False, elem_id="chat-bot", sanitize_html=True, allow_tags=False, buttons=["copy"])
    with gr.Row(equal_height=True, elem_id="chat-examples"):
        tr.add(gr.Markdown(t("examples", lang0)), value="examples")
        shown = examples(lang0)
        prompts = [tr.add(gr.Button(text, size="sm", elem_id=f"chat-example-{i}"), value=lambda lang, i=i: examples(lang)[i])
                   for i, text in enumerate(shown)]
    msg, send = message_row(tr, lang0, "chat")
    with gr.Row():
        stop = stop_button(tr, lang0, "chat")
        regen = tr.add(gr.Button(t("regenerate", lang0), elem_id="chat-regen"), value="regenerate")
        clear = tr.add(gr.Button(t("clear", lang0), elem_id="chat-clear"), value="clear")
    sliders = params_block(tr, ctx.settings.gen_defaults, lang0, "chat")

    def respond(regenerate: bool):
        def handler(request: gr.Request, message, variant, st, user, lang, *values):
            try:
                params = make_params(ctx.settings.gen_defaults, *values)
                shown = False
                # closing(): Stop closes this generator, which closes chat_turn and so cancels the request at once
                with closing(chat_turn(ctx, st, message, variant, params, user, regenerate, session_key(request))) as turns:
                    for history, new_state, col in turns:
                        display = as_chat(history)
                        if col.error:
                            display[-1]["content"] = t("model_error", lang, error=col.error)
                        shown = True
                        yield display, new_state, ""
                if not shown:
                    yield gr.skip(), gr.skip(), gr.skip()
            except Rejected as e:
                notify(e, lang)
                yield gr.skip(), gr.skip(), gr.skip()

        return handler

    inputs = [msg, model, state, user_state, ui_lang, *sliders]
    outputs = [chatbot, state, msg]
    runs = [send.click(respond(False), inputs, outputs, api_name="chat_send", concurrency_id="generate"),
            msg.submit(respond(False), inputs, outputs, api_visibility="private", concurrency_id="generate"),
            regen.click(respond(True), inputs, outputs, api_name="chat_regenerate", concurrency_id="generate")]
    for button in prompts:  # one handler: an example button sends its own label as the message
        runs.append(button.click(respond(False), [button, *inputs[1:]], outputs, api_visibility="private",
                                 concurrency_id="generate"))
    stop.click(None, None, None, cancels=runs, api_visibility="private")
    clear.click(lambda: ([], ChatState(), ""), None, outputs, api_name="chat_clear", cancels=runs)
