"""The trained adapter as a plain peft folder, plus our manifest and a generated model card.

The folder loads with ``PeftModel.from_pretrained(base, folder)`` alone; ``bactrian_adapter.json`` adds what
the studio's registry and a reader need (base and its revision, languages, data fingerprint, recipe, losses,
the exact command). Written into a temporary folder and renamed, so a crash never leaves half an adapter.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .recipe import Recipe

MANIFEST = "bactrian_adapter.json"


def base_revision(loaded: Any) -> str:
    """The Hub commit when known, else a hash of the local weight files (embedded bases: also the package)."""
    spec = loaded.spec
    commit = getattr(loaded.model.config, "_commit_hash", None)
    if commit:
        return commit
    from bactrian.models import materialize

    folder = Path(materialize(spec.name, progress=False))
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")):
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    rev = "sha256:" + h.hexdigest()[:16]
    if spec.package:
        try:
            rev += f" ({spec.package.replace('_', '-')} {version(spec.package.replace('_', '-'))})"
        except PackageNotFoundError:
            pass
    return rev


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else ("-" if x is None else str(x))


def model_card(manifest: dict[str, Any]) -> str:
    tr = manifest["training"]
    rec = tr["recipe"]
    template = resources.files("pipelines.train.templates").joinpath("model_card.md").read_text("utf-8")
    langs = manifest["languages"]
    return template.format(
        name=manifest["name"],
        description=manifest["description"],
        base_model=manifest["base_model"],
        base_ref=manifest["base_ref"],
        base_revision=tr["base_revision"],
        languages=", ".join(langs) or "unspecified",
        language_yaml="\n".join(f"- {c}" for c in langs) or "- multilingual",
        r=rec["lora"]["r"], alpha=rec["lora"]["alpha"], dropout=rec["lora"]["dropout"],
        targets=", ".join(tr["target_modules"]) if isinstance(tr["target_modules"], list) else tr["target_modules"],
        lr=rec["train"]["lr"], batch_size=rec["train"]["batch_size"], max_length=rec["train"]["max_length"],
        steps=tr["steps"], data_path=rec["data"]["path"] or "MBZUAI/Bactrian-X", data_source=rec["data"]["source"],
        train_examples=tr["train_examples"], eval_examples=tr["eval_examples"], fingerprint=tr["data_fingerprint"],
        train_loss=_fmt(tr["train_loss"]), eval_loss=_fmt(tr["eval_loss"]), eval_loss_before=_fmt(tr["eval_loss_before"]),
        command=tr["command"],
    )


def write_adapter(peft_model: Any, recipe: Recipe, loaded: Any, languages: list[str], summary: dict[str, Any],
                  command: str) -> Path:
    """Save adapter + manifest + card into ``recipe.adapter_dir`` (replacing it atomically); push if asked."""
    out = recipe.adapter_dir
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = peft_model.peft_config["default"]
    targets = sorted(cfg.target_modules) if isinstance(cfg.target_modules, (set, list)) else cfg.target_modules
    langs = languages or ([recipe.data.languages] if isinstance(recipe.data.languages, str) and recipe.data.languages != "all"
                          else list(recipe.data.languages) if isinstance(recipe.data.languages, list) else [])
    manifest = {
        "name": recipe.name,
        "base_model": loaded.spec.name,
        "base_ref": cfg.base_model_name_or_path,
        "languages": langs,
        "description": recipe.output.description or f"LoRA adapter for {loaded.spec.name} ({', '.join(langs) or 'multilingual'})",
        "training": {
            "command": command,
            "recipe": recipe.to_dict(),
            "target_modules": targets,
            "base_revision": base_revision(loaded),
            **summary,
            "versions": {p: _version(p) for p in ("torch", "transformers", "peft", "accelerate")},
        },
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        peft_model.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", "utf-8")
        (tmp / "README.md").write_text(model_card(manifest), "utf-8")
        _usual_modes(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if recipe.output.push_to_hub:
        push_to_hub(out, recipe.output.hub_repo or "", recipe.output.hub_private)
    return out


def _usual_modes(folder: Path) -> None:
    """mkdtemp makes a 0700 folder and safetensors writes 0600 files; give the adapter the modes the umask
    allows (usually 0755 / 0644), so a server or studio running as another user can read it."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
    for f in folder.rglob("*"):
        f.chmod((0o777 if f.is_dir() else 0o666) & ~mask)


def push_to_hub(folder: Path, repo: str, private: bool = True) -> str:
    """Upload the adapter folder; the token comes from the environment / HF login, never from a file of ours."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message="Upload LoRA adapter (bactrian train)")
    return str(info)


def _version(pkg: str) -> str | None:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None
