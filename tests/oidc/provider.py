"""A real OpenID Connect provider for the sign-on tests: tests/oidc/provider.mjs (npm's
oidc-provider, OpenID-certified) under the machine's Node.js, on a free port of 127.0.0.1, and a
person's side of its development login and consent pages driven over HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx2 as httpx

from tests.support import _wait_started, free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "provider.mjs"
LOGS = ROOT / "var" / "screenshots"
CLIENT_ID = "fleet"
CLIENT_SECRET = "fleet-test-client-secret"  # the test provider's own client


@dataclass(frozen=True)
class OidcProvider:
    issuer: str

    def discovery(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        answer.raise_for_status()
        return dict(answer.json())


@contextmanager
def running_provider(
    *, redirect_uris: list[str], post_logout_redirect_uris: list[str], users: dict[str, Any]
) -> Iterator[OidcProvider]:
    """The provider with one client (CLIENT_ID, CLIENT_SECRET) and `users` (login name -> claims),
    until the block ends."""
    node = shutil.which("node")
    assert node, "Node.js is missing: make bootstrap installs it"
    assert (ROOT / "node_modules" / "oidc-provider").is_dir(), "make bootstrap runs npm ci"
    port = free_port()
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": redirect_uris,
        "post_logout_redirect_uris": post_logout_redirect_uris,
    }
    env = {
        **os.environ,
        "OIDC_TEST_PORT": str(port),
        "OIDC_TEST_CLIENTS": json.dumps([client]),
        "OIDC_TEST_USERS": json.dumps(users),
    }
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / "oidc-provider.log"
    issuer = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        child = subprocess.Popen([node, str(SCRIPT)], env=env, stdout=log, stderr=log, cwd=ROOT)
        try:

            def discovered() -> bool:
                try:
                    url = f"{issuer}/.well-known/openid-configuration"
                    return httpx.get(url, timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            _wait_started(discovered, f"oidc-provider at {issuer}", [child], log_path, 60)
            yield OidcProvider(issuer)
        finally:
            child.terminate()
            child.wait(timeout=20)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def sign_in_at_provider(authorize_url: str, *, login: str, redirect_uri: str) -> str:
    """What a person does at the provider: follows `authorize_url`, signs in as `login` on its
    login page and continues on its consent page. Returns where the provider sends the browser
    back to (`redirect_uri` with the code and state)."""
    with httpx.Client(timeout=10) as browser:
        url = authorize_url
        for _ in range(12):
            if url.startswith(redirect_uri):
                return url
            answer = browser.get(url)
            if answer.is_redirect:
                url = urljoin(url, answer.headers["location"])
                continue
            assert answer.status_code == 200, answer.text
            form = _FORM.search(answer.text)
            assert form, f"no form on the provider's page: {answer.text[:500]}"
            action, inner = urljoin(url, unescape(form.group(1))), form.group(2)
            fields = dict(_HIDDEN.findall(inner))
            if fields.get("prompt") == "login":
                fields.update(login=login, password="any-password")
            posted = browser.post(action, data=fields)
            assert posted.is_redirect, posted.text
            url = urljoin(action, posted.headers["location"])
        raise AssertionError(f"the provider never sent the browser back to {redirect_uri}")


def follow_at_provider(url: str) -> httpx.Response:
    """One plain GET at the provider (its logout page)."""
    return httpx.get(url, timeout=10)
