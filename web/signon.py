"""The browser's side of sign-on through the identity provider (统一身份认证, see fleet/oidc.py).

`/auth/oidc/login` sends the browser to the provider, bound to the request by a short-lived
cookie holding the state. `/auth/oidc/callback` finishes the sign-on and answers a page that
keeps the Fleet token as the login page does (in the page, never in a URL, so no log sees it);
a refusal is a page that says why in Chinese and English. `/auth/oidc/logout` follows the API's
logout (which revokes the token) to the provider's end_session_endpoint, when it has one.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Cookie, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fleet import oidc
from fleet.api import NowDep, RedisDep, SessionDep, SettingsDep
from fleet.errors import NotFound
from fleet.settings import Settings
from web.pages import templates, ui_config

STATE_COOKIE = "fleet_oidc_state"
ID_TOKEN_COOKIE = "fleet_oidc_id_token"  # noqa: S105 - a cookie's name
# Both cookies go only to the sign-on routes.
COOKIE_PATH = "/auth/oidc"

router = APIRouter(prefix="/auth/oidc", include_in_schema=False)


def _provider(request: Request) -> oidc.Provider:
    provider: oidc.Provider | None = request.app.state.oidc_provider
    if provider is None:
        raise NotFound("sign-on is not configured (FLEET_OIDC_ISSUER)")
    return provider


def _redirect_uri(request: Request, settings: Settings) -> str:
    return settings.oidc_redirect_uri or str(request.url_for("oidc_callback"))


def _page(request: Request, *, status_code: int = 200, **context: object) -> HTMLResponse:
    body = templates.get_template("signon.html").render(
        page="signon",
        title_zh="统一身份认证登录",
        title_en="Sign-on",
        config=json.dumps(
            ui_config(request.app.state.web_settings, request.app.state.settings.display_timezone),
            ensure_ascii=False,
        ),
        **context,
    )
    # The answer may carry a token: no cache keeps it.
    return HTMLResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})


def _refused(request: Request, refusal: oidc.SignOnRefused) -> HTMLResponse:
    answer = _page(request, status_code=403, refused_zh=refusal.zh, refused_en=refusal.en)
    answer.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return answer


@router.get("/login")
def oidc_login(request: Request, redis: RedisDep, settings: SettingsDep) -> Response:
    provider = _provider(request)
    try:
        url, state = oidc.begin(
            redis=redis, provider=provider, redirect_uri=_redirect_uri(request, settings)
        )
    except oidc.SignOnRefused as refusal:
        return _refused(request, refusal)
    answer = RedirectResponse(url, status_code=303)
    answer.set_cookie(
        STATE_COOKIE,
        state,
        max_age=oidc.STATE_TTL_S,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on a cross-site POST
    )
    return answer


@router.get("/callback", name="oidc_callback")
def oidc_callback(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    now: NowDep,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=2000)] = "",
    iss: Annotated[str | None, Query(max_length=500)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
    browser_state: Annotated[str | None, Cookie(alias=STATE_COOKIE)] = None,
) -> Response:
    provider = _provider(request)
    try:
        if error or not code:
            raise oidc.SignOnRefused(
                "统一身份认证未完成登录，请重新登录。",
                f"The identity provider did not sign you in ({error}: {error_description}).",
            )
        signed_on = oidc.finish(
            session=session,
            redis=redis,
            provider=provider,
            state=state,
            code=code,
            browser_state=browser_state,
            issuer=iss,
            now=now,
        )
    except oidc.SignOnRefused as refusal:
        return _refused(request, refusal)
    answer = _page(request, token=signed_on.token, expires_in=signed_on.expires_in)
    answer.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
    # Kept for the provider's logout (its id_token_hint); the page's script never sees it.
    answer.set_cookie(
        ID_TOKEN_COOKIE,
        signed_on.id_token,
        max_age=signed_on.expires_in,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return answer


@router.get("/logout")
def oidc_logout(
    request: Request,
    settings: SettingsDep,
    id_token: Annotated[str | None, Cookie(alias=ID_TOKEN_COOKIE)] = None,
) -> Response:
    """Where the pages go after POST /api/v1/auth/logout (which revoked the token) when the
    person signed on through the provider: the provider's own logout, which comes back to the
    login page; without one, the login page."""
    provider = _provider(request)
    login_page = _redirect_uri(request, settings).removesuffix(oidc.CALLBACK_PATH) + "/login"
    try:
        url = oidc.end_session_url(
            provider=provider, id_token_hint=id_token, post_logout_redirect_uri=login_page
        )
    except oidc.SignOnRefused:
        url = None
    answer = RedirectResponse(url or "/login", status_code=303)
    answer.delete_cookie(ID_TOKEN_COOKIE, path=COOKIE_PATH)
    return answer
