"""The variants the studio can show: the bare base, its adapters (grouped by language) and external models.

One ``Catalog`` is made in ``build_demo`` and captured by the tab callbacks (no module globals).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bactrian.client import Endpoint
from bactrian.engine import Engine
from bactrian.languages import get_language

from eval_studio.settings import ExternalModel


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # base | adapter | external
    group: str  # language code, "multilingual", "other", "base" or "external"
    languages: tuple[str, ...] = ()
    description: str = ""


class Catalog:
    def __init__(self, engine: Engine, external: tuple[ExternalModel, ...] = (), battle_external: bool = True):
        self.engine = engine
        self.battle_external = battle_external
        self.external = {m.name: m for m in external}
        local = [Variant(engine.base_name, "base", "base", (), "bare base model")]
        for info in sorted(engine.adapters.infos(), key=lambda i: (i.group, i.name)):
            local.append(Variant(info.name, "adapter", info.group, tuple(info.languages), info.description))
        clash = set(self.external) & {v.name for v in local}
        if clash:
            raise ValueError(f"external model names clash with local variants: {', '.join(sorted(clash))}")
        self.variants: dict[str, Variant] = {v.name: v for v in local}
        for m in external:
            self.variants[m.name] = Variant(m.name, "external", "external", (), f"{m.model} @ {m.base_url}")

    def names(self) -> list[str]:
        return list(self.variants)

    def is_external(self, name: str) -> bool:
        return self.variants[name].kind == "external"

    def endpoint(self, name: str) -> Endpoint:
        m = self.external[name]
        return Endpoint(m.base_url, m.model, m.api_key_env)

    def get(self, name: str) -> Variant:
        if name not in self.variants:
            raise KeyError(f"unknown model {name!r}")
        return self.variants[name]

    def choices(self) -> list[tuple[str, str]]:
        """Dropdown (label, value) pairs grouped by language: base, then each language, then external models."""
        return [(self.label(v), v.name) for v in self.variants.values()]

    def label(self, v: Variant) -> str:
        if v.kind == "base":
            return f"[base] {v.name}"
        if v.kind == "external":
            return f"[external] {v.name}"
        return f"[{_group_label(v.group)}] {v.name}"

    def for_language(self, language: str | None) -> list[str]:
        """Variants suited to a question language: its own adapters, multilingual ones, the base, externals."""
        pool = [v for v in self.variants.values() if self.battle_external or v.kind != "external"]
        fit = [v.name for v in pool if v.kind != "adapter" or not v.languages or (language in v.languages)]
        return fit if len(fit) >= 2 else [v.name for v in pool]

    def random_pair(self, language: str | None, rng: random.Random) -> tuple[str, str]:
        pool = self.for_language(language)
        if len(pool) < 2:
            raise ValueError("the arena needs at least two models; add an adapter or an external model")
        a, b = rng.sample(pool, 2)
        return a, b


def _group_label(group: str) -> str:
    try:
        lang = get_language(group)
        return f"{lang.code} · {lang.native}"
    except KeyError:
        return group
