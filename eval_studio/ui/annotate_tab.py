"""Annotate tab: signed-in annotators judge pre-generated pairs, blind and in random A/B order.

The annotator is the server-side session user (``user_state``), never a value sent by the browser. Overlap k and
"never the same pair twice" are enforced by the store (``eval_studio.store.tasks``). Keyboard shortcuts are
installed by ``app.KEYS_JS``: 1 A, 2 B, 3 tie, 4 both bad, s skip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from eval_studio.auth import User
from eval_studio.store.repo import StoreError
from eval_studio.store.tasks import ShownPair, list_tasks, next_pair_for, progress_for, skip_assignment, vote_on_assignment
from eval_studio.ui.common import Rejected, Translator, check_rate, inert, session_key
from eval_studio.ui.context import StudioContext
from eval_studio.ui.text import t

VOTES = ("a", "b", "tie", "both_bad")
SHORTCUTS = {"1": "a", "2": "b", "3": "tie", "4": "both_bad"}


def task_names(ctx: StudioContext) -> list[str]:
    names = [row["name"] for row in list_tasks(ctx.db)]
    return names or [ctx.settings.task]


def current(ctx: StudioContext, user: User, task: str) -> ShownPair | None:
    """The annotator's pending pair or a new one; None when nothing is left for them."""
    return next_pair_for(ctx.db, user.name, task)


def progress_text(ctx: StudioContext, user: User, task: str, lang: str) -> str:
    p = progress_for(ctx.db, user.name, task)
    return t("progress", lang, done=p.done, skipped=p.skipped, remaining=p.remaining, total=p.total)


def act(ctx: StudioContext, user: User, st: dict[str, Any] | None, action: str) -> dict[str, str] | None:
    """Vote (a|b|tie|both_bad) or skip the shown pair; returns the revealed models of a voted pair."""
    if not st or not st.get("assignment_id"):
        return None
    if action == "skip":
        skip_assignment(ctx.db, st["assignment_id"], user.name)
        return None
    vote_on_assignment(ctx.db, st["assignment_id"], user.name, action)
    return {"a": st["model_a"], "b": st["model_b"]}


def build_annotate_tab(ctx: StudioContext, tr: Translator, user_state: gr.State, ui_lang: gr.Radio) -> "Reload":
    lang0 = ctx.settings.ui_lang
    state = gr.State(None)
    tr.add(gr.Markdown(t("annotate_intro", lang0)), value="annotate_intro")
    with gr.Row():
        task = tr.add(gr.Dropdown(task_names(ctx), value=ctx.settings.task, label=t("task", lang0), elem_id="ann-task",
                                  allow_custom_value=True, scale=3), label="task")
        refresh = tr.add(gr.Button(t("refresh", lang0), elem_id="ann-refresh", scale=1), value="refresh")
    with tr.add(gr.Accordion(t("guidelines", lang0), open=False, elem_id="ann-guidelines"), label="guidelines"):
        tr.add(gr.Markdown(t("guidelines_text", lang0)), value="guidelines_text")
    status = gr.Markdown(t("login_to_annotate" if ctx.users or ctx.settings.on_spaces else "no_users", lang0),
                         elem_id="ann-status")
    question = gr.Markdown("", elem_id="ann-question")
    with gr.Row(equal_height=True):
        with gr.Column():
            tr.add(gr.Markdown(f"**{t('answer_a', lang0)}**"), value=lambda lang: f"**{t('answer_a', lang)}**")
            answer_a = gr.Markdown("", elem_id="ann-answer-a", container=True)
        with gr.Column():
            tr.add(gr.Markdown(f"**{t('answer_b', lang0)}**"), value=lambda lang: f"**{t('answer_b', lang)}**")
            answer_b = gr.Markdown("", elem_id="ann-answer-b", container=True)
    with gr.Row(visible=False) as controls:
        buttons = {w: tr.add(gr.Button(f"{k} · " + t(f"vote_{w}", lang0), elem_id=f"ann-vote-{w}"),
                             value=lambda lang, w=w, k=k: f"{k} · " + t(f"vote_{w}", lang))
                   for k, w in SHORTCUTS.items()}
        buttons["skip"] = tr.add(gr.Button(t("skip", lang0), elem_id="ann-skip"), value="skip")
    progress = gr.Markdown("", elem_id="ann-progress")
    previous = gr.Markdown("", elem_id="ann-previous")

    outputs = [status, question, answer_a, answer_b, controls, progress, previous, state]

    def show(user: User | None, task_name: str, lang: str, note: str = "") -> tuple:
        if user is None:  # where nobody can sign in, say so rather than point at a sign-in that is not there
            why = "login_to_annotate" if ctx.users or ctx.settings.on_spaces else "no_users"
            return t(why, lang), "", "", "", gr.update(visible=False), "", note, None
        try:
            pair = current(ctx, user, task_name)
            prog = progress_text(ctx, user, task_name, lang)
        except StoreError as e:
            return t("error", lang, error=str(e)), "", "", "", gr.update(visible=False), "", note, None
        if pair is None:
            return t("all_done", lang), "", "", "", gr.update(visible=False), prog, note, None
        head = f"**{t('question', lang)}** · `{pair.language}`" + (f" · {pair.category}" if pair.category else "")
        st = {"assignment_id": pair.assignment_id, "pair_id": pair.pair_id, "model_a": pair.model_a, "model_b": pair.model_b}
        return ("", f"{head}\n\n{inert(pair.question)}", inert(pair.answer_a), inert(pair.answer_b), gr.update(visible=True),
                prog, note, st)

    def on_action(request: gr.Request, action: str, st, user, task_name, lang):
        if user is None:
            return show(None, task_name, lang)
        try:
            if action != "skip":
                check_rate(ctx.limiter, "vote", session_key(request), user)
            revealed = act(ctx, user, st, action)
        except Rejected as e:  # over the vote limit: nothing written, the same pair stays shown
            gr.Warning(e.text(lang))
            return tuple(gr.skip() for _ in outputs)
        except StoreError as e:  # e.g. a double click: the first press counted
            gr.Warning(t("error", lang, error=str(e)))
            revealed = None
        note = t("previous", lang, a=revealed["a"], b=revealed["b"]) if revealed else ""
        return show(user, task_name, lang, note)

    for action, button in buttons.items():  # one handler for every vote and skip
        button.click(on_action, [gr.State(action), state, user_state, task, ui_lang], outputs,
                     api_name=f"annotate_{action}", concurrency_limit=16, trigger_mode="once")
    gr.on([refresh.click, task.change], show, [user_state, task, ui_lang], outputs, api_name="annotate_load")
    # the app re-runs this after every sign-in / sign-out
    return Reload(show, [user_state, task, ui_lang], outputs)


@dataclass(frozen=True)
class Reload:
    """An event the app chains after sign-in / sign-out, so the tab refreshes at once."""

    fn: Callable[..., Any]
    inputs: list[Any]
    outputs: list[Any]
