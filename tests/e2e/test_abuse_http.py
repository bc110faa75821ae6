"""Hostile clients against the HTTP edge, with the real server running under a memory limit
(`prlimit --as`, release builds): unauthenticated large bodies, oversized JSON, huge headers,
slow-loris headers, bodies trickled below the minimum rate and connection floods. After each
attack the server answers /health, another user's predictions still succeed, and the limit
that fired is the expected one (status, code and message)."""
from __future__ import annotations

import os
import socket
import threading
import time

import numpy as np
import pytest
import requests

from conftest import Server, register
from models import mlp as mlp_proto

SANITIZED = os.environ.get("SERVEML_SANITIZED") == "1"
# ASan reserves terabytes of address space, so RLIMIT_AS cannot bound it.
PREFIX = [] if SANITIZED else ["prlimit", "--as=4294967296"]


def mlp() -> bytes:
    return mlp_proto().SerializeToString()


@pytest.fixture
def edge(tmp_path):
    (tmp_path / "data").mkdir()
    srv = Server(tmp_path / "data",
                 ["--header-timeout-seconds", "2", "--body-timeout-seconds", "3",
                  "--min-body-rate", "20000", "--max-connections-per-address", "20"],
                 exempt_loopback=False, prefix=PREFIX).start()
    bystander = register(srv.url, "bystander")
    d = bystander.deploy(mlp(), name="bystander")
    assert d["status"] == "active"
    yield srv, bystander, d["id"]
    assert srv.stop() == 0


def still_serving(srv, bystander, dep_id):
    assert requests.get(srv.url + "/health", timeout=5).status_code == 200
    r = bystander.predict(dep_id, [1.0, 2.0, 3.0, 4.0])
    assert r.status_code == 200, r.text


def rss_kib(srv) -> int:
    for line in open(f"/proc/{srv.proc.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def raw(srv, source="127.0.0.1", timeout=10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout,
                                 source_address=(source, 0))
    return s


def read_response(s: socket.socket, limit: float = 10.0) -> bytes:
    s.settimeout(limit)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                cl = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                if cl and len(body) >= int(cl[0].split(b":")[1]):
                    break
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def send_until_answered(s: socket.socket, total: int) -> tuple[int, bytes]:
    """Streams zeros until the server answers or stops reading; returns bytes sent."""
    s.setblocking(False)
    sent, chunk, answer = 0, b"\0" * 65536, b""
    deadline = time.time() + 20
    while sent < total and time.time() < deadline:
        try:
            answer += s.recv(65536)
            if answer:
                break
        except (BlockingIOError, InterruptedError):
            pass
        except ConnectionResetError:
            break
        try:
            sent += s.send(chunk)
        except (BlockingIOError, InterruptedError):
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            break
    s.setblocking(True)
    return sent, answer + read_response(s, 5)


@pytest.mark.parametrize("path,status,code", [
    ("/api/v1/auth/login", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("/api/v1/deploy", 401, "UNAUTHORIZED"),
])
def test_unauthenticated_large_multipart_is_never_read(edge, path, status, code):
    srv, bystander, dep_id = edge
    before = rss_kib(srv)
    total = 300 << 20
    s = raw(srv)
    s.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n"
               "Content-Type: multipart/form-data; boundary=zzz\r\n\r\n").encode())
    sent, answer = send_until_answered(s, total)
    s.close()
    assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer[:300]
    assert f'"code":"{code}"'.encode() in answer
    assert sent < (32 << 20), sent  # answered long before the body could have been read
    assert rss_kib(srv) - before < 64 * 1024, (before, rss_kib(srv))
    still_serving(srv, bystander, dep_id)


def test_json_bodies_are_capped_small(edge):
    srv, bystander, dep_id = edge
    r = requests.post(srv.url + "/api/v1/auth/login", data=b"{" + b" " * (2 << 20) + b"}",
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "1048576" in r.json()["error"]["message"]
    # A prediction may be larger (its own cap, 10 MiB by default).
    rows = [[1.0, 2.0, 3.0, 4.0]] * 60000  # ~1.5 MB of JSON
    r = bystander.predict(dep_id, rows)
    assert r.status_code == 200, r.text[:300]
    still_serving(srv, bystander, dep_id)


def test_huge_headers(edge):
    srv, bystander, dep_id = edge
    r = requests.get(srv.url + "/health", headers={"X-Big": "a" * (100 << 10)}, timeout=10)
    assert r.status_code == 431
    assert r.json()["error"]["code"] == "INVALID_INPUT"
    still_serving(srv, bystander, dep_id)


def test_slow_loris_headers_are_cut(edge):
    srv, bystander, dep_id = edge
    socks = [raw(srv, "127.0.0.21") for _ in range(15)]
    t0 = time.time()
    for s in socks:
        s.sendall(b"GET /health HTTP/1.1\r\n")
    answers = []
    done = threading.Event()

    def trickle():
        while not done.is_set():
            for s in socks:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            time.sleep(0.5)

    t = threading.Thread(target=trickle)
    t.start()
    try:
        still_serving(srv, bystander, dep_id)  # other clients are served meanwhile
        for s in socks:
            answers.append(read_response(s, 10))
    finally:
        done.set()
        t.join()
    elapsed = time.time() - t0
    assert elapsed < 8, elapsed
    for a in answers:
        assert a.startswith(b"HTTP/1.1 408"), a[:200]
        assert b'"code":"TIMEOUT"' in a and b"header" in a.lower()
    still_serving(srv, bystander, dep_id)


def test_body_trickled_below_the_minimum_rate_is_cut(edge):
    srv, bystander, dep_id = edge
    s = raw(srv, "127.0.0.22")
    token = bystander.token
    s.sendall((f"POST /api/v1/predict/{dep_id} HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
               "Content-Length: 1000000\r\n\r\n{\"data\": [").encode())
    t0 = time.time()
    answer = b""
    while time.time() - t0 < 20:
        try:
            s.sendall(b"1,")
        except OSError:
            break
        s.settimeout(0.2)
        try:
            answer += s.recv(65536)
            if answer:
                break
        except socket.timeout:
            pass
    answer += read_response(s, 5)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"TIMEOUT"' in answer
    still_serving(srv, bystander, dep_id)


def test_connection_flood_from_one_address(edge):
    srv, bystander, dep_id = edge
    socks, refused = [], 0
    for _ in range(40):
        s = raw(srv, "127.0.0.23")
        socks.append(s)
    time.sleep(0.3)
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(4096)
            if data.startswith(b"HTTP/1.1 503"):
                assert b"Retry-After: 1" in data
                assert b"too many connections" in data
                refused += 1
        except (BlockingIOError, ConnectionResetError):
            pass
    assert refused >= 15, refused  # the cap is 20 per address
    # Another address is served normally while the flood holds its connections.
    s = raw(srv, "127.0.0.24")
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert read_response(s).startswith(b"HTTP/1.1 200")
    s.close()
    for s in socks:
        s.close()
    still_serving(srv, bystander, dep_id)
