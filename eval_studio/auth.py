"""Annotator accounts: users from a file or an environment variable, scrypt-hashed passwords, roles.

Formats (``$BACTRIAN_USERS_FILE`` or ``$BACTRIAN_USERS``; the old ``BACTRIAN_STUDIO_*`` names still work):
- JSON: ``{"users": [{"name": "ana", "password_hash": "scrypt$...", "role": "admin"}]}`` (or just the list);
- text: one ``name:password_hash[:role]`` per line (or comma-separated in the variable); ``#`` starts a comment.
Plain-text passwords are refused; make hashes with ``bactrian studio add-user`` or :func:`hash_password`.

In the app, the annotator is whoever Gradio authenticated for this session (``request.username``) or the
Hugging Face OAuth profile on Spaces: never a name sent by the browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian import settings

USERS_ENV = "BACTRIAN_USERS"
USERS_FILE_ENV = "BACTRIAN_USERS_FILE"
ADMINS_ENV = "BACTRIAN_ADMINS"  # comma-separated OAuth user names that get the admin role
ROLES = ("annotator", "admin")
_N, _R, _P = 2**14, 8, 1


class AuthError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    role: str = "annotator"
    password_hash: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    if not password:
        raise AuthError("empty password")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _user(name: Any, password_hash: Any, role: Any, where: str) -> User:
    name, role = str(name or "").strip(), str(role or "annotator").strip()
    if not name:
        raise AuthError(f"{where}: user without a name")
    if role not in ROLES:
        raise AuthError(f"{where}: role of {name!r} must be annotator or admin, got {role!r}")
    if not isinstance(password_hash, str) or not password_hash.startswith("scrypt$") or password_hash.count("$") != 5:
        raise AuthError(f"{where}: {name!r} needs a scrypt password hash (plain-text passwords are refused)")
    return User(name, role, password_hash)


def parse_users(text: str, where: str) -> dict[str, User]:
    text = text.strip()
    users: list[User] = []
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise AuthError(f"{where}: invalid JSON ({e.msg})") from e
        rows = data.get("users", []) if isinstance(data, dict) else data
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise AuthError(f"{where}: users[{i}] must be an object")
            users.append(_user(row.get("name"), row.get("password_hash"), row.get("role"), where))
    else:
        for n, line in enumerate(text.replace(",", "\n").splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                parts = line.split(":")
                if len(parts) not in (2, 3):
                    raise AuthError(f"{where}:{n}: expected name:password_hash[:role]")
                users.append(_user(parts[0], parts[1], parts[2] if len(parts) == 3 else None, f"{where}:{n}"))
    out: dict[str, User] = {}
    for u in users:
        if u.name in out:
            raise AuthError(f"{where}: user {u.name!r} listed twice")
        out[u.name] = u
    return out


def load_users(path: str | Path | None = None, env: dict[str, str] | None = None) -> dict[str, User]:
    """Users from ``path`` (default ``$BACTRIAN_USERS_FILE``) plus ``$BACTRIAN_USERS``."""
    users: dict[str, User] = {}
    path = path or settings.get(USERS_FILE_ENV, env)
    if path:
        p = Path(path)
        if not p.is_file():
            raise AuthError(f"users file {p} does not exist")
        users.update(parse_users(p.read_text("utf-8"), str(p)))
    inline = settings.get(USERS_ENV, env)
    if inline:
        for name, user in parse_users(inline, f"${USERS_ENV}").items():
            if name in users:
                raise AuthError(f"user {name!r} is in both the users file and ${USERS_ENV}")
            users[name] = user
    return users


def add_user(path: str | Path, name: str, password: str, role: str = "annotator") -> None:
    """Add or replace a user in a JSON users file (only the hash is written)."""
    p = Path(path)
    users = parse_users(p.read_text("utf-8"), str(p)) if p.is_file() and p.read_text("utf-8").strip() else {}
    users[name] = _user(name, hash_password(password), role, str(p))
    rows = [{"name": u.name, "role": u.role, "password_hash": u.password_hash} for u in users.values()]
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps({"users": rows}, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(p)


def gradio_auth(users: dict[str, User]) -> Callable[[str, str], bool]:
    """The callable for ``demo.launch(auth=...)``."""

    def check(username: str, password: str) -> bool:
        user = users.get(username)
        if user is None:
            verify_password(password, hash_password("timing-equaliser"))  # do not reveal which names exist
            return False
        return verify_password(password, user.password_hash)

    return check


def user_from_request(request: Any, users: dict[str, User], oauth_profile: Any = None, env: dict[str, str] | None = None) -> User | None:
    """The signed-in user of this Gradio session (``gr.Request``), or the Spaces OAuth profile; None = anonymous."""
    name = getattr(request, "username", None) if request is not None else None
    if name:
        return users.get(name) or User(name)
    if oauth_profile is not None and getattr(oauth_profile, "username", None):
        admins = {a.strip() for a in settings.get(ADMINS_ENV, env).split(",") if a.strip()}
        hf_name = oauth_profile.username
        return User(f"hf:{hf_name}", "admin" if hf_name in admins else "annotator")
    return None


def require_admin(request: Any, users: dict[str, User], oauth_profile: Any = None) -> User:
    user = user_from_request(request, users, oauth_profile)
    if user is None or not user.is_admin:
        raise PermissionError("admin login required")
    return user
