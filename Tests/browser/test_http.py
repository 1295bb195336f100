"""HTTP hygiene of the ops port, driven by Python's urllib (a client that writes its whole body
before it reads the answer): a request answered before its body was read still gets its answer
(RFC 9112 §9.6: bursard reads and discards the rest), with and without `Connection: close`."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from bursar import SERVER

BODY = b"x" * (10 << 20)  # 10 MiB, ten times the admin API's largest body


def _post(path: str, headers: dict, data=BODY) -> tuple[int, bytes, float]:
    req = urllib.request.Request(SERVER + path, data=data, method="POST", headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read(), time.monotonic() - started
    except urllib.error.HTTPError as e:
        return e.code, e.read(), time.monotonic() - started


@pytest.mark.parametrize("connection", ["close", "keep-alive"])
@pytest.mark.parametrize("path, content_type, status, needle", [
    # The body is over the limit: refused after 1 MiB of it was read.
    ("/v1/bootstrap", "application/json", 400, b'"code":"invalid"'),
    # Refused before any of it was read: no token, no such route, a console form too large.
    ("/v1/orgs", "application/json", 401, b'"code":"unauthenticated"'),
    ("/v1/nope", "application/json", 404, b'"code":"not_found"'),
    ("/console/sign-in", "application/x-www-form-urlencoded", 400, b""),
])
def test_a_large_body_answered_early_still_gets_its_answer(connection, path, content_type, status, needle):
    code, body, elapsed = _post(path, {"Connection": connection, "Content-Type": content_type})
    print(f"POST {path} (10 MiB, Connection: {connection}): {code} in {elapsed:.2f} s")
    assert code == status, body[:300]
    assert needle in body
    # Without the drain the client blocks writing and times out (20 s); with it, the 10 MiB cross
    # loopback in a fraction of a second. Bounded loosely: a busy CI machine.
    assert elapsed < 5


def test_chunked_body_over_the_limit_gets_its_400():
    chunks = iter([BODY[i:i + 65536] for i in range(0, len(BODY), 65536)])
    code, body, elapsed = _post("/v1/bootstrap", {"Connection": "close", "Content-Type": "application/json",
                                                  "Transfer-Encoding": "chunked"}, data=chunks)
    print(f"POST /v1/bootstrap (10 MiB chunked, Connection: close): {code} in {elapsed:.2f} s")
    assert code == 400 and b"larger than 1048576 bytes" in body
    assert elapsed < 5
