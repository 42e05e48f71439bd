"""Sign-on through a real OpenID Connect provider (tests/oidc/provider.mjs), at the HTTP level: the
app in-process on the test database, the provider a Node.js process on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet import oidc
from fleet.api import get_now, get_session
from fleet.db import utcnow
from fleet.models import AuditEntry, AuthToken, OrgUnit, Role, UserAccount
from fleet.redis_client import RedisClient
from fleet.settings import Settings
from tests.conftest import PASSWORD
from tests.oidc.provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OidcProvider,
    follow_at_provider,
    running_provider,
    sign_in_at_provider,
)
from web.app import create_app

CALLBACK = "http://testserver/auth/oidc/callback"
# The provider's people: login name -> the claims its ID tokens carry.
PEOPLE = {
    "u-1001": {"preferred_username": "zhang.san", "name": "张三", "unit": "T-ROOT"},
    "u-2002": {"preferred_username": "li.si", "name": "李四", "unit": "T-CHILD"},
    "u-3003": {"preferred_username": "wang.wu", "unit": "NO-SUCH-UNIT"},
}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with running_provider(
        redirect_uris=[CALLBACK],
        post_logout_redirect_uris=["http://testserver/login"],
        users=PEOPLE,
    ) as running:
        yield running


@pytest.fixture
def app_with(
    settings: Settings, db: Session, redis: RedisClient, provider: OidcProvider
) -> Callable[..., Any]:
    """A client of the app signing on at the test provider, with these settings changed."""

    @contextmanager
    def make(**changes: Any) -> Iterator[TestClient]:
        configured = settings.model_copy(
            update={
                "oidc_issuer": provider.issuer,
                "oidc_client_id": CLIENT_ID,
                "oidc_client_secret": CLIENT_SECRET,
                **changes,
            }
        )
        app = create_app(configured)

        def test_session() -> Iterator[Session]:
            try:
                yield db
                db.commit()
            except BaseException:
                db.rollback()
                raise

        app.dependency_overrides[get_session] = test_session
        with TestClient(app) as client:
            yield client

    return make


def start(client: TestClient) -> str:
    """The provider's authorization URL Fleet sends the browser to (the state cookie set)."""
    answer = client.get("/auth/oidc/login", follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def token_in(page: str) -> str:
    found = re.search(r'data-token="([^"]+)"', page)
    assert found, page
    return found.group(1)


def sign_on(client: TestClient, login: str) -> tuple[str, Any]:
    """A whole sign-on as `login`: the Fleet token the page keeps, and the callback's answer."""
    back = sign_in_at_provider(start(client), login=login, redirect_uri=CALLBACK)
    answer = client.get(callback_path(back))
    assert answer.status_code == 200, answer.text
    return token_in(answer.text), answer


def test_the_login_page_offers_sign_on_only_when_configured(app_with, client: TestClient):
    assert "统一身份认证登录" not in client.get("/login").text
    with app_with() as signing:
        page = signing.get("/login").text
        assert 'href="/auth/oidc/login"' in page
        assert "统一身份认证登录" in page
        assert "break-glass" not in page  # passwords on: the form is as it was
    assert client.get("/auth/oidc/login", follow_redirects=False).status_code == 404


def test_the_authorization_request_is_a_code_flow_with_pkce_and_a_nonce(app_with):
    with app_with() as client:
        url = start(client)
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"]
    assert all(query[name][0] for name in ("code_challenge", "nonce", "state"))
    assert "code_verifier" not in query
    assert client.cookies.get("fleet_oidc_state") == query["state"][0]


def test_an_identity_signs_in_as_the_account_its_username_claim_names(
    app_with, make_user, root_unit: OrgUnit, db: Session
):
    zhang = make_user("zhang.san", root_unit, Role.DISPATCHER)
    with app_with() as client:
        token, answer = sign_on(client, "u-1001")
        assert answer.headers["cache-control"] == "no-store"
        assert token not in str(answer.url)
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["username"] == "zhang.san"
    # Recorded as a password sign-in is: a token row of the account.
    assert db.scalar(select(func.count()).where(AuthToken.user_id == zhang.id)) == 1


def test_an_unknown_identity_is_refused_without_auto_create(app_with, root_unit, db: Session):
    with app_with() as client:
        back = sign_in_at_provider(start(client), login="u-1001", redirect_uri=CALLBACK)
        answer = client.get(callback_path(back))
    assert answer.status_code == 403
    assert "没有与您的身份对应的账号（zhang.san）" in answer.text
    assert "Fleet has no account for your identity (zhang.san)" in answer.text
    assert "data-token" not in answer.text
    assert db.scalar(select(UserAccount).where(UserAccount.username == "zhang.san")) is None


def test_auto_create_makes_a_requester_in_the_claimed_unit(
    app_with, make_unit, root_unit, db: Session
):
    child = make_unit("T-CHILD")
    with app_with(oidc_auto_create=True) as client:
        token, _ = sign_on(client, "u-2002")
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "li.si"
    assert me["roles"] == ["requester"]
    assert me["unit_id"] == child.id
    assert me["full_name"] == "李四"
    # An audited registry change, by the system.
    entry = db.scalar(
        select(AuditEntry).where(AuditEntry.entity == "user", AuditEntry.entity_id == str(me["id"]))
    )
    assert entry is not None
    assert (entry.action, entry.actor) == ("create", "system")


def test_auto_create_refuses_a_unit_fleet_does_not_have(app_with, root_unit, db: Session):
    with app_with(oidc_auto_create=True) as client:
        back = sign_in_at_provider(start(client), login="u-3003", redirect_uri=CALLBACK)
        answer = client.get(callback_path(back))
    assert answer.status_code == 403
    assert "NO-SUCH-UNIT" in answer.text
    assert db.scalar(select(UserAccount).where(UserAccount.username == "wang.wu")) is None


def test_a_state_not_the_browsers_is_refused_and_a_state_is_used_once(
    app_with, make_user, root_unit
):
    make_user("zhang.san", root_unit, Role.DISPATCHER)
    with app_with() as client:
        back = sign_in_at_provider(start(client), login="u-1001", redirect_uri=CALLBACK)
        # Another browser (no state cookie, or another one) brings the same answer: refused.
        with TestClient(client.app) as other:
            assert other.get(callback_path(back)).status_code == 403
            other.cookies.set("fleet_oidc_state", "not-the-state", path="/auth/oidc")
            assert other.get(callback_path(back)).status_code == 403
        assert client.get(callback_path(back)).status_code == 200
        replay = client.get(callback_path(back))
    assert replay.status_code == 403
    assert "已过期或已使用" in replay.text


def test_an_id_token_with_another_nonce_is_refused(
    app_with, make_user, root_unit, redis: RedisClient
):
    make_user("zhang.san", root_unit, Role.DISPATCHER)
    with app_with() as client:
        back = sign_in_at_provider(start(client), login="u-1001", redirect_uri=CALLBACK)
        state = parse_qs(urlsplit(back).query)["state"][0]
        key = f"fleet:oidc:state:{state}"
        kept = json.loads(redis.get(key))
        redis.set(key, json.dumps({**kept, "nonce": "another-nonce"}), ex=60)
        answer = client.get(callback_path(back))
    assert answer.status_code == 403
    assert "Invalid claim: &#39;nonce&#39;" in answer.text, answer.text
    assert "data-token" not in answer.text


def test_an_expired_id_token_is_refused(app_with, make_user, root_unit):
    make_user("zhang.san", root_unit, Role.DISPATCHER)
    with app_with() as client:
        # Fleet's clock a day on: the provider's ID token (valid for an hour) has expired.
        client.app.dependency_overrides[get_now] = lambda: utcnow() + timedelta(days=1)
        back = sign_in_at_provider(start(client), login="u-1001", redirect_uri=CALLBACK)
        answer = client.get(callback_path(back))
    assert answer.status_code == 403
    assert "expired_token" in answer.text, answer.text


def test_an_id_token_for_another_client_is_refused(
    app_with, make_user, root_unit, provider: OidcProvider, settings: Settings
):
    make_user("zhang.san", root_unit, Role.DISPATCHER)
    with app_with() as client:
        _, answer = sign_on(client, "u-1001")
        id_token = answer.cookies["fleet_oidc_id_token"]
    other = oidc.Provider(
        settings.model_copy(
            update={"oidc_issuer": provider.issuer, "oidc_client_id": "another-client"}
        )
    )
    with pytest.raises(oidc.SignOnRefused, match="aud"):
        oidc.verify_id_token(
            provider=other, id_token=id_token, nonce="n", access_token=None, now=utcnow()
        )


def test_an_id_token_whose_payload_was_changed_fails_its_signature(
    app_with, make_user, root_unit, provider: OidcProvider, settings: Settings
):
    make_user("zhang.san", root_unit, Role.DISPATCHER)
    with app_with() as client:
        _, answer = sign_on(client, "u-1001")
        id_token = answer.cookies["fleet_oidc_id_token"]
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    nonce = claims["nonce"]
    forged_claims = {**claims, "preferred_username": "root-admin"}
    forged = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    same = oidc.Provider(
        settings.model_copy(update={"oidc_issuer": provider.issuer, "oidc_client_id": CLIENT_ID})
    )
    # The untouched token verifies; the forged one does not.
    assert (
        oidc.verify_id_token(
            provider=same, id_token=id_token, nonce=nonce, access_token=None, now=utcnow()
        )["preferred_username"]
        == "zhang.san"
    )
    with pytest.raises(oidc.SignOnRefused, match="did not verify"):
        oidc.verify_id_token(
            provider=same,
            id_token=f"{header}.{forged}.{signature}",
            nonce=nonce,
            access_token=None,
            now=utcnow(),
        )


def test_passwords_off_refuse_a_password_but_let_a_break_glass_root_admin_in(
    app_with, make_user, make_unit, root_unit
):
    make_user("root-admin", root_unit, Role.ADMIN)
    make_user("ops", root_unit, Role.ADMIN)
    make_user("unit-admin", make_unit("T-CHILD"), Role.ADMIN)
    with app_with(local_login=False, break_glass_users=["root-admin", "unit-admin"]) as client:

        def password(username: str) -> Any:
            form = {"username": username, "password": PASSWORD}
            return client.post("/api/v1/auth/token", data=form)

        # The login page folds the password form away for them.
        page = client.get("/login").text
        assert '<details class="break-glass">' in page
        assert page.index("break-glass") < page.index('id="login-form"')
        refused = password("ops")
        assert refused.status_code == 403
        assert "passwords are turned off" in refused.json()["detail"]
        # Named, but not an administrator of a root unit: refused all the same.
        assert password("unit-admin").status_code == 403
        assert password("root-admin").status_code == 200
        # A break-glass user still needs the right password.
        wrong = client.post(
            "/api/v1/auth/token", data={"username": "root-admin", "password": "wrong-pass"}
        )
        assert wrong.status_code == 401


def test_break_glass_users_read_a_comma_list_or_a_json_list():
    assert Settings(break_glass_users="root, ops").break_glass_users == ["root", "ops"]  # type: ignore[arg-type]
    assert Settings(break_glass_users='["root"]').break_glass_users == ["root"]  # type: ignore[arg-type]


def test_sign_on_settings_are_checked_at_start_up():
    with pytest.raises(ValidationError, match="FLEET_OIDC_CLIENT_ID"):
        Settings(oidc_issuer="https://idp.example.gov.cn")
    with pytest.raises(ValidationError, match="https"):
        Settings(
            environment="production",
            secret_key="a-real-secret-of-some-length",
            oidc_issuer="http://idp.example.gov.cn",
            oidc_client_id="fleet",
        )
    with pytest.raises(ValidationError, match="openid"):
        Settings(oidc_scopes="profile")


def test_logout_revokes_the_token_and_ends_the_providers_session(
    app_with, make_user, root_unit, provider: OidcProvider
):
    make_user("zhang.san", root_unit, Role.DISPATCHER)
    with app_with() as client:
        token, answer = sign_on(client, "u-1001")
        headers = {"Authorization": f"Bearer {token}"}
        id_token = answer.cookies["fleet_oidc_id_token"]
        assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
        assert client.get("/api/v1/me", headers=headers).status_code == 401
        out = client.get("/auth/oidc/logout", follow_redirects=False)
    assert out.status_code == 303
    end_session = provider.discovery()["end_session_endpoint"]
    location = out.headers["location"]
    assert location.startswith(f"{end_session}?")
    query = parse_qs(urlsplit(location).query)
    assert query["id_token_hint"] == [id_token]
    assert query["client_id"] == [CLIENT_ID]
    assert query["post_logout_redirect_uri"] == ["http://testserver/login"]
    # The provider takes it: its page asking to confirm the sign-out, not an error.
    at_provider = follow_at_provider(location)
    assert at_provider.status_code == 200
    assert "logout" in at_provider.text.lower()
