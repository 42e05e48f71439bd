"""Loaded by the schemathesis CLI (SCHEMATHESIS_HOOKS): each request is made as the account named
in FLEET_SCHEMATHESIS_USER, with a token got by logging in, and got again after a 401 (a generated
`POST /auth/logout` or password change revokes the one in use)."""

from __future__ import annotations

import os
from typing import Any

import requests
import schemathesis

from fleet.demo import DEMO_PASSWORD


@schemathesis.auth(refresh_interval=3600)
class DemoLogin:
    def get(self, case: Any, ctx: Any) -> str:
        answer = requests.post(
            f"{os.environ['FLEET_SCHEMATHESIS_URL']}/api/v1/auth/token",
            data={"username": os.environ["FLEET_SCHEMATHESIS_USER"], "password": DEMO_PASSWORD},
            timeout=30,
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    """The run's own accounts keep their password and stay active: a generated PATCH or DELETE of
    one of them (ids start at 1, where the coverage phase looks) is sent to an id that no user has.
    Every other user may be changed."""
    keep = {int(i) for i in os.environ["FLEET_SCHEMATHESIS_KEEP_USERS"].split(",")}
    user_id = str((case.path_parameters or {}).get("user_id", "")).strip()
    if case.method.upper() in ("PATCH", "DELETE") and user_id.isdigit() and int(user_id) in keep:
        case.path_parameters = {**case.path_parameters, "user_id": 2**31 - 1}
