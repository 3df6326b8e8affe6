"""Which benchmarks and languages exist, and the lm-eval task behind each pair.

The languages are read from the shipped task files (one ``<bench>_<lang>.yaml`` per language), so adding a
language is adding a file. Everything here is checked before a model is loaded: an unknown task or language or
a missing data file is reported at once, with what is available.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .loaders import LOCAL_FILES, BenchDataError, read_sentiment_file

SOURCES = ("local", "hub")
PUBLIC = ("xcopa", "xstorycloze", "xwinograd")
SENTIMENTX = "sentimentx"


class BenchError(ValueError):
    """Bad benchmark input (task, language, data); raised before anything heavy runs."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    metric: str  # the lm-eval metric reported (acc, or weighted f1 for SentimentX)
    languages: tuple[str, ...]

    def task_name(self, language: str | None, source: str = "local") -> str:
        if self.name == SENTIMENTX:
            return f"bactrian_sentimentx_{language}" if language else "bactrian_sentimentx"
        return f"bactrian_{self.name}_{'hub_' if source == 'hub' else ''}{language}"


def tasks_dir(stack: ExitStack) -> Path:
    """The shipped task folder as a real path (lm-eval's TaskManager walks a directory)."""
    return stack.enter_context(resources.as_file(resources.files("pipelines.bench.tasks")))


def benchmarks() -> dict[str, Benchmark]:
    out: dict[str, Benchmark] = {}
    root = resources.files("pipelines.bench.tasks")
    for name in PUBLIC:
        pattern = re.compile(rf"^{name}_([a-z]+)\.yaml$")
        langs = sorted(m.group(1) for f in root.joinpath(name).iterdir() if (m := pattern.match(f.name)) and m.group(1) != "hub")
        out[name] = Benchmark(name, "acc", tuple(langs))
    out[SENTIMENTX] = Benchmark(SENTIMENTX, "f1", ())  # languages come from the user's file
    return out


@dataclass(frozen=True)
class Selection:
    """One benchmark-language pair to run, with the lm-eval task that runs it."""

    benchmark: str
    language: str
    task: str
    metric: str


def _split(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [s.strip() for s in items if s and s.strip()]


def select(
    tasks: str | list[str],
    languages: str | list[str] | None = None,
    source: str = "local",
    data_root: str | Path | None = None,
    sentimentx_file: str | Path | None = None,
) -> list[Selection]:
    """Resolve ``--tasks``/``--languages`` into task names and check that every file they need exists.

    Without ``--languages`` a benchmark runs all its languages that have data (for local XStoryCloze, English
    only when the user has its file). With ``--languages``, each language must exist in at least one chosen
    benchmark, and a benchmark runs the chosen languages it has.
    """
    if source not in SOURCES:
        raise BenchError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    catalog = benchmarks()
    names = _split(tasks)
    if not names:
        raise BenchError(f"no tasks given; choose from {', '.join(catalog)}")
    unknown = [n for n in names if n not in catalog]
    if unknown:
        raise BenchError(f"unknown task {', '.join(map(repr, unknown))}; choose from {', '.join(catalog)}")
    wanted = _split(languages)
    root = Path(data_root).expanduser() if data_root else None
    if source == "local" and any(n in PUBLIC for n in names):
        if root is None:
            raise BenchError("local benchmark files need --data-root (e.g. ../shared/data/benchmarks), or use --source hub")
        if not root.is_dir():
            raise BenchError(f"--data-root {root} is not a folder")

    available: dict[str, list[str]] = {}
    for name in names:
        if name == SENTIMENTX:
            if not sentimentx_file:
                raise BenchError("sentimentx needs --sentimentx-file (a .jsonl/.csv/.tsv with text, label, language)")
            try:
                rows = read_sentiment_file(sentimentx_file)
            except BenchDataError as e:
                raise BenchError(str(e)) from e
            available[name] = sorted({r["language"] for r in rows})
        else:
            available[name] = list(catalog[name].languages)

    if wanted:
        known = {lang for langs in available.values() for lang in langs}
        bad = [lang for lang in wanted if lang not in known]
        if bad:
            listing = "; ".join(f"{n}: {' '.join(langs)}" for n, langs in available.items())
            raise BenchError(f"unknown language {', '.join(map(repr, bad))} for {', '.join(names)} ({listing})")

    out: list[Selection] = []
    for name in names:
        bench = catalog[name]
        langs = [lang for lang in available[name] if not wanted or lang in wanted]
        if not langs:
            raise BenchError(f"{name} has none of the languages {', '.join(wanted)} (it has {' '.join(available[name])})")
        if source == "local" and name in PUBLIC:
            langs = _check_files(name, langs, root, explicit=bool(wanted))
        for lang in langs:
            out.append(Selection(name, lang, bench.task_name(lang, source), bench.metric))
    return out


def _check_files(name: str, langs: list[str], root: Path, explicit: bool) -> list[str]:
    """Missing files are an error, except English XStoryCloze by default (not redistributable; used if present)."""
    have, missing = [], []
    for lang in langs:
        path = LOCAL_FILES[name](root, lang)
        if path.is_file():
            have.append(lang)
        elif name == "xstorycloze" and lang == "en" and not explicit:
            continue
        else:
            missing.append(str(path))
    if missing:
        raise BenchError(f"{name}: missing data file(s) under --data-root: {', '.join(missing)}")
    return have
