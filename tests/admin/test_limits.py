"""The admin API refuses bad input with a JSON 4xx, before doing any work."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.testclient import TestClient
from starlette.types import Message
from typer.testing import CliRunner

from sync.admin.app import create_app
from sync.admin.limits import MAX_BODY_BYTES, json_depth
from sync.cli.app import app as cli_app
from sync.engine.context import Engine
from sync.runtime.backend import AdminBackend
from sync.store.db import upgrade
from tests.admin.test_app import ROOT, TOKEN, engine  # noqa: F401  (the fixture)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(engine: Engine) -> TestClient:  # noqa: F811
    backend = AdminBackend(engine, lambda s, f: "run_x", lambda s: None)
    return TestClient(create_app(backend, token=TOKEN), raise_server_exceptions=False)


def _refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert words in response.json()["error"]


def test_a_body_over_the_limit_is_413_by_its_declared_length(client: TestClient) -> None:
    """A body larger than 1 MiB is refused 413 with a JSON message naming the limit; one just
    under it is read (and judged on its content: an unknown system is a 4xx, not a 413)."""
    big = b'{"system": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    response = client.post("/resync", content=big, headers=AUTH)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "larger than" in response.json()["error"]
    small = b'{"system": "' + b"x" * (MAX_BODY_BYTES - 100) + b'"}'
    under = client.post("/resync", content=small, headers=AUTH)
    assert under.status_code != 413 and 400 <= under.status_code < 500, under.text


def test_a_streamed_body_is_refused_without_being_read_whole(engine: Engine) -> None:  # noqa: F811
    """A chunked body with no Content-Length is cut off at the first chunk past the limit:
    the API answers 413 having pulled a little over 1 MiB of a 50 MiB upload."""
    app = create_app(AdminBackend(engine, lambda s, f: "run_x", lambda s: None), token=TOKEN)
    chunk, total = b" " * 65536, 50 * 16
    pulled: list[int] = []
    answer: list[Message] = []

    async def receive() -> Message:
        pulled.append(1)
        return {"type": "http.request", "body": chunk, "more_body": len(pulled) < total}

    async def send(message: Message) -> None:
        answer.append(message)

    headers = [(b"authorization", AUTH["Authorization"].encode())]
    scope = {"type": "http", "method": "POST", "path": "/resync", "headers": headers}
    scope |= {"http_version": "1.1", "scheme": "http", "query_string": b"", "root_path": ""}
    scope |= {"server": ("127.0.0.1", 8700), "client": ("127.0.0.1", 5000)}
    anyio.run(app, scope, receive, send)
    assert answer[0]["status"] == 413
    assert b"larger than" in answer[1]["body"]
    assert len(pulled) * len(chunk) < 2 * MAX_BODY_BYTES


def test_deeply_nested_json_is_400(client: TestClient) -> None:
    """A 100,000-deep JSON array answers 400 naming the depth limit (not a 500)."""
    body = b"[" * 100_000 + b"]" * 100_000
    _refused(client.post("/resync", content=body, headers=AUTH), 400, "deeper than")
    assert json_depth(b'{"a": "[[[[", "b": [1, {"c": 2}]}') == 3


def test_huge_ids_are_404_and_bad_parameters_400(client: TestClient) -> None:
    """Ids beyond 64 bits are not there (404), a non-numeric ?runs= or unknown ?status= is a
    400 naming the parameter, an unknown route is a JSON 404: never a 500 or plain text."""
    huge = "99999999999999999999999"
    _refused(client.post(f"/deadletters/{huge}/replay", headers=AUTH), 404, "no dead letter")
    resolve = client.post(f"/conflicts/{huge}/resolve", json={"take": "ours"}, headers=AUTH)
    _refused(resolve, 404, "no conflict")
    _refused(client.post("/deadletters/9999/replay", headers=AUTH), 404, "no dead letter 9999")
    _refused(client.get("/status?runs=abc", headers=AUTH), 400, "?runs must be a whole number")
    _refused(client.get("/status?runs=0", headers=AUTH), 400, "between 1 and 1000")
    _refused(client.get("/deadletters?status=x", headers=AUTH), 400, "?status must be one of")
    _refused(client.get("/nowhere", headers=AUTH), 404, "no route /nowhere")
    _refused(client.get("/resync", headers=AUTH), 405, "GET is not allowed")
    _refused(client.post("/resync", content=b"{oops", headers=AUTH), 400, "not JSON")
    assert client.get("/status?runs=3", headers=AUTH).status_code == 200


def test_a_weak_token_is_refused(engine: Engine) -> None:  # noqa: F811
    """A token shorter than 16 characters never builds the app, and `crmsync admin` exits 1
    with one line saying why (and not the token)."""
    backend = AdminBackend(engine, lambda s, f: "", lambda s: None)
    with pytest.raises(ValueError, match="at least 16"):
        create_app(backend, token="abc")
    env = {"CRMSYNC_ADMIN_TOKEN": "s3cr", "CRMSYNC_CONFIG": str(ROOT / "config.yaml")}
    result = CliRunner().invoke(cli_app, ["admin"], env=env)
    assert result.exit_code != 0
    assert "at least 16" in result.output and "s3cr" not in result.output
    assert "Traceback" not in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_sighup_does_not_stop_crmsync_admin(tmp_path: Path) -> None:
    """`systemctl reload` sends SIGHUP: `crmsync admin` logs it and keeps serving; SIGTERM
    still stops it cleanly."""
    port = _free_port()
    env = {
        **os.environ,
        "CRMSYNC_ADMIN_TOKEN": TOKEN,
        "CRMSYNC_CONFIG": str(ROOT / "config.yaml"),
        "CRMSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'admin.db'}",
        "CRMSYNC_LOG_FORMAT": "json",
    }
    env.pop("CRMSYNC_BROKER_URL", None)
    upgrade(env["CRMSYNC_DATABASE_URL"])
    command = [sys.executable, "-m", "sync", "admin", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/health"
        _wait_until_up(url, proc)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None, "SIGHUP killed crmsync admin"
        assert httpx.get(url).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM
        assert proc.stdout is not None
        assert b"admin.sighup" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("crmsync admin did not come up")
