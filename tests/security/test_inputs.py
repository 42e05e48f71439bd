"""Bounded input and no input that makes the API fail (issue 16, items 4 and 9), against the
running API on the demo database: each attack, and the refusal asserted."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx2 as httpx
import pytest
from openpyxl import Workbook
from sqlalchemy import text

from fleet.demo import DEMO_PASSWORD
from tests.web.conftest import Stack


@pytest.fixture(scope="module")
def tokens(stack: Stack) -> dict[str, str]:
    got = {}
    for username in ("admin", "requester", "dispatcher"):
        answer = httpx.post(
            f"{stack.url}/api/v1/auth/token",
            data={"username": username, "password": DEMO_PASSWORD},
        )
        answer.raise_for_status()
        got[username] = answer.json()["access_token"]
    return got


@pytest.fixture
def api(stack: Stack, tokens: dict[str, str]) -> Iterator[dict[str, httpx.Client]]:
    clients = {
        name: httpx.Client(
            base_url=f"{stack.url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        for name, token in tokens.items()
    }
    yield clients
    for client in clients.values():
        client.close()


# ---- bounded bodies --------------------------------------------------------------------------


def _raw_exchange(stack: Stack, head: bytes, body: bytes, *, timeout_s: float) -> bytes:
    url = urlparse(stack.url)
    with socket.create_connection((url.hostname, url.port), timeout=timeout_s) as conn:
        conn.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_a_declared_3_gb_body_is_refused_at_once_from_its_content_length(
    stack: Stack, tokens: dict[str, str]
) -> None:
    head = (
        "POST /api/v1/drivers HTTP/1.1\r\n"
        f"Host: {urlparse(stack.url).netloc}\r\n"
        f"Authorization: Bearer {tokens['admin']}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {3 * 1024**3}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer = _raw_exchange(stack, head, b'{"name": "', timeout_s=5)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 3


def test_a_chunked_body_is_refused_when_it_passes_the_limit(
    stack: Stack, tokens: dict[str, str]
) -> None:
    limit = stack.settings.max_body_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"note": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    answer = httpx.post(
        f"{stack.url}/api/v1/fences",
        content=chunks(),
        headers={"Authorization": f"Bearer {tokens['admin']}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 413
    assert str(limit) in answer.json()["detail"]
    assert "FLEET_MAX_BODY_BYTES" in answer.json()["detail"]


def test_a_statement_upload_over_its_limit_is_refused_as_it_streams(
    stack: Stack, tokens: dict[str, str]
) -> None:
    limit = stack.settings.max_upload_bytes

    def chunks() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.csv"\r\n\r\n'
        for _ in range(limit // (1024 * 1024) + 2):
            yield b"a,b\n" * (256 * 1024)

    answer = httpx.post(
        f"{stack.url}/api/v1/costs/statements",
        content=chunks(),
        headers={
            "Authorization": f"Bearer {tokens['admin']}",
            "Content-Type": "multipart/form-data; boundary=b",
        },
        timeout=60,
    )
    assert answer.status_code == 413
    assert "FLEET_MAX_UPLOAD_BYTES" in answer.json()["detail"]


def test_an_xlsx_statement_wider_than_its_bound_is_refused_before_its_cells_are_read(
    api: dict[str, httpx.Client],
) -> None:
    # 2,000 rows with one cell at column XFD: a few KB packed, 263 MB once read at full width.
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in range(1, 2_001):
        sheet.cell(row=row, column=16_384, value=1)
    out = io.BytesIO()
    workbook.save(out)
    started = time.monotonic()
    answer = api["dispatcher"].post(
        "/costs/statements",
        data={"issuer": "sinopec"},
        files={"file": ("wide.xlsx", out.getvalue())},
    )
    assert answer.status_code == 422, answer.text
    assert "16384 columns" in answer.text
    assert time.monotonic() - started < 5


def test_a_fence_import_with_too_many_features_is_refused_before_any_is_read(
    api: dict[str, httpx.Client],
) -> None:
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [120.1, 30.2]},
        "properties": {"name": "x", "kind": "depot", "radius_m": 50},
    }
    answer = api["admin"].post(
        "/fences/import", json={"type": "FeatureCollection", "features": [feature] * 1_001}
    )
    assert answer.status_code == 422
    assert "at most 1000 features" in answer.text


def test_a_fence_import_with_too_many_vertices_is_refused_before_any_is_read(
    api: dict[str, httpx.Client],
) -> None:
    ring = [[120.0 + i * 1e-6, 30.0] for i in range(60_000)]
    feature = {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": ring},
        "properties": {"name": "x", "kind": "route", "width_m": 50},
    }
    answer = api["admin"].post(
        "/fences/import", json={"type": "FeatureCollection", "features": [feature] * 4}
    )
    assert answer.status_code == 422
    assert "at most 200000 vertices" in answer.text


# ---- no input makes the API fail ------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "method", "path"),
    [
        ("admin", "GET", "/vehicles/2147483648"),
        ("admin", "GET", "/users?offset=9223372036854775808"),
        ("admin", "GET", "/costs?vehicle_id=2147483648"),
        ("requester", "POST", "/orders/2147483648/finish"),
    ],
)
def test_out_of_range_integers_are_refused_as_input(
    api: dict[str, httpx.Client], who: str, method: str, path: str
) -> None:
    answer = api[who].request(method, path)
    assert answer.status_code == 422, answer.text


def test_an_out_of_range_id_in_a_body_is_refused(api: dict[str, httpx.Client]) -> None:
    answer = api["admin"].post(
        "/drivers", json={"name": "x", "licence_class": "C1", "unit_id": 2**31}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "unit_id"]


@pytest.mark.parametrize(
    ("table", "body", "field"),
    [
        ("driver", {"active": None}, "active"),
        ("device", {"enabled": None}, "enabled"),
        ("device", {"identifier": None}, "identifier"),
        ("org_unit", {"name": None}, "name"),
        ("user_account", {"is_active": None}, "is_active"),
        ("driver", {"active": 0}, "active"),
    ],
)
def test_a_patch_cannot_null_a_required_field_or_pass_a_number_for_a_flag(
    stack: Stack, api: dict[str, httpx.Client], table: str, body: dict[str, object], field: str
) -> None:
    path = {"driver": "drivers", "device": "devices", "org_unit": "units", "user_account": "users"}
    row = stack.value(f"SELECT max(id) FROM {table}")
    answer = api["admin"].patch(f"/{path[table]}/{row}", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", field]


def test_deleting_a_driver_with_assignments_is_a_conflict_naming_them(
    stack: Stack, api: dict[str, httpx.Client]
) -> None:
    driver = stack.value("SELECT driver_id FROM assignment LIMIT 1")
    answer = api["admin"].delete(f"/drivers/{driver}")
    assert answer.status_code == 409, answer.text
    assert "assignment" in answer.json()["detail"]


def test_deleting_a_vehicle_with_alerts_is_a_conflict_naming_them(
    stack: Stack, api: dict[str, httpx.Client]
) -> None:
    unit = stack.value("SELECT min(id) FROM org_unit")
    vehicle = api["admin"].post(
        "/vehicles",
        json={
            "plate": "浙A·S1616",
            "category": "special",
            "body_class": "sedan",
            "seats": 4,
            "energy": "petrol",
            "unit_id": unit,
        },
    )
    assert vehicle.status_code == 201, vehicle.text
    with stack.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO alert (kind, key, severity, vehicle_id, unit_id, started_at,"
                " last_at) VALUES ('overspeed', 'security-test', 'medium', :id, :unit, now(),"
                " now())"
            ),
            {"id": vehicle.json()["id"], "unit": unit},
        )
    answer = api["admin"].delete(f"/vehicles/{vehicle.json()['id']}")
    assert answer.status_code == 409, answer.text
    assert "alert" in answer.json()["detail"]


def test_nul_characters_in_text_are_refused(stack: Stack, api: dict[str, httpx.Client]) -> None:
    unit = stack.value("SELECT min(id) FROM org_unit")
    answer = api["admin"].post(
        "/drivers", json={"name": "x", "licence_class": "C1", "unit_id": unit, "phone": "1\u0000"}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "phone"]
    assert api["admin"].get("/audit", params={"entity": "x\u0000"}).status_code == 422


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/costs?until=0.5", None),
        ("GET", "/alerts?start=12", None),
        ("PUT", "/calendar/0", {"working": True}),
    ],
)
def test_numbers_are_not_taken_for_times(
    api: dict[str, httpx.Client], method: str, path: str, body: object
) -> None:
    answer = api["admin"].request(method, path, json=body)
    assert answer.status_code == 422, answer.text


def test_options_answers_every_method_of_the_path(api: dict[str, httpx.Client]) -> None:
    answer = api["admin"].options("/units/1")
    assert answer.status_code == 405
    assert {m.strip() for m in answer.headers["allow"].split(",")} >= {"GET", "PATCH", "DELETE"}


def test_fences_import_is_not_taken_for_a_fence_id(api: dict[str, httpx.Client]) -> None:
    answer = api["admin"].get("/fences/import")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


def test_a_root_administrator_sees_the_root_unit_they_add(api: dict[str, httpx.Client]) -> None:
    created = api["admin"].post("/units", json={"name": "新根单位", "code": "SEC-ROOT"})
    assert created.status_code == 201, created.text
    assert api["admin"].get(f"/units/{created.json()['id']}").status_code == 200


def test_only_an_administrator_of_a_root_unit_adds_a_root_unit(
    stack: Stack, api: dict[str, httpx.Client]
) -> None:
    sub_unit = stack.value("SELECT id FROM org_unit WHERE parent_id IS NOT NULL LIMIT 1")
    made = api["admin"].post(
        "/users",
        json={
            "username": "sub-admin",
            "password": DEMO_PASSWORD,
            "roles": ["admin"],
            "unit_id": sub_unit,
        },
    )
    assert made.status_code == 201, made.text
    token = httpx.post(
        f"{stack.url}/api/v1/auth/token",
        data={"username": "sub-admin", "password": DEMO_PASSWORD},
    ).json()["access_token"]
    answer = httpx.post(
        f"{stack.url}/api/v1/units",
        json={"name": "另一个根", "code": "SEC-ROOT-2"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 403, answer.text


def test_every_operation_documents_the_errors_it_can_answer(stack: Stack) -> None:
    schema = httpx.get(f"{stack.url}/openapi.json").json()
    missing = {
        f"{method.upper()} {path}": sorted(
            {"400", "401", "403", "404", "409", "413", "422", "429"} - set(operation["responses"])
        )
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    assert not {name: codes for name, codes in missing.items() if codes}
