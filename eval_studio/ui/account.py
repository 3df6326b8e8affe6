"""The header's account row: password sign-in (accounts from ``BACTRIAN_USERS*``), Hugging Face sign-in on a Space,
and sessions that survive a page reload.

Who is signed in is always decided on the server: a password is checked against its scrypt hash, a Space's OAuth
profile comes from Gradio's server-side session, and a reload restores a password sign-in only from a token this
server signed (``eval_studio.space.SessionSigner``) for a user who still exists. A Hugging Face user becomes
annotator ``hf:<name>``, or an admin when the name is listed in ``BACTRIAN_ADMINS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from bactrian import settings

from eval_studio.auth import ADMINS_ENV, User, user_from_request
from eval_studio.space import SessionSigner, session_secret
from eval_studio.ui.common import Rejected, Translator, check_rate, session_key, sign_in, user_line
from eval_studio.ui.context import StudioContext
from eval_studio.ui.text import t

SESSION_KEY = "bactrian-session"  # the browser's localStorage key of the signed session token


def oauth_user(ctx: StudioContext, profile: Any) -> User | None:
    """The annotator (or admin) for a Hugging Face OAuth profile; None when not signed in with Hugging Face."""
    return user_from_request(None, ctx.users, profile, env={ADMINS_ENV: ",".join(ctx.settings.admins)})


def restore_user(ctx: StudioContext, signer: SessionSigner, token: Any, profile: Any = None) -> User | None:
    """Who this page belongs to after a reload: the Hugging Face profile, else a valid signed token of an account
    that still exists (a removed account or a changed key signs the page out)."""
    user = oauth_user(ctx, profile)
    if user is not None:
        return user
    name = signer.name(token)
    return ctx.users.get(name) if name else None


def status_line(ctx: StudioContext, user: User | None, lang: str) -> str:
    """The line under the header: who is signed in, or, where nobody can sign in, what a visitor can still do."""
    if user is None and not ctx.users and not ctx.settings.on_spaces:
        return t("no_users", lang)
    return user_line(user, lang)


@dataclass
class Account:
    session: gr.BrowserState
    username: gr.Textbox
    password: gr.Textbox
    login: gr.Button
    logout: gr.Button
    who: gr.Markdown
    hf_login: gr.LoginButton | None


def build_account(ctx: StudioContext, tr: Translator, lang0: str) -> Account:
    """The sign-in row (under the title). Password fields only where accounts exist; the Hugging Face button only on
    a Space. Without either, the row is hidden and the status line says what a visitor can do."""
    s = ctx.settings
    session = gr.BrowserState("", storage_key=SESSION_KEY)
    with tr.add(gr.Accordion(t("account", lang0), open=False, elem_id="account", visible=bool(ctx.users) or s.on_spaces),
                label="account"):
        with gr.Row(equal_height=True):
            username = tr.add(gr.Textbox(label=t("username", lang0), elem_id="login-user", scale=2, visible=bool(ctx.users)),
                              label="username")
            password = tr.add(gr.Textbox(label=t("password", lang0), type="password", elem_id="login-password", scale=2,
                                         visible=bool(ctx.users)), label="password")
            login = tr.add(gr.Button(t("login", lang0), variant="primary", elem_id="login-button", scale=1,
                                     visible=bool(ctx.users)), value="login")
            logout = tr.add(gr.Button(t("logout", lang0), elem_id="logout-button", scale=1), value="logout")
            hf_login = gr.LoginButton(scale=1) if s.on_spaces else None
    who = gr.Markdown(status_line(ctx, None, lang0), elem_id="login-status")
    return Account(session, username, password, login, logout, who, hf_login)


def wire_account(ctx: StudioContext, acc: Account, ui_lang: gr.Radio, user_state: gr.State, reloads: list,
                 demo: gr.Blocks) -> None:
    """Sign-in, sign-out and the restore on page load; every change of user re-runs ``reloads`` (tabs that show
    per-user content)."""
    # the key lives with the data it protects: in the persistent folder on a Space, else in BACTRIAN_HOME
    folder = Path(ctx.settings.persistent_dir) if ctx.settings.persistent_dir else settings.home()
    signer = SessionSigner(session_secret(ctx.settings.session_secret, folder))

    def on_login(request: gr.Request, name: str, pw: str, lang: str):
        if not ctx.users:
            gr.Warning(t("no_users", lang))
            return None, t("no_users", lang), "", gr.skip()
        try:  # before the (deliberately slow) password check: guessing costs the guesser, not the server
            check_rate(ctx.limiter, "login", session_key(request))
        except Rejected as e:
            gr.Warning(e.text(lang))
            return gr.skip(), e.text(lang), "", gr.skip()
        user = sign_in(ctx.users, name, pw)
        if user is None:
            gr.Warning(t("login_failed", lang))
            return None, t("login_failed", lang), "", gr.skip()
        return user, user_line(user, lang), "", signer.token(user.name)

    def on_logout(lang: str):
        return None, status_line(ctx, None, lang), "", ""

    outputs = [user_state, acc.who, acc.password, acc.session]
    events = [acc.login.click(on_login, [acc.username, acc.password, ui_lang], outputs, api_name="login"),
              acc.password.submit(on_login, [acc.username, acc.password, ui_lang], outputs, api_visibility="private"),
              acc.logout.click(on_logout, [ui_lang], outputs, api_name="logout")]

    if acc.hf_login is not None:  # on Spaces: the OAuth profile comes from the server-side session, not the browser
        def on_load(token: str, lang: str, profile: gr.OAuthProfile | None):
            user = restore_user(ctx, signer, token, profile)
            return user, status_line(ctx, user, lang)
    else:
        def on_load(token: str, lang: str):
            user = restore_user(ctx, signer, token)
            return user, status_line(ctx, user, lang)

    events.append(demo.load(on_load, [acc.session, ui_lang], [user_state, acc.who], api_visibility="private"))
    for event in events:
        for reload in reloads:
            event.then(reload.fn, reload.inputs, reload.outputs, api_visibility="private")

    def relabel_status(lang: str, user: User | None):
        return status_line(ctx, user, lang)

    ui_lang.change(relabel_status, [ui_lang, user_state], [acc.who], api_visibility="private")
