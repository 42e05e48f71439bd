"""The API documents itself: every operation's success response carries a schema (a named
model, a typed list or map, or a file's media type), never a bare JSON object."""

from __future__ import annotations

from typing import Any

from fleet.settings import Settings
from web.app import create_app

METHODS = {"get", "post", "put", "patch", "delete"}


def _described(schema: dict[str, Any]) -> bool:
    if "$ref" in schema or "anyOf" in schema or "oneOf" in schema:
        return True
    if schema.get("type") == "array":
        return _described(schema.get("items", {}))
    if schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        return bool(schema.get("properties")) or (isinstance(extra, dict) and bool(extra))
    return schema.get("type") in {"string", "integer", "number", "boolean"}


def undocumented(spec: dict[str, Any]) -> list[str]:
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            for code, response in operation["responses"].items():
                if not code.startswith("2") or code == "204":
                    continue
                content = response.get("content") or {}
                if not content or not all(
                    _described(body.get("schema", {})) for body in content.values()
                ):
                    missing.append(f"{method.upper()} {path} {code}")
    return missing


def test_every_success_response_has_a_schema(settings: Settings):
    spec = create_app(settings).openapi()
    assert len(spec["paths"]) > 50
    assert undocumented(spec) == []


def test_the_check_sees_a_bare_object():
    spec = {
        "paths": {
            "/x": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"type": "object", "additionalProperties": True}
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert undocumented(spec) == ["GET /x 200"]
