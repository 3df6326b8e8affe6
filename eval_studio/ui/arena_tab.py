"""Arena tab: two models answer one question side by side; the visitor votes once both are complete.

Battle mode draws a random pair and hides the names until the vote; named mode lets the visitor pick both.
Both columns stream together (one batched decode when both are local). One handler serves all four votes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from bactrian.generation import GenerationParams
from bactrian.languages import detect_language

from eval_studio.auth import User
from eval_studio.store.repo import DuplicateVote, add_turn, record_battle, record_vote, start_conversation
from eval_studio.ui.common import Rejected, Translator, as_chat, check_message, check_rate, make_params, session_key
from eval_studio.ui.context import StudioContext
from eval_studio.ui.streaming import Column, Job, stream_columns
from eval_studio.ui.text import t
from eval_studio.ui.widgets import language_choices, message_row, notify, params_block, stop_button

VOTES = ("a", "b", "tie", "both_bad")


@dataclass(frozen=True)
class ArenaState:
    """One visitor's arena round, kept in ``gr.State`` (copied per session). Frozen: every step returns a new one."""

    mode: str | None = None  # "battle" (hidden pair) or "named"
    model_a: str | None = None
    model_b: str | None = None
    language: str | None = None  # the question's language
    question: str | None = None
    answers: tuple[str, str] | None = None  # set once both answers are complete and stored
    battle_id: int | None = None
    voted: bool = False
    failed: bool = False  # a column failed: nothing stored, no vote
    params: dict[str, dict[str, Any]] | None = None  # {"a": ..., "b": ...} generation parameters per side


def pick_models(ctx: StudioContext, st: ArenaState, mode: str, named: tuple[str, str], language: str,
                rng: random.Random, user: User | None = None) -> ArenaState:
    """The state for a fresh question: battle mode keeps its hidden pair until a vote or a new round.

    A random battle draws external (paid) models only for signed-in users, or for everyone when the operator
    sets ``BACTRIAN_BATTLE_EXTERNAL``."""
    if mode == "named":
        a, b = named
        if not a or not b or a == b:
            raise Rejected("same_model")
        ctx.catalog.get(a), ctx.catalog.get(b)
    elif st.mode == "battle" and st.model_a and not st.voted:
        a, b = st.model_a, st.model_b
    else:
        a, b = ctx.catalog.random_pair(language, rng, external=ctx.settings.battle_external or user is not None)
    return ArenaState(mode=mode, model_a=a, model_b=b, language=language)


def arena_turn(ctx: StudioContext, st: ArenaState, question: str, params: GenerationParams,
               user: User | None, session: str | None = None) -> Iterator[tuple[list[Column], ArenaState]]:
    """Stream both answers; once both are complete (and neither failed) the battle is stored for voting.

    A visitor ``session`` over its generation limit is refused (``Rejected``) before anything runs."""
    check_rate(ctx.limiter, "generate", session, user)
    messages = [{"role": "user", "content": question}]
    jobs = [Job(st.model_a, messages, params), Job(st.model_b, messages, params)]
    cols = [Column(), Column()]
    st = replace(st, question=question, answers=None, battle_id=None, voted=False, failed=False,
                 params={"a": params.as_dict(), "b": params.as_dict()})
    with closing(stream_columns(ctx.catalog, jobs)) as snapshots:  # closing (Stop) cancels both requests at once
        for cols in snapshots:
            yield cols, st
    if not all(c.ok for c in cols):
        yield cols, replace(st, failed=True)
        return
    who = user.name if user else None
    convs = []
    for model, col in zip((st.model_a, st.model_b), cols):
        conv = start_conversation(ctx.db, model, annotator=who, mode="arena", language=st.language,
                                  params=params.as_dict())
        add_turn(ctx.db, conv, "user", question)
        add_turn(ctx.db, conv, "assistant", col.text, {"finish_reason": col.finish_reason})
        convs.append(conv)
    battle = record_battle(ctx.db, question=question, answer_a=cols[0].text, answer_b=cols[1].text,
                           model_a=st.model_a, model_b=st.model_b, mode=st.mode, language=st.language,
                           params=st.params, conversation_a_id=convs[0], conversation_b_id=convs[1],
                           digest_a=ctx.catalog.get(st.model_a).digest, digest_b=ctx.catalog.get(st.model_b).digest)
    yield cols, replace(st, answers=(cols[0].text, cols[1].text), battle_id=battle)


def arena_vote(ctx: StudioContext, st: ArenaState, winner: str, user: User | None,
               session: str | None = None) -> ArenaState:
    """Record the vote (annotator from the server-side session, or anonymous); returns the new state.

    Over the vote limit, ``Rejected`` and nothing is written: the round can still be voted on later."""
    if st.failed:
        raise Rejected("no_vote_failed")
    if not st.battle_id:
        raise Rejected("no_battle")
    if st.voted:
        raise Rejected("already_voted")
    if user is None and not ctx.settings.anon_votes:
        raise Rejected("anon_disabled")
    check_rate(ctx.limiter, "vote", session, user)
    try:
        record_vote(ctx.db, st.battle_id, winner, annotator=user.name if user else None)
    except DuplicateVote as e:
        raise Rejected("already_voted") from e
    return replace(st, voted=True)


def question_language(question: str, chosen: str, pinned: bool) -> str:
    """The question's language: the visitor's choice once they made one, else detected from the text (kept as
    chosen when the detector is unsure, e.g. "Hi")."""
    if pinned:
        return chosen
    return detect_language(question) or chosen


def column_labels(st: ArenaState, lang: str) -> tuple[str, str]:
    hidden = st.mode == "battle" and not st.voted
    if hidden or not st.model_a:
        return t("hidden_a", lang), t("hidden_b", lang)
    return f"A · {st.model_a}", f"B · {st.model_b}"


def column_chat(question: str, col: Column, lang: str) -> list[dict[str, str]]:
    shown = as_chat([{"role": "user", "content": question}, {"role": "assistant", "content": col.text}])
    if col.error:
        shown[-1]["content"] = t("model_error", lang, error=col.error)
    return shown


def build_arena_tab(ctx: StudioContext, tr: Translator, user_state: gr.State, ui_lang: gr.Radio) -> None:
    lang0 = ctx.settings.ui_lang
    rng = random.SystemRandom()
    state = gr.State(ArenaState())
    tr.add(gr.Markdown(t("arena_intro", lang0)), value="arena_intro")
    modes = lambda lang: [(t("mode_battle", lang), "battle"), (t("mode_named", lang), "named")]  # noqa: E731
    names = ctx.catalog.choices()
    with gr.Row():
        mode = tr.add(gr.Radio(modes(lang0), value="battle", label=t("mode", lang0), elem_id="arena-mode"),
                      label="mode", choices=modes)
        language = tr.add(gr.Dropdown(language_choices(), value="en", label=t("question_lang", lang0),
                                      info=t("question_lang_info", lang0), elem_id="arena-language"),
                          label="question_lang", info="question_lang_info")
    pinned = gr.State(False)  # True once the visitor chose the language: detection no longer overrides it
    with gr.Row(visible=False) as named_row:
        pick_a = tr.add(gr.Dropdown(names, value=names[0][1], label=t("model_a", lang0), elem_id="arena-pick-a"), label="model_a")
        pick_b = tr.add(gr.Dropdown(names, value=names[min(1, len(names) - 1)][1], label=t("model_b", lang0),
                                    elem_id="arena-pick-b"), label="model_b")
    with gr.Row():
        chat_a = gr.Chatbot(label=t("hidden_a", lang0), height=380, elem_id="arena-a", sanitize_html=True, allow_tags=False)
        chat_b = gr.Chatbot(label=t("hidden_b", lang0), height=380, elem_id="arena-b", sanitize_html=True, allow_tags=False)
    reveal = gr.Markdown("", elem_id="arena-reveal")
    with gr.Row(visible=False) as vote_row:
        buttons = {w: tr.add(gr.Button(t(f"vote_{w}", lang0), elem_id=f"arena-vote-{w}"), value=f"vote_{w}") for w in VOTES}
    msg, send = message_row(tr, lang0, "arena")
    with gr.Row():
        stop = stop_button(tr, lang0, "arena")
        regen = tr.add(gr.Button(t("regenerate", lang0), elem_id="arena-regen"), value="regenerate")
        new_round = tr.add(gr.Button(t("new_round", lang0), elem_id="arena-new-round"), value="new_round")
    sliders = params_block(tr, ctx.settings.gen_defaults, lang0, "arena")

    mode.change(lambda m: gr.update(visible=m == "named"), mode, named_row, api_visibility="private")
    language.input(lambda: True, None, pinned, api_visibility="private")  # .input: the visitor's own choice only

    def view(st: ArenaState, cols: list[Column], lang: str, note: str = "") -> tuple:
        la, lb = column_labels(st, lang)
        q = st.question or ""
        votable = bool(st.battle_id) and not st.voted
        return (gr.update(value=column_chat(q, cols[0], lang), label=la), gr.update(value=column_chat(q, cols[1], lang), label=lb),
                gr.update(visible=votable), note, st)

    def respond(regenerate: bool):
        def handler(request: gr.Request, message, m, a, b, lang_q, fixed, st, user, lang, *values):
            try:
                params = make_params(ctx.settings.gen_defaults, *values)
                if regenerate:
                    if not st.question:
                        raise Rejected("nothing_to_regenerate")
                    if st.voted and st.mode == "battle":
                        raise Rejected("round_busy")  # the names are revealed: a new battle needs a new round
                    question = st.question
                else:
                    question = check_message(message, ctx.settings.max_message_chars)
                    lang_q = question_language(question, lang_q, fixed)
                    st = pick_models(ctx, st, m, (a, b), lang_q, rng, user)
                fill = lang_q if not regenerate else gr.skip()  # show the detected language, once
                with closing(arena_turn(ctx, st, question, params, user, session_key(request))) as turns:
                    for cols, st in turns:
                        note = t("no_vote_failed", lang) if st.failed else ""
                        yield (*view(st, cols, lang, note), "", fill)
                        fill = gr.skip()
            except Rejected as e:
                notify(e, lang)
                yield tuple(gr.skip() for _ in range(7))

        return handler

    inputs = [msg, mode, pick_a, pick_b, language, pinned, state, user_state, ui_lang, *sliders]
    outputs = [chat_a, chat_b, vote_row, reveal, state, msg, language]
    runs = [send.click(respond(False), inputs, outputs, api_name="arena_send", concurrency_id="generate"),
            msg.submit(respond(False), inputs, outputs, api_visibility="private", concurrency_id="generate"),
            regen.click(respond(True), inputs, outputs, api_name="arena_regenerate", concurrency_id="generate")]
    stop.click(None, None, None, cancels=runs, api_visibility="private")

    def vote(request: gr.Request, winner: str, st: ArenaState, user: User | None, lang: str):
        try:
            st = arena_vote(ctx, st, winner, user, session_key(request))
        except Rejected as e:
            notify(e, lang)
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        la, lb = column_labels(st, lang)
        note = t("voted", lang) + " " + t("revealed", lang, a=st.model_a, b=st.model_b)
        return gr.update(label=la), gr.update(label=lb), gr.update(visible=False), note, st

    for winner, button in buttons.items():  # one handler; the winner is a server-side constant per button
        button.click(vote, [gr.State(winner), state, user_state, ui_lang], [chat_a, chat_b, vote_row, reveal, state],
                     api_name=f"arena_vote_{winner}", concurrency_limit=16)

    def fresh_round(lang: str):
        st = ArenaState()
        la, lb = column_labels(st, lang)
        return gr.update(value=[], label=la), gr.update(value=[], label=lb), gr.update(visible=False), "", st, "", gr.skip()

    new_round.click(fresh_round, [ui_lang], outputs, api_name="arena_new_round", cancels=runs)
