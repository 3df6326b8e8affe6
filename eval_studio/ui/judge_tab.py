"""Judge tab (admins): run an LLM-judge prompt over stored pairs in the background, with live progress.

The endpoint URL, model and the *name* of the variable holding the key come from the form; the key itself is
read on the server by the runner and never shown, stored or logged. An unreachable endpoint ends the run with a
clear status; the app keeps serving.
"""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

from eval_studio.auth import User
from eval_studio.judge.prompts import prompt_names
from eval_studio.judge.runner import JudgeConfig, judge_pairs
from eval_studio.store import judging
from eval_studio.ui.common import Rejected, Translator
from eval_studio.ui.context import StudioContext
from eval_studio.ui.text import t

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RUN_COLUMNS = ["run", "prompt", "judge", "status", "done", "total", "errors", "message"]


def require_admin(user: User | None) -> User:
    if user is None or not user.is_admin:
        raise Rejected("admin_only")
    return user


def start_judge(ctx: StudioContext, user: User | None, prompt: str, base_url: str, model: str, key_env: str,
                task: str | None, limit: int | None) -> int:
    """Validate the form and start a background run; returns its id at once."""
    require_admin(user)
    base_url, model, key_env = (base_url or "").strip(), (model or "").strip(), (key_env or "").strip()
    if not re.match(r"^https?://[^\s/]+", base_url):
        raise Rejected("error", error="the endpoint URL must start with http:// or https://")
    if not model:
        raise Rejected("error", error="name the judge model")
    if key_env and not ENV_NAME.match(key_env):
        raise Rejected("error", error="give the NAME of an environment variable (letters, digits, _), never a key")
    if not judging.targets(ctx.db, task=task or None, limit=1):
        raise Rejected("judge_no_pairs")
    config = JudgeConfig(prompt=prompt, model=model, base_url=base_url, api_key_env=key_env or None)
    return judge_pairs(ctx.db, config, task=task or None, limit=limit or None).run_id


def status_text(ctx: StudioContext, run_id: int | None, lang: str) -> tuple[str, bool]:
    """(status line, still running); an endpoint that could not be reached at all gets a line of its own."""
    if run_id is None:
        return t("judge_idle", lang), False
    st = judging.run_status(ctx.db, run_id)
    text = t("judge_status", lang, id=st.id, status=st.status, done=st.n_done, total=st.n_total, errors=st.n_errors,
             message=st.message or "")
    unreachable = re.match(r"judge endpoint unreachable at (\S+):\s", st.message or "")
    if st.status == "error" and unreachable:
        text += "\n\n" + t("judge_unreachable", lang, url=unreachable.group(1))
    return text, st.status in ("pending", "running")


FAILURE_COLUMNS = ["pair", "order", "reason", "raw output"]
RAW_SHOWN = 400  # characters of each raw output: enough to see why it did not parse


def failure_rows(ctx: StudioContext, user: User | None, run_id: int | None, limit: int = 5) -> list[list[Any]]:
    """The run's first failed calls with their reasons and raw outputs (admins only: outputs may quote anything)."""
    require_admin(user)
    if run_id is None:
        return []
    return [[f["pair"], f["ordering"], f["error"], _clip(f["raw_output"])] for f in judging.failed_calls(ctx.db, run_id, limit)]


def _clip(text: str | None) -> str:
    if text is None:
        return "(no output)"
    return text if len(text) <= RAW_SHOWN else text[:RAW_SHOWN] + " …"


def runs_rows(ctx: StudioContext, user: User | None) -> list[list[Any]]:
    """Recent runs (their messages name hosts and processes): admins only."""
    require_admin(user)
    return [[r.id, r.prompt_name, r.judge_model, r.status, r.n_done, r.n_total, r.n_errors, r.message or ""]
            for r in judging.list_runs(ctx.db, limit=20)]


def build_judge_tab(ctx: StudioContext, tr: Translator, user_state: gr.State, ui_lang: gr.Radio) -> None:
    lang0 = ctx.settings.ui_lang
    run_state = gr.State(None)
    tr.add(gr.Markdown(t("judge_intro", lang0)), value="judge_intro")
    with gr.Row():
        prompt = tr.add(gr.Dropdown(prompt_names(), value="bactrian-x", label=t("judge_prompt", lang0), elem_id="judge-prompt"),
                        label="judge_prompt")
        task = tr.add(gr.Dropdown([""] + [ctx.settings.task], value="", allow_custom_value=True, label=t("task", lang0),
                                  elem_id="judge-task"), label="task")
        limit = tr.add(gr.Number(value=0, precision=0, minimum=0, label=t("limit", lang0), elem_id="judge-limit"), label="limit")
    with gr.Row():
        base_url = tr.add(gr.Textbox(value="http://127.0.0.1:8000/v1", label=t("base_url", lang0), elem_id="judge-url"), label="base_url")
        model = tr.add(gr.Textbox(value="gpt-4o", label=t("judge_model", lang0), elem_id="judge-model"), label="judge_model")
        key_env = tr.add(gr.Textbox(value="OPENAI_API_KEY", label=t("api_key_env", lang0), elem_id="judge-key-env"), label="api_key_env")
    start = tr.add(gr.Button(t("start_judge", lang0), variant="primary", elem_id="judge-start"), value="start_judge")
    status = gr.Markdown(t("judge_idle", lang0), elem_id="judge-status")
    failures = tr.add(gr.Dataframe(value=[], headers=FAILURE_COLUMNS, interactive=False, wrap=True, visible=False,
                                   label=t("judge_failures", lang0), elem_id="judge-failures"), label="judge_failures")
    tr.add(gr.Markdown(f"**{t('recent_runs', lang0)}**"), value=lambda lang: f"**{t('recent_runs', lang)}**")
    runs = gr.Dataframe(value=[], headers=RUN_COLUMNS, interactive=False, elem_id="judge-runs")  # filled for admins
    timer = gr.Timer(1.0, active=False)

    def failed(user, run_id):
        rows = failure_rows(ctx, user, run_id)
        return gr.update(value=rows, visible=bool(rows))

    def on_start(user, p, url, m, env, tk, lim, lang):
        try:
            run_id = start_judge(ctx, user, p, url, m, env, tk, int(lim or 0))
        except Rejected as e:
            gr.Warning(e.text(lang))
            return gr.skip(), e.text(lang), gr.skip(), gr.skip(), gr.update(active=False)
        text, _ = status_text(ctx, run_id, lang)
        return run_id, text, failed(user, run_id), runs_rows(ctx, user), gr.update(active=True)

    start.click(on_start, [user_state, prompt, base_url, model, key_env, task, limit, ui_lang],
                [run_state, status, failures, runs, timer], api_name="judge_start")

    def on_tick(run_id, user, lang):
        if user is None or not user.is_admin:  # the timer only runs after an admin started a run; still, check
            return gr.skip(), gr.skip(), gr.skip(), gr.update(active=False)
        text, running = status_text(ctx, run_id, lang)
        return text, failed(user, run_id), runs_rows(ctx, user), gr.update(active=running)

    timer.tick(on_tick, [run_state, user_state, ui_lang], [status, failures, runs, timer], api_visibility="private",
               show_progress="hidden")
