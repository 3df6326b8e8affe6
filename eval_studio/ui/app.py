"""``build_demo(settings) -> gr.Blocks``: the header (UI language, sign-in) and the six tabs, wired together.

The model engine and the database engine are created here and captured by the callbacks; per-visitor state
(signed-in user, chat history, arena round, annotation assignment) lives in ``gr.State``.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from bactrian.engine import Engine
from bactrian.service import GenerationService

from eval_studio.settings import Settings
from eval_studio.store.battles import load_battles
from eval_studio.ui.admin_tab import build_admin_tab
from eval_studio.ui.annotate_tab import build_annotate_tab
from eval_studio.ui.arena_tab import build_arena_tab
from eval_studio.ui.chat_tab import build_chat_tab
from eval_studio.ui.account import build_account, wire_account
from eval_studio.ui.common import Translator
from eval_studio.ui.context import StudioContext, create_context
from eval_studio.ui.judge_tab import build_judge_tab
from eval_studio.ui.text import UI_LANGS, t

# Annotation shortcuts: 1 A, 2 B, 3 tie, 4 both bad, s skip. They click the visible Annotate buttons, so the
# server sees exactly what a mouse click sends; typing in a text field is never hijacked.
KEYS_JS = """
() => {
  if (window.__bactrianKeys) return;
  window.__bactrianKeys = true;
  const ids = {"1": "ann-vote-a", "2": "ann-vote-b", "3": "ann-vote-tie", "4": "ann-vote-both_bad", "s": "ann-skip", "S": "ann-skip"};
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const el = e.target;
    if (el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName))) return;
    const id = ids[e.key];
    const button = id && document.getElementById(id);
    if (button && button.offsetParent !== null && !button.disabled) { e.preventDefault(); button.click(); }
  });
}
"""

# Text direction per message: Gradio's Chatbot sets one direction (``rtl=``) for every bubble, so an Arabic answer
# next to an English one cannot both be right. dir="auto" takes each bubble's direction from its first strong
# letter (Arabic, Hebrew, Persian, Urdu: right to left). Gradio re-creates bubbles while streaming, so a
# MutationObserver applies it to every new one; annotation texts get it per paragraph.
DIR_JS = """
() => {
  if (window.__bactrianDir) return;
  window.__bactrianDir = true;
  const sel = "[data-testid=bot], [data-testid=user], #ann-question .prose > *, #ann-answer-a .prose > *, #ann-answer-b .prose > *";
  const apply = () => document.querySelectorAll(sel).forEach((el) => {
    if (el.getAttribute("dir") !== "auto") { el.setAttribute("dir", "auto"); el.style.textAlign = "start"; }
  });
  new MutationObserver(apply).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["dir"]});
  apply();
}
"""

CSS = """
#arena-reveal, #ann-previous { min-height: 1.5em; }
#ann-answer-a, #ann-answer-b { min-height: 8em; }
"""


def launch_options(settings: Settings) -> dict[str, Any]:
    """What ``demo.launch`` needs besides the Blocks (Gradio 6 takes theme/css there)."""
    return {"server_name": settings.server_name, "server_port": settings.server_port, "css": CSS,
            "theme": gr.themes.Soft(), "show_error": True}


def build_demo(settings: Settings, engine: GenerationService | Engine | None = None) -> gr.Blocks:
    ctx = create_context(settings, engine)
    return build_blocks(ctx)


def build_blocks(ctx: StudioContext) -> gr.Blocks:
    lang0 = ctx.settings.ui_lang
    tr = Translator()
    with gr.Blocks(title="Bactrian-X Studio", analytics_enabled=False) as demo:
        user_state = gr.State(None)
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                tr.add(gr.Markdown(t("title", lang0)), value="title")
                tr.add(gr.Markdown(t("subtitle", lang0)), value="subtitle")
            ui_lang = tr.add(gr.Radio([(v, k) for k, v in UI_LANGS.items()], value=lang0, label=t("ui_lang", lang0),
                                      elem_id="ui-lang", scale=1), label="ui_lang")
        account = build_account(ctx, tr, lang0)

        with gr.Tabs():
            with tr.add(gr.Tab(t("tab_chat", lang0), id="chat", elem_id="tab-chat"), label="tab_chat"):
                build_chat_tab(ctx, tr, user_state, ui_lang)
            with tr.add(gr.Tab(t("tab_arena", lang0), id="arena", elem_id="tab-arena"), label="tab_arena"):
                build_arena_tab(ctx, tr, user_state, ui_lang)
            with tr.add(gr.Tab(t("tab_annotate", lang0), id="annotate", elem_id="tab-annotate"), label="tab_annotate"):
                reload_annotate = build_annotate_tab(ctx, tr, user_state, ui_lang)
            with tr.add(gr.Tab(t("tab_judge", lang0), id="judge", elem_id="tab-judge"), label="tab_judge"):
                build_judge_tab(ctx, tr, user_state, ui_lang)
            with tr.add(gr.Tab(t("tab_leaderboard", lang0), id="leaderboard", elem_id="tab-leaderboard"), label="tab_leaderboard"):
                _leaderboard(ctx, tr, ui_lang)
            with tr.add(gr.Tab(t("tab_admin", lang0), id="admin", elem_id="tab-admin"), label="tab_admin") as admin_tab:
                reload_admin = build_admin_tab(ctx, tr, user_state, ui_lang)
        admin_tab.select(reload_admin.fn, reload_admin.inputs, reload_admin.outputs, api_visibility="private")

        wire_account(ctx, account, ui_lang, user_state, [reload_annotate, reload_admin], demo)
        ui_lang.change(tr.updates, [ui_lang], tr.components, api_visibility="private")
        demo.load(None, None, None, js=KEYS_JS)
        demo.load(None, None, None, js=DIR_JS)
    demo.queue(default_concurrency_limit=4)
    demo.studio = ctx  # type: ignore[attr-defined]  # tests and app.py reach the store through the demo
    return demo


def _leaderboard(ctx: StudioContext, tr: Translator, ui_lang: gr.Radio) -> None:
    from eval_studio.store.bench import list_bench
    from eval_studio.ui.leaderboard_tab import build_leaderboard_tab

    build_leaderboard_tab(lambda: load_battles(ctx.db), load_bench=lambda: list_bench(ctx.db),
                          load_calls=lambda: load_battles(ctx.db, source="judge", merge_orders=False),
                          tr=tr, ui_lang=ui_lang, lang=ctx.settings.ui_lang)
