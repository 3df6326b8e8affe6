"""The variants the studio can show: the bare base, its adapters (grouped by language) and external models.

Every variant is served by a generation service: the studio's engine (in-process or a remote OpenAI-compatible
server such as vLLM) or, for an external model, a remote service of its own. One ``Catalog`` is made in
``build_demo`` and captured by the tab callbacks (no module globals).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bactrian.adapters import language_group
from bactrian.languages import get_language
from bactrian.remote import RemoteService
from bactrian.service import GenerationService

from eval_studio.settings import ExternalModel


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # base | adapter | external
    group: str  # language code, "multilingual", "other", "base" or "external"
    languages: tuple[str, ...] = ()
    description: str = ""
    digest: str | None = None  # the adapter's weight digest (lineage): None for the base and external models


class Catalog:
    def __init__(self, service: GenerationService, external: tuple[ExternalModel, ...] = (), battle_external: bool = False):
        self.service = service
        self.battle_external = battle_external
        self.external = {m.name: m for m in external}
        listed = service.variants()
        local = [Variant(v.name, "base", "base", (), v.description) for v in listed if v.kind == "base"][:1]
        adapters = [Variant(v.name, "adapter", language_group(v.languages), v.languages, v.description, v.digest)
                    for v in listed if v.kind == "adapter"]
        local += sorted(adapters, key=lambda v: (v.group, v.name))
        clash = set(self.external) & {v.name for v in local}
        if clash:
            raise ValueError(f"external model names clash with local variants: {', '.join(sorted(clash))}")
        self.variants: dict[str, Variant] = {v.name: v for v in local}
        # one remote service per external model: it names the model it asks for, not its studio name
        self._external_services = {m.name: RemoteService(m.base_url, api_key_env=m.api_key_env, models=[m.model])
                                   for m in external}
        for m in external:
            self.variants[m.name] = Variant(m.name, "external", "external", (), f"{m.model} @ {m.base_url}")

    @property
    def base_name(self) -> str:
        return self.service.base_name

    def route(self, name: str) -> tuple[GenerationService, str]:
        """The service that answers for ``name`` and the model id to ask it for."""
        self.get(name)
        if name in self.external:
            return self._external_services[name], self.external[name].model
        return self.service, name

    def names(self) -> list[str]:
        return list(self.variants)

    def is_external(self, name: str) -> bool:
        return self.variants[name].kind == "external"

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

    def default_variant(self) -> str:
        """What Chat opens on: the multilingual demo adapter (``demo-multi``), else a multilingual adapter, else the
        first adapter, else the base. Not the bare base first: without instruction tuning it fills the reply with
        repeated template text, the worst first impression a visitor can get."""
        adapters = [v for v in self.variants.values() if v.kind == "adapter"]
        for pick in ([v for v in adapters if v.name == "demo-multi"], [v for v in adapters if v.group == "multilingual"],
                     adapters):
            if pick:
                return pick[0].name
        return next(iter(self.variants))

    def pairs_for_language(self, language: str) -> list[tuple[str, str]]:
        """Local pairs worth annotating for a question in ``language``: the language's own adapter against the bare
        base and against a multilingual adapter; without one, a multilingual adapter (one trained on the language
        first) against the base. Empty when the service has fewer than two local variants."""
        local = [v for v in self.variants.values() if v.kind != "external"]
        base = [v.name for v in local if v.kind == "base"]
        own = [v.name for v in local if v.kind == "adapter" and v.languages == (language,)]
        multi = [v.name for v in sorted((v for v in local if v.kind == "adapter" and len(v.languages) > 1),
                                        key=lambda v: language not in v.languages)]
        if own:
            return [(own[0], other) for other in base + multi[:1]]
        if multi and base:
            return [(multi[0], base[0])]
        return [(local[0].name, local[1].name)] if len(local) >= 2 else []

    def for_language(self, language: str | None, external: bool | None = None) -> list[str]:
        """Variants suited to a question language: its own adapters, multilingual ones, the base, and external
        (paid) models when ``external`` (default: ``battle_external``, the setting for anonymous visitors)."""
        external = self.battle_external if external is None else external
        pool = [v for v in self.variants.values() if external or v.kind != "external"]
        fit = [v.name for v in pool if v.kind != "adapter" or not v.languages or (language in v.languages)]
        return fit if len(fit) >= 2 else [v.name for v in pool]

    def random_pair(self, language: str | None, rng: random.Random, external: bool | None = None) -> tuple[str, str]:
        pool = self.for_language(language, external)
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
