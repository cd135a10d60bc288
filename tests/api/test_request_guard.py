"""The request guard on a real uvicorn: a key is checked, and a body capped, before the body is
read (api.middleware.RequestGuard; docs/api.md, "Under load and faults").

Each request is written by hand on a socket, so the test controls how much of the body is on
the wire: the answer must come while only the first 64 KB of a 100 MB body have been sent (a
server that read the body first would wait for the rest), the process's peak memory
(``VmHWM`` in /proc/<pid>/status, reset before each test) must grow by less than 20 MB while the
whole body streams in, and ``/health/live`` must answer all along. Nothing here measures speed:
the socket timeout only bounds how long a broken server is waited for.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.live_server import migrate_with_keys, uvicorn_process

MB = 1024 * 1024
BIG = 100 * MB
FIRST = 64 * 1024
"""Bytes of the body sent before the answer is awaited."""
MAX_GROWTH = 20 * MB
WAIT = 60.0
"""Seconds a broken server (one that waits for the whole body) is waited for: the bound of a
failure, not a speed."""
JSON_ROUTE = "/api/v1/experiments"
UPLOAD_ROUTE = "/api/v1/experiments/1/data"
BOUNDARY = "guard-test-boundary"


@dataclass(frozen=True)
class Live:
    base: str
    server: subprocess.Popen[bytes]
    write_key: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    url = f"sqlite:///{tmp_path_factory.mktemp('guard') / 'guard.db'}"
    _read, write = migrate_with_keys(url)
    with uvicorn_process(url) as (base, server):
        yield Live(base, server, write)


def _status(pid: int, field_name: str) -> int:
    """A memory figure of /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field_name} missing from /proc/{pid}/status")


def _reset_peak(pid: int) -> int:
    """Reset the process's peak resident size (VmHWM) to its current size; return that."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status(pid, "VmRSS")


@dataclass
class Probes:
    statuses: list[int | str] = field(default_factory=list)


@contextmanager
def probing(base: str) -> Iterator[Probes]:
    """``GET /health/live`` over and over, on a connection of its own, while the block runs."""
    seen = Probes()
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=base, timeout=WAIT) as client:
            while True:
                try:
                    seen.statuses.append(client.get("/health/live").status_code)
                except httpx.HTTPError as exc:
                    seen.statuses.append(type(exc).__name__)
                if stop.wait(0.05):
                    return

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(WAIT)


def _connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=WAIT)


def _head(path: str, *, key: str | None, chunked: bool, upload: bool, length: int) -> bytes:
    host = "127.0.0.1"
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines.append(f"Content-Type: multipart/form-data; boundary={BOUNDARY}" if upload
                 else "Content-Type: application/json")
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    if key is not None:
        lines.append(f"X-API-Key: {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _body_start(upload: bool) -> bytes:
    if upload:
        return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
                "filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\nvariant,date\r\n").encode()
    return b'{"name": "'


def _chunk(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """Read one response off the socket: status, headers, JSON body."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = json.loads(response.read())
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def _send_on(sock: socket.socket, *, sent: int, total: int, chunked: bool,
             finish: bool = False) -> int:
    """Send the body on up to `total` bytes, in 1 MB pieces (ending a chunked body with
    `finish`); the bytes sent so far."""
    block = b"x" * MB
    try:
        while sent < total:
            part = block[: min(len(block), total - sent)]
            sock.sendall(_chunk(part, chunked))
            sent += len(part)
        if chunked and finish:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # a server may close the connection after its answer: nothing more to send
    return sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("upload", [False, True], ids=["json", "upload"])
def test_guard_answers_a_keyless_100_mb_body_at_once_without_keeping_it(
    live: Live, upload: bool, chunked: bool
) -> None:
    """No key: 401 problem+json while 64 KB of the 100 MB are sent; the rest streams in and is
    dropped (memory flat), and /health/live answers throughout."""
    pid = live.server.pid
    before = _reset_peak(pid)
    path = UPLOAD_ROUTE if upload else JSON_ROUTE
    start = _body_start(upload)
    first = start + b"x" * (FIRST - len(start))
    with probing(live.base) as probes, _connect(live.base) as sock:
        sock.sendall(_head(path, key=None, chunked=chunked, upload=upload, length=BIG))
        sock.sendall(_chunk(first, chunked))
        status, headers, problem = _answer(sock)  # only 64 KB of 100 MB are on the wire
        assert status == 401, problem
        assert headers["content-type"] == "application/problem+json"
        assert "X-API-Key" in str(problem["detail"])
        # The rest of the body streams in; the server reads and drops it.
        sent = _send_on(sock, sent=FIRST, total=BIG // 2, chunked=chunked)
        mid = httpx.get(f"{live.base}/health/live", timeout=WAIT)
        assert mid.status_code == 200  # half the body sent: the process answers
        _send_on(sock, sent=sent, total=BIG, chunked=chunked, finish=True)
    growth = _status(pid, "VmHWM") - before
    assert growth < MAX_GROWTH, f"peak memory grew by {growth / MB:.1f} MB"
    assert probes.statuses and set(probes.statuses) == {200}, probes.statuses


def test_guard_refuses_a_declared_length_over_the_cap_before_the_body(live: Live) -> None:
    """A key, but a Content-Length over the JSON cap (1 MB): 413 problem+json naming the
    setting, while only 64 KB of the 100 MB are sent."""
    pid = live.server.pid
    before = _reset_peak(pid)
    with _connect(live.base) as sock:
        sock.sendall(_head(JSON_ROUTE, key=live.write_key, chunked=False, upload=False,
                           length=BIG))
        sock.sendall(_body_start(False) + b"x" * FIRST)
        status, headers, problem = _answer(sock)
    assert status == 413, problem
    assert headers["content-type"] == "application/problem+json"
    assert "API_MAX_JSON_KB" in str(problem["detail"])
    assert _status(pid, "VmHWM") - before < MAX_GROWTH


def test_guard_json_cap_leaves_uploads_their_own(live: Live) -> None:
    """2 MB is too much for JSON (413) but a fine upload: the upload route reads it (here to
    find no experiment 424242: 404), its cap being API_MAX_UPLOAD_MB."""
    key = {"X-API-Key": live.write_key}
    with httpx.Client(base_url=live.base, headers=key, timeout=WAIT) as client:
        too_big = client.post(JSON_ROUTE, json={"name": "x" * (2 * MB)})
        assert too_big.status_code == 413, too_big.text
        assert "API_MAX_JSON_KB" in too_big.json()["detail"]
        csv = b"variant,date,metric,n,sum,sum_squares\n" + b"control,2026-01-01,m,1,1,1\n" * (
            2 * MB // 27)
        upload = client.post("/api/v1/experiments/424242/data",
                             files={"file": ("big.csv", csv, "text/csv")})
        assert upload.status_code == 404, upload.text


def test_guard_refuses_a_streamed_json_body_once_it_passes_the_cap(live: Live) -> None:
    """A key and a JSON body streamed in chunks with no length: 413 once it passes 1 MB, while
    the client is still sending; the process never held more."""
    pid = live.server.pid
    before = _reset_peak(pid)
    with _connect(live.base) as sock:
        sock.sendall(_head(JSON_ROUTE, key=live.write_key, chunked=True, upload=False,
                           length=0))
        sock.sendall(_chunk(b'{"name": "', True))
        _send_on(sock, sent=0, total=MB + 256 * 1024, chunked=True)  # no end of the body
        status, headers, problem = _answer(sock)
    assert status == 413, problem
    assert headers["content-type"] == "application/problem+json"
    assert "API_MAX_JSON_KB" in str(problem["detail"])
    assert _status(pid, "VmHWM") - before < MAX_GROWTH
