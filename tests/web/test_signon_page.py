"""Sign-on in Chromium through a real identity provider (tests/oidc/provider.mjs): the login
page's 统一身份认证登录, the provider's login and consent pages, the desk signed in as the mapped
account; and signing out at both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from tests.oidc.provider import CLIENT_ID, CLIENT_SECRET, running_provider
from tests.support import free_port
from tests.web.conftest import SCREENSHOTS, Stack, watched

# The provider's person u-7 is the demo's dispatcher (张调度) in Fleet.
PEOPLE = {
    "u-7": {"preferred_username": "dispatcher", "name": "张调度"},
    "u-8": {"preferred_username": "nobody.here"},  # no account in Fleet
}


@pytest.fixture(scope="module")
def stack_env() -> Iterator[dict[str, str]]:
    port = free_port()
    fleet = f"http://127.0.0.1:{port}"
    with running_provider(
        redirect_uris=[f"{fleet}/auth/oidc/callback"],
        post_logout_redirect_uris=[f"{fleet}/login"],
        users=PEOPLE,
    ) as provider:
        yield {
            "FLEET_HTTP_PORT": str(port),
            "FLEET_OIDC_ISSUER": provider.issuer,
            "FLEET_OIDC_CLIENT_ID": CLIENT_ID,
            "FLEET_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        }


def sign_in_at_provider(page: Any, issuer: str, login: str) -> None:
    """The provider's own login page, then its consent page."""
    page.wait_for_url(f"{issuer}/interaction/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{issuer}/interaction/**")
    page.click("button:has-text('Continue')")


def test_sign_on_lands_on_the_desk_and_sign_out_ends_both_sessions(
    browser: Any, stack: Stack, stack_env: dict[str, str]
) -> None:
    issuer = stack_env["FLEET_OIDC_ISSUER"]
    with watched(browser, stack, "signon") as context:
        page = context.new_page()
        page.goto(f"{stack.url}/login")
        page.screenshot(path=str(SCREENSHOTS / "signon-login.png"))
        page.click("text=统一身份认证登录")
        sign_in_at_provider(page, issuer, "u-7")
        page.wait_for_url(f"{stack.url}/desk")
        page.wait_for_function("document.getElementById('who').textContent === '张调度'")
        token = page.evaluate("localStorage.getItem('fleet.token')")
        me = httpx.get(
            f"{stack.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert me.json()["username"] == "dispatcher"
        page.screenshot(path=str(SCREENSHOTS / "signon-desk.png"))

        # 退出: the token is revoked, and the provider asks to end its session too. The desk's map
        # has loaded first: leaving it mid-load makes MapLibre log the aborted requests as errors.
        page.wait_for_function("window.fleetDesk && window.fleetDesk.ready", timeout=60_000)
        page.click("#logout")
        page.wait_for_url(f"{issuer}/session/end**")
        page.click("button[autofocus]")  # the provider's "Yes, sign me out"
        page.wait_for_url(f"{stack.url}/login")
        assert page.evaluate("localStorage.getItem('fleet.token')") is None
        gone = httpx.get(
            f"{stack.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert gone.status_code == 401


def test_an_identity_without_an_account_sees_why_in_its_language(
    browser: Any, stack: Stack, stack_env: dict[str, str]
) -> None:
    # The refusal page answers 403, which Chromium reports on the console.
    with watched(browser, stack, "signon-refused", allowed=r"status of 403") as context:
        page = context.new_page()
        page.goto(f"{stack.url}/login")
        page.click("#signon")
        sign_in_at_provider(page, stack_env["FLEET_OIDC_ISSUER"], "u-8")
        page.wait_for_selector("#signon-refused[data-shown=zh]")
        zh = page.locator("[data-lang=zh]")
        en = page.locator("[data-lang=en]")
        assert zh.is_visible()
        assert "没有与您的身份对应的账号（nobody.here）" in zh.inner_text()
        assert not en.is_visible()
        page.click("#lang")
        page.wait_for_selector("#signon-refused[data-shown=en]")
        assert en.is_visible()
        assert "Fleet has no account for your identity (nobody.here)" in en.inner_text()
        assert not zh.is_visible()
        assert page.evaluate("localStorage.getItem('fleet.token')") is None
        page.screenshot(path=str(SCREENSHOTS / "signon-refused.png"))
