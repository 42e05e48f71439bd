"""Sign-on through the unified identity service (统一身份认证): OpenID Connect, the
authorization code flow with PKCE.

`begin` keeps the state, the nonce and the PKCE verifier in Redis under the state (one-time,
short-lived) and answers the provider's authorization URL; the browser is bound to that state
by a cookie the web layer sets. `finish` takes the state back once, exchanges the code, verifies
the ID token (signature by the provider's JWKS, `iss`, `aud`, `exp`, `nonce`; joserfc and Authlib,
no JOSE of our own), finds the Fleet account the identity maps to by username, and issues the
same bearer token a password sign-in gives.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import auth, registry
from fleet.models import OrgUnit, Role, UserAccount
from fleet.redis_client import RedisClient
from fleet.schemas import UserCreate
from fleet.settings import Settings

CALLBACK_PATH = "/auth/oidc/callback"
# How long a browser has between leaving for the provider and coming back (s).
STATE_TTL_S = 600
# Clock skew allowed between the provider and Fleet on `exp` and `iat` (s).
LEEWAY_S = 60
# Signatures an ID token may carry: asymmetric only, so a token signed with the client secret
# (HS256) or none is refused whatever the provider advertises.
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


def _state_key(state: str) -> str:
    return f"fleet:oidc:state:{state}"


class SignOnRefused(Exception):
    """A sign-on that cannot go on; the page shows `zh` and `en` to the person."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


@dataclass(frozen=True, slots=True)
class SignOn:
    """A finished sign-on: the Fleet token, its lifetime (s), the account and the ID token (kept
    for the provider's logout as `id_token_hint`)."""

    token: str
    expires_in: int
    user: UserAccount
    id_token: str


class Provider:
    """The identity provider as discovered from FLEET_OIDC_ISSUER: its metadata read once, its
    keys read once and again when a token names a key they lack (a key rotation). One per
    process; the first sign-on reads it, so Fleet starts while the provider is down."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None

    def _get(self, url: str) -> dict[str, Any]:
        try:
            answer = httpx.get(url, timeout=self.settings.oidc_timeout_s)
            answer.raise_for_status()
            data = answer.json()
        except (httpx.HTTPError, ValueError) as error:
            raise SignOnRefused(
                "统一身份认证服务暂时无法访问，请稍后再试。",
                f"The identity provider cannot be reached ({error}); try again later.",
            ) from error
        if not isinstance(data, dict):
            raise SignOnRefused("统一身份认证服务的应答无效。", f"{url} did not answer an object")
        return data

    def metadata(self) -> ProviderMetadata:
        with self._lock:
            if self._metadata is None:
                issuer = self.settings.oidc_issuer.rstrip("/")
                data = self._get(f"{issuer}/.well-known/openid-configuration")
                if data.get("issuer", "").rstrip("/") != issuer:
                    raise SignOnRefused(
                        "统一身份认证服务的配置与设置的地址不符。",
                        f"The provider names itself {data.get('issuer')!r}, not {issuer!r}.",
                    )
                self._metadata = ProviderMetadata(
                    issuer=data["issuer"],
                    authorization_endpoint=data["authorization_endpoint"],
                    token_endpoint=data["token_endpoint"],
                    jwks_uri=data["jwks_uri"],
                    end_session_endpoint=data.get("end_session_endpoint"),
                )
            return self._metadata

    def keys(self, *, refresh: bool = False) -> KeySet:
        jwks_uri = self.metadata().jwks_uri
        with self._lock:
            if self._keys is None or refresh:
                self._keys = KeySet.import_key_set(self._get(jwks_uri))  # type: ignore[arg-type]
            return self._keys


def begin(*, redis: RedisClient, provider: Provider, redirect_uri: str) -> tuple[str, str]:
    """(The provider's authorization URL, the state to bind the browser to)."""
    settings = provider.settings
    metadata = provider.metadata()
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    redis.set(
        _state_key(state),
        json.dumps({"nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri}),
        ex=STATE_TTL_S,
    )
    with OAuth2Client(
        client_id=settings.oidc_client_id,
        scope=settings.oidc_scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    ) as client:
        url, _ = client.create_authorization_url(
            metadata.authorization_endpoint, state=state, code_verifier=verifier, nonce=nonce
        )
    return url, state


_EXPIRED = SignOnRefused(
    "登录请求已过期或已使用，请重新登录。",
    "This sign-on request has expired or was already used; sign in again.",
)


def finish(
    *,
    session: Session,
    redis: RedisClient,
    provider: Provider,
    state: str,
    code: str,
    browser_state: str | None,
    issuer: str | None,
    now: datetime,
) -> SignOn:
    """Checks the state against the browser's and takes it (once), exchanges the code with the
    PKCE verifier, verifies the ID token and signs the mapped account in."""
    settings = provider.settings
    if not browser_state or not secrets.compare_digest(state, browser_state):
        raise _EXPIRED
    kept = redis.getdel(_state_key(state))
    if kept is None:
        raise _EXPIRED
    asked = json.loads(kept)
    metadata = provider.metadata()
    if issuer is not None and issuer != metadata.issuer:  # RFC 9207: a mix-up of providers
        raise SignOnRefused("登录应答来自另一身份认证服务。", "The answer names another issuer.")
    try:
        with OAuth2Client(
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method's name
            timeout=settings.oidc_timeout_s,
        ) as client:
            tokens = client.fetch_token(
                metadata.token_endpoint,
                grant_type="authorization_code",
                code=code,
                redirect_uri=asked["redirect_uri"],
                code_verifier=asked["verifier"],
            )
    except (AuthlibBaseError, httpx.HTTPError) as error:
        raise SignOnRefused(
            "统一身份认证服务拒绝了本次登录，请重新登录。",
            f"The identity provider refused the sign-on ({error}); sign in again.",
        ) from error
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise SignOnRefused("统一身份认证服务未给出身份令牌。", "The provider sent no ID token.")
    claims = verify_id_token(
        provider=provider,
        id_token=id_token,
        nonce=asked["nonce"],
        access_token=tokens.get("access_token"),
        now=now,
    )
    user = account_for(session=session, settings=settings, claims=claims)
    token, ttl_s = auth.issue_token(session=session, settings=settings, user=user)
    return SignOn(token=token, expires_in=ttl_s, user=user, id_token=id_token)


def verify_id_token(
    *, provider: Provider, id_token: str, nonce: str, access_token: str | None, now: datetime
) -> dict[str, Any]:
    """The ID token's claims once its signature (the provider's JWKS), `iss`, `aud`, `exp`,
    `iat` and `nonce` hold; else SignOnRefused."""
    settings = provider.settings
    try:
        try:
            decoded = jwt.decode(id_token, provider.keys(), algorithms=_ALGORITHMS)
        except JoseError:
            decoded = jwt.decode(id_token, provider.keys(refresh=True), algorithms=_ALGORITHMS)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": provider.metadata().issuer},
                "aud": {"essential": True, "value": settings.oidc_client_id},
                "exp": {"essential": True},
            },
            params={
                "nonce": nonce,
                "client_id": settings.oidc_client_id,
                "access_token": access_token,
            },
        )
        claims.validate(now=int(now.timestamp()), leeway=LEEWAY_S)
    except (JoseError, ValueError) as error:
        raise SignOnRefused(
            "身份令牌校验未通过，请重新登录。",
            f"The ID token did not verify ({error}); sign in again.",
        ) from error
    return dict(claims)


def account_for(*, session: Session, settings: Settings, claims: dict[str, Any]) -> UserAccount:
    """The Fleet account whose username is the identity's FLEET_OIDC_USERNAME_CLAIM; with
    FLEET_OIDC_AUTO_CREATE, a new requester in the unit FLEET_OIDC_UNIT_CLAIM names by code.
    The new account's password is random and never told: it signs in through the provider."""
    username = claims.get(settings.oidc_username_claim)
    if not isinstance(username, str) or not username:
        raise SignOnRefused(
            f"身份信息中没有用户名（{settings.oidc_username_claim}），请联系管理员。",
            f"The identity carries no username ({settings.oidc_username_claim});"
            " ask an administrator.",
        )
    user = session.scalar(select(UserAccount).where(UserAccount.username == username))
    if user is not None:
        if not user.is_active:
            raise SignOnRefused(
                f"账号 {username} 已停用，请联系管理员。",
                f"The account {username} is disabled; ask an administrator.",
            )
        return user
    if not settings.oidc_auto_create:
        raise SignOnRefused(
            f"本系统没有与您的身份对应的账号（{username}），请联系管理员开通。",
            f"Fleet has no account for your identity ({username}); ask an administrator to"
            " open one.",
        )
    code = claims.get(settings.oidc_unit_claim)
    unit = (
        session.scalar(select(OrgUnit).where(OrgUnit.code == code))
        if isinstance(code, str)
        else None
    )
    if unit is None:
        raise SignOnRefused(
            f"身份信息中的单位（{settings.oidc_unit_claim}: {code}）在本系统中不存在，"
            "请联系管理员。",
            f"The identity's unit ({settings.oidc_unit_claim}: {code}) is not in Fleet;"
            " ask an administrator.",
        )
    name = claims.get("name")
    try:
        data = UserCreate(
            username=username,
            password=secrets.token_urlsafe(32),
            roles=[Role.REQUESTER],
            unit_id=unit.id,
            full_name=name[:100] if isinstance(name, str) else "",
        )
    except ValidationError as error:
        raise SignOnRefused(
            f"用户名 {username} 不符合本系统的要求，请联系管理员。",
            f"The username {username!r} does not fit Fleet's rules; ask an administrator.",
        ) from error
    return registry.create_user(session=session, actor=None, data=data)


def end_session_url(
    *, provider: Provider, id_token_hint: str | None, post_logout_redirect_uri: str
) -> str | None:
    """Where the browser goes to sign out at the provider too (RP-initiated logout), when the
    provider offers it; None otherwise."""
    endpoint = provider.metadata().end_session_endpoint
    if not endpoint:
        return None
    params = {
        "client_id": provider.settings.oidc_client_id,
        "post_logout_redirect_uri": post_logout_redirect_uri,
    }
    if id_token_hint:
        params["id_token_hint"] = id_token_hint
    return str(httpx.URL(endpoint, params=params))
