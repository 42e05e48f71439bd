"""A bound on every request body, checked before the body is read: 413 naming the limit.

The declared `Content-Length` is checked first, so a request announcing 3 GB is answered at once
without a byte of its body read; a body without one (chunked) is counted as it streams in, and
refused the moment it passes the limit. Some routes (statement uploads) take a larger limit.

Starlette's own `max_body_size` answers a plain "Content Too Large" that names neither the limit
nor the setting that raises it, and only once the app reads the body; this answers before the app
runs, in the API's error shape.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive` while the app reads the body: an HTTPException, so FastAPI passes it
    on (any other error while reading a body becomes its 400) and answers it as JSON."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, _too_large(limit, setting))


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        setting: str,
        larger: dict[tuple[str, str], tuple[int, str]] | None = None,
    ) -> None:
        """`larger` maps (method, path) to its own (limit, setting name)."""
        self.app = app
        self.max_bytes = max_bytes
        self.setting = setting
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.larger.get(
            (scope["method"], scope["path"]), (self.max_bytes, self.setting)
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "the Content-Length header is not a number of bytes")
                return
            if int(declared) > limit:
                await _answer(send, 413, _too_large(limit, setting))
                return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, setting)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await _answer(send, 413, _too_large(limit, setting))


def _too_large(limit: int, setting: str) -> str:
    return f"the request body is larger than {limit} bytes, the limit ({setting})"


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
