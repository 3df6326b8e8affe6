"""Every UI string of the studio, in English and Chinese. ``t(key, lang, **fmt)`` looks one up.

A missing translation falls back to English; a missing key is a bug and raises ``KeyError`` (tested).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

UI_LANGS = {"en": "English", "zh": "中文"}

STRINGS: dict[str, dict[str, str]] = {
    # header and account
    "title": {"en": "# Bactrian-X Studio", "zh": "# Bactrian-X 工作室"},
    "subtitle": {"en": "Chat with multilingual adapters, compare them side by side, annotate pairs, run LLM judges.",
                 "zh": "与多语言适配器对话、并排比较、标注答案对、运行大模型评审。"},
    "ui_lang": {"en": "Interface language", "zh": "界面语言"},
    "account": {"en": "Sign in", "zh": "登录"},
    "username": {"en": "User name", "zh": "用户名"},
    "password": {"en": "Password", "zh": "密码"},
    "login": {"en": "Sign in", "zh": "登录"},
    "logout": {"en": "Sign out", "zh": "退出"},
    "signed_in": {"en": "Signed in as **{name}** ({role}).", "zh": "已登录：**{name}**（{role}）。"},
    "signed_out": {"en": "Not signed in: arena votes are anonymous.", "zh": "未登录：竞技场投票为匿名。"},
    "login_failed": {"en": "Wrong user name or password.", "zh": "用户名或密码错误。"},
    "no_users": {"en": "Chat and Arena are open to everyone, and arena votes are anonymous. Annotating, judging and "
                       "the admin tools need an account, and this studio has none.",
                 "zh": "对话和竞技场对所有人开放，竞技场投票为匿名。标注、评审和管理需要账号，而本工作室没有设置账号。"},
    # tabs
    "tab_chat": {"en": "Chat", "zh": "对话"},
    "tab_arena": {"en": "Arena", "zh": "竞技场"},
    "tab_annotate": {"en": "Annotate", "zh": "标注"},
    "tab_judge": {"en": "Judge", "zh": "评审"},
    "tab_leaderboard": {"en": "Leaderboard", "zh": "排行榜"},
    "tab_admin": {"en": "Admin", "zh": "管理"},
    # shared
    "model": {"en": "Model (base or adapter, grouped by language)", "zh": "模型（基座或适配器，按语言分组）"},
    "message": {"en": "Message", "zh": "消息"},
    "placeholder": {"en": "Ask something in any language…", "zh": "用任何语言提问……"},
    "send": {"en": "Send", "zh": "发送"},
    "regenerate": {"en": "Regenerate", "zh": "重新生成"},
    "clear": {"en": "Clear", "zh": "清空"},
    "params": {"en": "Generation parameters", "zh": "生成参数"},
    "max_new_tokens": {"en": "Max new tokens", "zh": "最大生成长度"},
    "temperature": {"en": "Temperature (0 = greedy)", "zh": "温度（0 = 贪心）"},
    "top_p": {"en": "Top-p", "zh": "Top-p"},
    "top_k": {"en": "Top-k", "zh": "Top-k"},
    "repetition_penalty": {"en": "Repetition penalty", "zh": "重复惩罚"},
    "seed": {"en": "Seed (-1 = random)", "zh": "随机种子（-1 = 随机）"},
    "empty_message": {"en": "Type a message first.", "zh": "请先输入消息。"},
    "too_long": {"en": "The message has {n} characters; the limit is {cap}. Nothing was sent or stored.",
                 "zh": "消息有 {n} 个字符，上限为 {cap}。未发送，也未保存。"},
    "nothing_to_regenerate": {"en": "Nothing to regenerate yet.", "zh": "还没有可重新生成的内容。"},
    "model_error": {"en": "This model failed: {error}", "zh": "该模型出错：{error}"},
    "bad_params": {"en": "Bad generation parameters: {error}", "zh": "生成参数有误：{error}"},
    "rate_limited": {"en": "Too many requests: try again in {seconds} s.", "zh": "请求过多，请 {seconds} 秒后再试。"},
    "stop": {"en": "■ Stop", "zh": "■ 停止"},
    "examples": {"en": "Try an example:", "zh": "试试这些例子："},
    "demo_note": {
        "en": "These are **small demo models** (Gemma 3 270M with LoRA adapters trained for minutes on a CPU): answers "
              "are short and often wrong, and this is on purpose, so the studio runs anywhere. To use real models, "
              "point the studio at a served engine: `BACTRIAN_ENGINE_URL=http://gpu-box:8000/v1 python app.py` "
              "(README, \"Serving engines\": vLLM or `bactrian serve` with e.g. BLOOM-7B and the paper's adapters).",
        "zh": "这里是**小型演示模型**（Gemma 3 270M 加上在 CPU 上训练几分钟的 LoRA 适配器）：回答较短且常有错误，"
              "这样工作室在任何机器上都能运行。若要使用真实模型，请让工作室连接一个推理服务："
              "`BACTRIAN_ENGINE_URL=http://gpu-box:8000/v1 python app.py`（见 README“Serving engines”：vLLM 或 "
              "`bactrian serve`，例如 BLOOM-7B 与论文的适配器）。"},
    # arena
    "arena_intro": {"en": "Ask one question; two models answer side by side. Vote when both are done.",
                    "zh": "提一个问题，两个模型并排回答。两边都答完后投票。"},
    "mode": {"en": "Mode", "zh": "模式"},
    "mode_battle": {"en": "Battle (random, names hidden)", "zh": "对战（随机，隐藏名称）"},
    "mode_named": {"en": "Named (choose both)", "zh": "指定（自选两个）"},
    "model_a": {"en": "Model A", "zh": "模型 A"},
    "model_b": {"en": "Model B", "zh": "模型 B"},
    "hidden_a": {"en": "Model A (hidden)", "zh": "模型 A（隐藏）"},
    "hidden_b": {"en": "Model B (hidden)", "zh": "模型 B（隐藏）"},
    "revealed": {"en": "A was **{a}**, B was **{b}**.", "zh": "A 是 **{a}**，B 是 **{b}**。"},
    "question_lang": {"en": "Language of your question", "zh": "提问语言"},
    "question_lang_info": {"en": "Detected from your question when you send it; choose one to fix it.",
                           "zh": "发送时根据问题自动识别；手动选择则固定。"},
    "vote_a": {"en": "A is better", "zh": "A 更好"},
    "vote_b": {"en": "B is better", "zh": "B 更好"},
    "vote_tie": {"en": "Tie", "zh": "平局"},
    "vote_both_bad": {"en": "Both are bad", "zh": "都不好"},
    "new_round": {"en": "New round", "zh": "新一轮"},
    "voted": {"en": "Thanks, your vote is recorded.", "zh": "谢谢，投票已记录。"},
    "no_vote_failed": {"en": "A model failed, so this round cannot be voted on. Try a new round.",
                       "zh": "有模型出错，本轮无法投票。请开始新一轮。"},
    "no_battle": {"en": "There is nothing to vote on yet.", "zh": "还没有可以投票的内容。"},
    "already_voted": {"en": "You already voted on this round.", "zh": "本轮你已经投过票了。"},
    "anon_disabled": {"en": "Please sign in to vote.", "zh": "请登录后投票。"},
    "round_busy": {"en": "Finish or start a new round first.", "zh": "请先完成本轮或开始新一轮。"},
    "same_model": {"en": "Pick two different models.", "zh": "请选择两个不同的模型。"},
    # annotate
    "annotate_intro": {"en": "Compare two anonymous answers. Keys: **1** A · **2** B · **3** tie · **4** both bad · **s** skip.",
                       "zh": "比较两个匿名回答。快捷键：**1** A · **2** B · **3** 平局 · **4** 都不好 · **s** 跳过。"},
    "guidelines": {"en": "Guidelines", "zh": "标注指南"},
    "guidelines_text": {
        "en": "- Judge as if you only spoke the question's language: an answer in another language is worse.\n"
              "- Prefer helpful, correct, complete and clear answers; length alone is not quality.\n"
              "- Pick **Tie** when both are about equally good, **Both are bad** when neither helps.\n"
              "- Use **Skip** if you cannot judge the question (you will not see it again).",
        "zh": "- 假设你只懂问题所用的语言来评判：用其他语言回答的更差。\n"
              "- 优先选择有帮助、正确、完整、清晰的回答；长度本身不代表质量。\n"
              "- 两者差不多好时选 **平局**，都没有帮助时选 **都不好**。\n"
              "- 无法判断时使用 **跳过**（之后不会再出现）。"},
    "task": {"en": "Task", "zh": "任务"},
    "question": {"en": "Question", "zh": "问题"},
    "answer_a": {"en": "Answer A", "zh": "回答 A"},
    "answer_b": {"en": "Answer B", "zh": "回答 B"},
    "skip": {"en": "Skip (s)", "zh": "跳过 (s)"},
    "progress": {"en": "Progress: **{done}** done · {skipped} skipped · {remaining} left for you · {total} pairs in the task.",
                 "zh": "进度：已完成 **{done}** · 跳过 {skipped} · 剩余 {remaining} · 任务共 {total} 对。"},
    "login_to_annotate": {"en": "Sign in (top of the page) to annotate.", "zh": "请先登录（页面顶部）再标注。"},
    "all_done": {"en": "Nothing left for you in this task. Thank you!", "zh": "本任务已没有待标注的内容，谢谢！"},
    "previous": {"en": "Previous pair: A was **{a}**, B was **{b}**.", "zh": "上一对：A 是 **{a}**，B 是 **{b}**。"},
    "no_task": {"en": "No annotation task yet: an admin can import pairs, or the start-up generation is still running.",
                "zh": "还没有标注任务：管理员可以导入答案对，或启动时的生成仍在进行。"},
    # judge
    "judge_intro": {"en": "Run an LLM judge over stored pairs through any OpenAI-compatible endpoint (admins only). "
                          "The key is read from the named environment variable on the server.",
                    "zh": "通过任意 OpenAI 兼容接口对已存答案对运行大模型评审（仅管理员）。密钥从服务器上指定的环境变量读取。"},
    "judge_prompt": {"en": "Judge prompt", "zh": "评审提示词"},
    "base_url": {"en": "Endpoint URL", "zh": "接口地址"},
    "judge_model": {"en": "Judge model", "zh": "评审模型"},
    "api_key_env": {"en": "API key environment variable (name only)", "zh": "API 密钥环境变量（仅名称）"},
    "limit": {"en": "At most this many pairs (0 = all)", "zh": "最多评审的答案对数（0 = 全部）"},
    "start_judge": {"en": "Start judging", "zh": "开始评审"},
    "judge_status": {"en": "Run {id}: {status} — {done}/{total} calls, {errors} errors. {message}",
                     "zh": "运行 {id}：{status} — {done}/{total} 次调用，{errors} 个错误。{message}"},
    "judge_idle": {"en": "No run started in this session.", "zh": "本会话尚未开始评审。"},
    "judge_no_pairs": {"en": "There are no stored pairs to judge.", "zh": "没有可评审的答案对。"},
    "judge_unreachable": {"en": "**The judge endpoint could not be reached** at {url}: nothing was judged. Is the server "
                                "running, and does the URL end in `/v1` (e.g. `http://127.0.0.1:8000/v1` for "
                                "`bactrian serve`)?",
                          "zh": "**无法连接评审接口** {url}：没有评审任何内容。服务器是否在运行？地址是否以 `/v1` 结尾"
                                "（例如 `bactrian serve` 的 `http://127.0.0.1:8000/v1`）？"},
    "judge_failures": {"en": "First failed calls of this run (reason and the judge's raw output)",
                       "zh": "本次运行最先失败的调用（原因及评审的原始输出）"},
    "admin_only": {"en": "Admins only: sign in with an admin account.", "zh": "仅限管理员：请用管理员账号登录。"},
    "recent_runs": {"en": "Recent runs", "zh": "最近的运行"},
    "refresh": {"en": "↻ Refresh", "zh": "↻ 刷新"},
    # leaderboard
    "lb_filters": {"en": "Filters and rating options", "zh": "筛选与评分选项"},
    "lb_languages": {"en": "Languages", "zh": "语言"},
    "lb_group": {"en": "Language group (paper)", "zh": "语言组（论文）"},
    "lb_all": {"en": "all", "zh": "全部"},
    "lb_categories": {"en": "Categories", "zh": "类别"},
    "lb_annotators": {"en": "Annotators / judges", "zh": "标注者 / 评审"},
    "lb_evidence": {"en": "Evidence", "zh": "证据类型"},
    "kind_blind": {"en": "Blind battles", "zh": "盲测对战"},
    "kind_named": {"en": "Named battles", "zh": "具名对战"},
    "kind_annotation": {"en": "Annotation votes", "zh": "标注投票"},
    "kind_judge": {"en": "Judge verdicts", "zh": "评审结论"},
    "lb_judge_prompt": {"en": "Judge prompt (one per judge)", "zh": "评审提示词（每个评审一个）"},
    "lb_min_battles": {"en": "Provisional below (battles)", "zh": "少于此对战数为暂定"},
    "lb_since": {"en": "Since (UTC date)", "zh": "起始日期（UTC）"},
    "lb_until": {"en": "Until (UTC date, inclusive)", "zh": "截止日期（UTC，含当天）"},
    "lb_method": {"en": "Rating", "zh": "评分方法"},
    "lb_elo": {"en": "Online Elo", "zh": "在线 Elo"},
    "lb_ties": {"en": "Ties", "zh": "平局"},
    "lb_half": {"en": "half a win", "zh": "算半场胜"},
    "lb_drop": {"en": "dropped", "zh": "忽略"},
    "lb_rounds": {"en": "Bootstrap rounds", "zh": "自助法轮数"},
    "lb_table": {"en": "Ratings", "zh": "评分"},
    "lb_empty": {"en": "**No votes yet.** Ratings, charts and agreement appear here once visitors vote in the Arena "
                       "or annotators rate pairs (an admin can also import judgments). Benchmark results are below.",
                 "zh": "**还没有投票。**访客在竞技场投票或标注者评价答案对之后（管理员也可以导入评审结果），评分、图表和一致性会显示在这里。"
                       "基准测试结果在下方。"},
    "lb_no_match": {"en": "**No battles match these filters** ({total} stored). Widen the filters above.",
                    "zh": "**没有符合筛选条件的对战**（共存 {total} 场）。请放宽上面的筛选条件。"},
    "lb_status": {"en": "{n} of {total} battles match; {models} models.", "zh": "{total} 场对战中 {n} 场符合；{models} 个模型。"},
    "lb_provisional": {"en": "{n} provisional (few battles; shrunk towards 1000 by the prior).",
                       "zh": "{n} 个为暂定（对战少，被先验拉向 1000）。"},
    "lb_position": {"en": "Judge position consistency {consistency:.3f} over {pairs} both-order pairs (biased to first "
                          "{first:.3f}, to second {second:.3f}).",
                    "zh": "评审位置一致性 {consistency:.3f}，基于 {pairs} 个双向顺序的答案对（偏向第一个 {first:.3f}，偏向第二个 {second:.3f}）。"},
    "lb_warning": {"en": "Warning: {warning}.", "zh": "警告：{warning}。"},
    "fig_ratings": {"en": "Ratings", "zh": "评分"},
    "fig_win_fraction": {"en": "Win fraction", "zh": "胜率矩阵"},
    "fig_battle_count": {"en": "Battle count", "zh": "对战次数"},
    "fig_language_model": {"en": "Language x model", "zh": "语言 × 模型"},
    "fig_category_model": {"en": "Category x model", "zh": "类别 × 模型"},
    "fig_win_tie_loss": {"en": "Win / tie / loss", "zh": "胜 / 平 / 负"},
    "fig_length_control": {"en": "Length-controlled win rate", "zh": "长度控制胜率"},
    "fig_agreement": {"en": "Agreement", "zh": "一致性"},
    "fig_style_control": {"en": "Style control", "zh": "风格控制"},
    "lb_style_table": {"en": "Style-controlled ratings (answer length and markdown as covariates) beside the raw fit",
                       "zh": "风格控制评分（以回答长度和 Markdown 元素为协变量），与未控制的拟合并列"},
    "lb_paper_title": {"en": "### Paper views (judge scores 0-10, both answer orders merged; win / tie / loss)",
                       "zh": "### 论文视图（评审分数 0-10，两种回答顺序合并；胜 / 平 / 负）"},
    "lb_paper_score_averages": {"en": "Average judge score", "zh": "评审平均分"},
    "lb_paper_scores_by_language": {"en": "Average judge score per language", "zh": "各语言评审平均分"},
    "lb_paper_scores_by_category": {"en": "Average judge score per category", "zh": "各类别评审平均分"},
    "lb_paper_wins_by_language": {"en": "Win / tie / loss per language", "zh": "各语言胜 / 平 / 负"},
    "lb_paper_wins_by_category": {"en": "Win / tie / loss per category", "zh": "各类别胜 / 平 / 负"},
    "lb_paper_agreement_by_language": {"en": "Human-judge agreement per language", "zh": "各语言人工与评审的一致性"},
    "lb_paper_no_scores": {"en": "No judge scores in these battles: score averages need judge verdicts (Evidence: "
                                 "Judge verdicts).",
                           "zh": "这些对战没有评审分数：平均分需要评审结论（证据类型：评审结论）。"},
    "lb_agreement_none": {"en": "No battle here has both a human vote and a judge verdict: judge arena battles with "
                                "`bactrian studio judge --source battles` and count both kinds of evidence to see "
                                "human-judge agreement per language.",
                          "zh": "这里没有同时具有人工投票和评审结论的对战：用 `bactrian studio judge --source battles` "
                                "评审竞技场对战，并同时计入两类证据，即可看到各语言人工与评审的一致性。"},
    "bench_title": {"en": "### Benchmarks (zero-shot; averages over languages, %)", "zh": "### 基准测试（零样本；各语言平均，%）"},
    "bench_task": {"en": "Benchmark", "zh": "基准"},
    "bench_chart": {"en": "Per language", "zh": "按语言"},
    "bench_table_ref": {"en": "Benchmarks (Table 4): this project's rows, then the paper's",
                        "zh": "基准测试（表 4）：先是本项目的结果，然后是论文的结果"},
    "bench_reference": {"en": "Rows marked **(paper)**, whose source is the paper, are the paper's reported numbers, "
                              "not measured here: {citation}.",
                        "zh": "标有 **(paper)**、来源为论文的行是论文报告的数字，并非在此测得：{citation}。"},
    "bench_empty": {"en": "No benchmark results yet: `bactrian bench --out r.json`, then `bactrian studio import-bench r.json`.",
                    "zh": "还没有基准测试结果：先运行 `bactrian bench --out r.json`，再运行 `bactrian studio import-bench r.json`。"},
    "bench_status": {"en": "{variants} model variant(s) on {n} benchmark(s).", "zh": "{variants} 个模型变体，{n} 个基准。"},
    # admin
    "admin_intro": {"en": "Export and import need a signed-in account with the admin role.",
                    "zh": "导出和导入需要以管理员身份登录。"},
    "export": {"en": "Export", "zh": "导出"},
    "format": {"en": "Format", "zh": "格式"},
    "tables": {"en": "Tables", "zh": "数据表"},
    "do_export": {"en": "Export", "zh": "导出"},
    "exported": {"en": "Exported {n} file(s).", "zh": "已导出 {n} 个文件。"},
    "import_pairs": {"en": "Import answer pairs (JSONL)", "zh": "导入答案对（JSONL）"},
    "import_questions": {"en": "Import a question set (JSONL)", "zh": "导入问题集（JSONL）"},
    "overlap": {"en": "Overlap k (annotators per pair)", "zh": "重叠 k（每对的标注人数）"},
    "set_name": {"en": "Question set name (empty: file name)", "zh": "问题集名称（留空：文件名）"},
    "language_opt": {"en": "Language (if the file does not say)", "zh": "语言（文件未注明时）"},
    "do_import": {"en": "Import", "zh": "导入"},
    "imported": {"en": "Imported: {added} added, {unchanged} unchanged, {labels} labels.",
                 "zh": "已导入：新增 {added}，未变 {unchanged}，标签 {labels}。"},
    "no_file": {"en": "Choose a file first.", "zh": "请先选择文件。"},
    "generate_pairs": {"en": "Generate pairs from a question set with two local models", "zh": "用两个本地模型从问题集生成答案对"},
    "question_set": {"en": "Question set", "zh": "问题集"},
    "count": {"en": "How many questions", "zh": "问题数量"},
    "do_generate": {"en": "Generate in the background", "zh": "后台生成"},
    "generating": {"en": "Generating {n} pairs in the background into task {task}.", "zh": "正在后台生成 {n} 对到任务 {task}。"},
    "store_summary": {"en": "Store", "zh": "数据库"},
    "error": {"en": "Error: {error}", "zh": "错误：{error}"},
}


@lru_cache(maxsize=1)
def _examples() -> dict[str, list[str]]:
    raw = json.loads(resources.files("eval_studio.ui.data").joinpath("examples.json").read_text("utf-8"))
    return {k: list(v) for k, v in raw.items() if not k.startswith("_")}


def examples(lang: str) -> list[str]:
    """The example prompts shown under Chat for a UI language (``ui/data/examples.json``), English as fallback."""
    table = _examples()
    return table.get(lang) or table["en"]


def t(key: str, lang: str = "en", **fmt: object) -> str:
    entry = STRINGS[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**fmt) if fmt else text
