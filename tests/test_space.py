"""The studio as a Hugging Face Space: data in the persistent folder, scheduled backups to a Hub dataset repo (the
Hub's upload and download stood in for by an injected ``HfApi``), Hugging Face sign-in mapped to annotator and
admin accounts (a stubbed OAuth profile), sessions that survive a reload, and the Space's files themselves."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from types import SimpleNamespace


from tests.ui_support import studio_settings

REPO = Path(__file__).resolve().parents[1]


class FakeHub:
    """What the backup asks of the Hub: create the repo, commit files, download one. Commits land in ``files``."""

    def __init__(self, tmp: Path):
        from huggingface_hub import HfApi

        self.api = HfApi(token="hf_test_not_a_real_token")
        self.tmp, self.files, self.commits, self.repos = tmp, {}, [], []
        hub = self

        class Api(HfApi):
            def create_repo(self, repo_id, **kw):
                from huggingface_hub.hf_api import RepoUrl

                hub.repos.append((repo_id, kw))
                return RepoUrl(f"https://huggingface.co/datasets/{repo_id}")

            def create_commit(self, repo_id, operations, **kw):
                hub.commits.append([op.path_in_repo for op in operations])
                for op in operations:
                    hub.files[op.path_in_repo] = op.path_or_fileobj.read()
                return SimpleNamespace(oid=str(len(hub.commits)))

            def hf_hub_download(self, repo_id, filename, repo_type=None, **kw):
                if filename not in hub.files:
                    raise FileNotFoundError(filename)
                out = hub.tmp / f"download-{len(hub.commits)}-{Path(filename).name}"
                out.write_bytes(hub.files[filename])
                return str(out)

        self.api = Api(token="hf_test_not_a_real_token")


def _vote(ctx, winner: str = "a") -> None:
    from bactrian.generation import GenerationParams
    from eval_studio.ui.arena_tab import ArenaState, arena_turn, arena_vote, pick_models

    st = pick_models(ctx, ArenaState(), "named", ("alpha", "beta"), "en", random.Random(0))
    *_, (_, st) = arena_turn(ctx, st, "Which is the capital of France?", GenerationParams(max_new_tokens=4, min_tokens=2), None)
    arena_vote(ctx, st, winner, None)


def _board(ctx) -> list[tuple]:
    from eval_studio.store.battles import load_battles
    from eval_studio.ui.leaderboard_tab import leaderboard_view

    _, table, _ = leaderboard_view(load_battles(ctx.db), kinds=None, rounds=20)
    return [tuple(r) for r in table[["model", "rating", "battles"]].itertuples(index=False)]


def test_persistent_folder_holds_the_database(tmp_path, monkeypatch):
    from eval_studio import space
    from eval_studio.settings import Settings

    s = Settings.from_env({"BACTRIAN_PERSISTENT_DIR": str(tmp_path / "keep")})
    assert s.db_url == f"sqlite:///{tmp_path / 'keep' / 'bactrian' / 'studio.db'}"
    assert Settings.from_env({"BACTRIAN_PERSISTENT_DIR": str(tmp_path), "BACTRIAN_DB": "sqlite:///x.db"}).db_url == "sqlite:///x.db"
    monkeypatch.setattr(space, "SPACE_DATA", tmp_path / "data")  # a Space's /data
    assert space.persistent_dir({"SPACE_ID": "me/studio"}) is None  # no persistent storage bought
    (tmp_path / "data").mkdir()
    assert space.persistent_dir({"SPACE_ID": "me/studio"}) == tmp_path / "data"
    assert space.persistent_dir({}) is None  # not on a Space: /data of some machine is not ours


def test_backup_uploads_the_votes_and_a_restart_keeps_the_leaderboard(tiny_base, tiny_adapters, tmp_path):
    from eval_studio.ui.context import create_context

    hub = FakeHub(tmp_path)
    keep = tmp_path / "data"
    settings = studio_settings(tiny_base, tiny_adapters, keep / "bactrian" / "studio.db", external_models=(),
                               persistent_dir=str(keep), backup_repo="me/studio-votes", backup_minutes=60)
    ctx = create_context(settings, hf_api=hub.api)
    assert hub.repos == [("me/studio-votes", {"private": True, "repo_type": "dataset", "exist_ok": True})]
    for winner in ("a", "b", "a"):
        _vote(ctx, winner)
    board = _board(ctx)
    assert sum(b for *_, b in board) == 6  # 3 battles, 2 players each
    ctx.backup.trigger().result()  # what the scheduler does every BACTRIAN_BACKUP_MINUTES
    votes = [json.loads(line) for line in hub.files["studio/votes.jsonl"].decode().splitlines()]
    assert [v["winner"] for v in votes] == ["a", "b", "a"]
    assert {"studio/judgments.jsonl", "studio/pairs.jsonl", "studio/studio.db"} <= set(hub.files)
    uploads = len(hub.commits)
    ctx.backup.trigger().result()
    assert len(hub.commits) == uploads  # nothing changed: nothing uploaded again
    ctx.backup.stop()
    ctx.service.close()

    # a restart with the persistent folder: the same database, the same leaderboard
    again = create_context(settings, hf_api=hub.api)
    assert _board(again) == board
    again.backup.stop()
    again.service.close()

    # a new Space without that folder: the store comes back from the backup
    fresh = studio_settings(tiny_base, tiny_adapters, tmp_path / "new" / "studio.db", external_models=(),
                            persistent_dir=str(tmp_path / "new"), backup_repo="me/studio-votes", backup_minutes=60)
    restored = create_context(fresh, hf_api=hub.api)
    assert _board(restored) == board
    restored.backup.stop()
    restored.service.close()


def test_sessions_are_signed_and_expire(tmp_path):
    from eval_studio.space import SessionSigner, session_secret

    key = session_secret(None, tmp_path)
    assert key == session_secret(None, tmp_path) and (tmp_path / "session.key").stat().st_mode & 0o777 == 0o600
    signer = SessionSigner(key, days=1)
    token = signer.token("ana")
    assert signer.name(token) == "ana"
    body, mac = token.split(".")
    forged = json.dumps({"u": "admin", "exp": time.time() + 999}).encode()
    import base64

    assert signer.name(f"{base64.urlsafe_b64encode(forged).decode()}.{mac}") is None  # another user, old signature
    assert SessionSigner(b"another key").name(token) is None
    assert signer.name(token, now=time.time() + 2 * 86400) is None  # expired
    assert signer.name("") is None and signer.name(None) is None and signer.name("x.y.z") is None


def test_hugging_face_sign_in_maps_to_annotators_and_admins(tiny_base, tiny_adapters, tmp_path):
    from eval_studio.space import SessionSigner
    from eval_studio.ui.account import oauth_user, restore_user, status_line
    from eval_studio.ui.context import create_context

    ctx = create_context(studio_settings(tiny_base, tiny_adapters, tmp_path / "s.db", external_models=(),
                                         on_spaces=True, admins=("carol",), users_text=None))
    carol, dave = SimpleNamespace(username="carol", name="Carol"), SimpleNamespace(username="dave", name="Dave")
    assert oauth_user(ctx, carol).name == "hf:carol" and oauth_user(ctx, carol).is_admin
    assert oauth_user(ctx, dave).role == "annotator" and oauth_user(ctx, None) is None
    signer = SessionSigner(b"k")
    assert restore_user(ctx, signer, "", dave).name == "hf:dave"  # a reload: Gradio's OAuth session again
    assert restore_user(ctx, signer, signer.token("ghost")) is None  # a token of an account that does not exist
    assert "hf:dave" in status_line(ctx, oauth_user(ctx, dave), "en")

    # an OAuth annotator annotates like any account
    from eval_studio.io import import_pairs_file
    from eval_studio.ui.annotate_tab import act, current
    from tests.ui_support import demo_pairs, write_pairs

    import_pairs_file(ctx.db, write_pairs(tmp_path / "p.jsonl", demo_pairs(2)), task=ctx.settings.task, overlap=2)
    user = oauth_user(ctx, dave)
    pair = current(ctx, user, ctx.settings.task)
    act(ctx, user, {"assignment_id": pair.assignment_id, "model_a": pair.model_a, "model_b": pair.model_b}, "a")
    assert ctx.db.connect().exec_driver_sql("SELECT n.name FROM votes v JOIN annotators n ON n.id = v.annotator_id").all() == [("hf:dave",)]
    ctx.service.close()


def test_the_spaces_login_button_and_oauth_load_are_wired(tiny_base, tiny_adapters, tmp_path, monkeypatch):
    """Built as on a Space: the Hugging Face button is there and the page-load handler takes the OAuth profile."""
    import gradio as gr
    import gradio.oauth

    from eval_studio.ui.app import build_demo

    # what a Space with `hf_oauth: true` sets; outside one, Gradio would ask hf.co who the local token belongs to
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "me/studio")
    for name, value in {"OAUTH_CLIENT_ID": "client", "OAUTH_CLIENT_SECRET": "secret", "OAUTH_SCOPES": "openid profile",
                        "OPENID_PROVIDER_URL": "https://huggingface.co"}.items():
        monkeypatch.setattr(gradio.oauth, name, value)

    demo = build_demo(studio_settings(tiny_base, tiny_adapters, tmp_path / "s.db", external_models=(), on_spaces=True,
                                      admins=("carol",)))
    assert any(isinstance(b, gr.LoginButton) for b in demo.blocks.values())
    (load,) = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_load"]
    user, line = load.fn("", "en", SimpleNamespace(username="carol", name="Carol"))
    assert user.name == "hf:carol" and user.is_admin and "hf:carol" in line
    demo.studio.service.close()


def test_space_requirements_agree_with_the_project_pins():
    """requirements.txt (what the Space builder installs, alone: it sees no other file) pins what
    requirements/base.txt pins, and the torch setup.sh installs, as the CPU build."""
    def pins(path: Path) -> dict[str, str]:
        out = {}
        for line in path.read_text("utf-8").splitlines():
            m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#]+)", line.strip())
            if m:
                out[m.group(1).lower().replace("_", "-")] = m.group(2)
        return out

    space, base = pins(REPO / "requirements.txt"), pins(REPO / "requirements" / "base.txt")
    text = (REPO / "requirements.txt").read_text("utf-8")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    assert not re.search(r"^\s*-[re]\s", text, re.M)  # the builder mounts this one file: no includes, no -e .
    torch = re.search(r'TORCH_VERSION="\$\{TORCH_VERSION:-([0-9.]+)\}"', (REPO / "scripts" / "setup.sh").read_text())
    assert space.pop("torch") == f"{torch.group(1)}+cpu"
    left_out = {name for name in base if name not in space}
    assert left_out == {"lm-eval", "scikit-learn", "statsmodels"}, left_out  # bench and test-only tools
    assert all(space[n] == v for n, v in base.items() if n in space), "a pin differs from requirements/base.txt"
    assert set(space) - set(base) == {"authlib", "itsdangerous"}  # gradio[oauth], the Space's sign-in


def test_readme_front_matter_names_files_that_exist():
    front = (REPO / "README.md").read_text("utf-8").split("---")[1]
    meta = dict(line.split(":", 1) for line in front.splitlines() if re.match(r"^[a-z_]+:", line))
    meta = {k: v.strip().strip('"') for k, v in meta.items()}
    assert meta["sdk"] == "gradio" and (REPO / meta["app_file"]).is_file()
    import gradio

    assert meta["sdk_version"] == gradio.__version__  # the builder installs this gradio, the tests use the same
    assert f"gradio=={meta['sdk_version']}" in (REPO / "requirements.txt").read_text("utf-8")
    assert meta["python_version"].startswith("3.")
    assert meta["hf_oauth"] == "true"
    app = (REPO / meta["app_file"]).read_text("utf-8")
    assert re.search(r"^\s*demo = build_demo\(", app, re.M)  # the Space serves the module-level `demo`
