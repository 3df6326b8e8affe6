"""Admin tab (admin role, checked on the server for every action): export, import, pair generation, store summary.

The store summary (tasks, question sets and the files they came from) is sent only in answer to an admin's
action: the page itself, and any call made without the admin role (UI or API), carries none of it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from eval_studio.auth import User
from eval_studio.io import FORMATS, TABLES, export, import_pairs_file, import_question_file
from eval_studio.store.repo import StoreError
from eval_studio.store.tasks import ImportReport, list_question_sets, list_tasks
from eval_studio.ui.annotate_tab import Reload
from eval_studio.ui.common import Rejected, Translator
from eval_studio.ui.context import StudioContext
from eval_studio.ui.judge_tab import require_admin
from eval_studio.ui.pairgen import generate_in_background
from eval_studio.ui.text import t


def export_files(ctx: StudioContext, user: User | None, fmt: str, tables: list[str]) -> list[str]:
    """Write the chosen tables to a fresh temp folder; a ``datasets`` export is zipped into one download."""
    require_admin(user)
    if fmt not in FORMATS:
        raise Rejected("error", error=f"format must be one of {', '.join(FORMATS)}")
    chosen = tuple(x for x in TABLES if x in (tables or []))
    if not chosen:
        raise Rejected("error", error="choose at least one table")
    out = Path(tempfile.mkdtemp(prefix="studio-export-"))
    written = export(ctx.db, fmt, out / "export", chosen)
    if fmt == "hf":
        return [shutil.make_archive(str(out / "studio-dataset"), "zip", root_dir=written[0])]
    return [str(p) for p in written]


def import_upload(ctx: StudioContext, user: User | None, kind: str, path: str | None, name: str | None,
                  extra: Any) -> ImportReport:
    """Import an uploaded pairs file (``extra`` = overlap k) or question set (``extra`` = language)."""
    require_admin(user)
    if not path:
        raise Rejected("no_file")
    name = (name or "").strip() or None
    try:
        if kind == "pairs":
            overlap = int(extra) if extra else None
            report = import_pairs_file(ctx.db, path, task=name or ctx.settings.task, overlap=overlap)
        else:
            report = import_question_file(ctx.db, path, name=name or Path(path).stem, language=(extra or None))
    except (StoreError, ValueError, OSError) as e:  # the import is all-or-nothing: nothing was written
        raise Rejected("error", error=str(e)) from e
    return report


def start_generation(ctx: StudioContext, user: User | None, set_name: str, model_a: str, model_b: str, task: str,
                     count: int) -> str:
    require_admin(user)
    if not set_name:
        raise Rejected("error", error="choose a question set")
    if model_a == model_b:
        raise Rejected("same_model")
    task = (task or "").strip() or ctx.settings.task
    ctx.background.append(generate_in_background(ctx.catalog, ctx.db, set_name=set_name, model_a=model_a,
                                                 model_b=model_b, task=task, count=int(count), overlap=None))
    return task


def summary(ctx: StudioContext, user: User | None) -> tuple[list[list[Any]], list[list[Any]]]:
    """Tasks and question sets (with their source files: server paths), for admins only."""
    require_admin(user)
    tasks = [[r["name"], r["overlap"], r["pairs"]] for r in list_tasks(ctx.db)]
    sets = [[r["name"], r["source"] or "", r["questions"]] for r in list_question_sets(ctx.db)]
    return tasks, sets


def build_admin_tab(ctx: StudioContext, tr: Translator, user_state: gr.State, ui_lang: gr.Radio) -> Reload:
    lang0 = ctx.settings.ui_lang
    tr.add(gr.Markdown(t("admin_intro", lang0), elem_id="admin-note"), value="admin_intro")
    with tr.add(gr.Accordion(t("export", lang0), open=True), label="export"):
        with gr.Row():
            fmt = tr.add(gr.Radio(list(FORMATS), value="jsonl", label=t("format", lang0), elem_id="admin-format"), label="format")
            tables = tr.add(gr.CheckboxGroup(list(TABLES), value=list(TABLES), label=t("tables", lang0), elem_id="admin-tables"),
                            label="tables")
        do_export = tr.add(gr.Button(t("do_export", lang0), variant="primary", elem_id="admin-export"), value="do_export")
        files = gr.File(file_count="multiple", interactive=False, elem_id="admin-files")
    with tr.add(gr.Accordion(t("import_pairs", lang0), open=False), label="import_pairs"):
        with gr.Row():
            pairs_file = gr.File(file_types=[".jsonl"], type="filepath", elem_id="admin-pairs-file")
            with gr.Column():
                pairs_task = tr.add(gr.Textbox(value=ctx.settings.task, label=t("task", lang0)), label="task")
                overlap = tr.add(gr.Number(value=ctx.settings.overlap, precision=0, minimum=1, label=t("overlap", lang0)), label="overlap")
                do_pairs = tr.add(gr.Button(t("do_import", lang0), elem_id="admin-import-pairs"), value="do_import")
    with tr.add(gr.Accordion(t("import_questions", lang0), open=False), label="import_questions"):
        with gr.Row():
            q_file = gr.File(file_types=[".jsonl", ".json"], type="filepath", elem_id="admin-questions-file")
            with gr.Column():
                q_name = tr.add(gr.Textbox(label=t("set_name", lang0)), label="set_name")
                q_lang = tr.add(gr.Textbox(label=t("language_opt", lang0)), label="language_opt")
                do_questions = tr.add(gr.Button(t("do_import", lang0), elem_id="admin-import-questions"), value="do_import")
    with tr.add(gr.Accordion(t("generate_pairs", lang0), open=False), label="generate_pairs"):
        local = ctx.catalog.choices()
        with gr.Row():
            gen_set = tr.add(gr.Dropdown([r["name"] for r in list_question_sets(ctx.db)], label=t("question_set", lang0),
                                         allow_custom_value=True), label="question_set")
            gen_a = tr.add(gr.Dropdown(local, value=local[0][1], label=t("model_a", lang0)), label="model_a")
            gen_b = tr.add(gr.Dropdown(local, value=local[min(1, len(local) - 1)][1], label=t("model_b", lang0)), label="model_b")
        with gr.Row():
            gen_task = tr.add(gr.Textbox(value=ctx.settings.task, label=t("task", lang0)), label="task")
            gen_count = tr.add(gr.Number(value=6, precision=0, minimum=1, label=t("count", lang0)), label="count")
            do_gen = tr.add(gr.Button(t("do_generate", lang0), elem_id="admin-generate"), value="do_generate")
    result = gr.Markdown("", elem_id="admin-result")
    tr.add(gr.Markdown(f"**{t('store_summary', lang0)}**"), value=lambda lang: f"**{t('store_summary', lang)}**")
    refresh = tr.add(gr.Button(t("refresh", lang0), elem_id="admin-refresh"), value="refresh")
    tasks_df = gr.Dataframe(value=[], headers=["task", "overlap k", "pairs"], interactive=False, elem_id="admin-tasks")  # admins only
    sets_df = gr.Dataframe(value=[], headers=["question set", "source", "questions"], interactive=False, elem_id="admin-sets")

    def guarded(fn):  # an action returns (files, message); Rejected -> a toast and a status line
        def run(user, *args):
            *values, lang = args
            try:
                out_files, message = fn(user, *values, lang)
                return out_files, message, *summary(ctx, user)
            except Rejected as e:  # nothing of the store goes back with a refusal
                gr.Warning(e.text(lang))
                return gr.skip(), t("error", lang, error=e.text(lang)), gr.skip(), gr.skip()

        return run

    def on_export(user, f, tb, lang):
        paths = export_files(ctx, user, f, tb)
        return paths, t("exported", lang, n=len(paths))

    def on_import(kind):
        def run(user, path, name, extra, lang):
            r = import_upload(ctx, user, kind, path, name, extra)
            return gr.skip(), t("imported", lang, added=r.added, unchanged=r.unchanged, labels=r.labels_added)
        return run

    def on_generate(user, set_name, a, b, task, count, lang):
        task = start_generation(ctx, user, set_name, a, b, task, int(count or 1))
        return gr.skip(), t("generating", lang, n=int(count or 1), task=task)

    def on_refresh(user, lang):
        require_admin(user)
        return gr.skip(), ""

    outs = [files, result, tasks_df, sets_df]
    do_export.click(guarded(on_export), [user_state, fmt, tables, ui_lang], outs, api_name="admin_export")
    do_pairs.click(guarded(on_import("pairs")), [user_state, pairs_file, pairs_task, overlap, ui_lang], outs, api_name="admin_import_pairs")
    do_questions.click(guarded(on_import("questions")), [user_state, q_file, q_name, q_lang, ui_lang], outs, api_name="admin_import_questions")
    do_gen.click(guarded(on_generate), [user_state, gen_set, gen_a, gen_b, gen_task, gen_count, ui_lang], outs, api_name="admin_generate")
    refresh.click(guarded(on_refresh), [user_state, ui_lang], outs, api_name="admin_refresh")

    def fresh_summary(user):
        """Read the store now: the app runs this when the tab opens and after every sign-in, so the table never
        shows what the store held when the page loaded (pair generation keeps adding pairs after start)."""
        if user is None or not user.is_admin:
            return [], []
        return summary(ctx, user)

    return Reload(fresh_summary, [user_state], [tasks_df, sets_df])
