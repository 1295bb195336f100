"""Mutual TLS on the data plane: a real bursard started with ``--listen-tls-*`` (a CA, bursard's
certificate and gateways' certificates made by ``openssl`` here), the clients with
``bursar.tls_context``."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import time

import pytest

import bursar
from bursar import ReservationStatus

MODEL = "gpt-4o-mini"


def _openssl(workdir: str, *args: str) -> None:
    out = subprocess.run(["openssl", *args], cwd=workdir, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"openssl {' '.join(args)}: {out.stderr}"


@pytest.fixture(scope="module")
def pki(stack):
    d = os.path.join(stack.workdir, "pki")
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        _openssl(d, "req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "1",
                 "-subj", f"/CN=bursar test {ca}")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("rogue", "rogue-ca", "client.ext")):
        _openssl(d, "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", ext)
    return lambda name: os.path.join(d, name)


@pytest.fixture(scope="module")
def tls_bursard(stack, pki):
    return stack.another_bursard("bursard-tls", [
        "--listen-tls-cert", pki("server.pem"), "--listen-tls-key", pki("server.key"),
        "--listen-tls-client-ca", pki("ca.pem")])


def test_sync_and_async_clients_over_mutual_tls(stack, pki, tls_bursard):
    secret, key_id = stack.key("--budget", "10")
    ctx = bursar.tls_context(pki("ca.pem"), pki("client.pem"), pki("client.key"))
    with bursar.Client(tls_bursard.tcp_url, tls=ctx, timeout=2) as c:
        r = c.check(key=secret, model=MODEL, input_tokens=10, max_output_tokens=10, estimated_cost=5_000)
        assert r.allowed and r.key_id == key_id
        assert c.settle(r.reservation, input_tokens=5, output_tokens=5, cost=3_000).status is ReservationStatus.APPLIED

    async def go():
        # The certificate names localhost as well as 127.0.0.1.
        async with bursar.AsyncClient(f"tcp://localhost:{tls_bursard.port}", tls=ctx, timeout=2) as c:
            r = await c.check(key=secret, model=MODEL, input_tokens=10, max_output_tokens=10, estimated_cost=4_000)
            assert r.allowed
            s = await c.release(r.reservation)
            assert s.status is ReservationStatus.APPLIED
    asyncio.run(go())
    assert stack.spend(key_id) == 3_000
    # The unix socket stays plain: its file permissions guard it.
    with bursar.Client(tls_bursard.unix_url) as c:
        assert c.check(key=secret, model=MODEL, input_tokens=1, max_output_tokens=1, estimated_cost=0).allowed


def test_without_a_valid_client_certificate_nothing_is_answered(stack, pki, tls_bursard):
    secret, key_id = stack.key("--budget", "10")
    kwargs = dict(key=secret, model=MODEL, input_tokens=10, max_output_tokens=10, estimated_cost=5_000)
    # Trusting bursard but presenting no certificate, or one of another CA: the handshake fails
    # (TLS 1.3: at the client's first read), so the CHECK gets no answer.
    no_cert = ssl.create_default_context(cafile=pki("ca.pem"))
    rogue = bursar.tls_context(pki("ca.pem"), pki("rogue.pem"), pki("rogue.key"))
    for ctx in (no_cert, rogue):
        with bursar.Client(tls_bursard.tcp_url, tls=ctx, timeout=2) as c:
            with pytest.raises((bursar.ConnectionLost, bursar.Unreachable)):
                c.check(**kwargs)

        async def go(ctx=ctx):
            async with bursar.AsyncClient(tls_bursard.tcp_url, tls=ctx, timeout=2) as c:
                with pytest.raises((bursar.ConnectionLost, bursar.Unreachable, bursar.DeadlineExceeded)):
                    await c.check(**kwargs)
        asyncio.run(go())
    # Plain TCP to the TLS port: no answer either.
    with bursar.Client(tls_bursard.tcp_url, timeout=2) as c:
        with pytest.raises((bursar.ConnectionLost, bursar.DeadlineExceeded)):
            c.check(**kwargs)
    # A client that does not trust bursard's certificate refuses it before sending anything.
    distrust = bursar.tls_context(pki("rogue-ca.pem"), pki("client.pem"), pki("client.key"))
    with bursar.Client(tls_bursard.tcp_url, tls=distrust, timeout=2) as c:
        with pytest.raises(bursar.Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
            c.check(**kwargs)
    # None of them reserved anything.
    assert stack.usage(key_id)["reserved"]["cost_nusd"] == 0


def test_tls_arguments_are_checked(pki, tmp_path):
    with pytest.raises(ValueError, match="tls: only for tcp:// addresses"):
        bursar.Client("unix:///tmp/x.sock", tls=bursar.tls_context(pki("ca.pem"), pki("client.pem"), pki("client.key")))
    with pytest.raises(ValueError, match="tls: expected an ssl.SSLContext"):
        bursar.AsyncClient("tcp://127.0.0.1:1", tls="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="server_hostname"):
        bursar.Client("tcp://127.0.0.1:1", server_hostname="bursar.internal")
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match=f"ca '{missing}'"):
        bursar.tls_context(missing, pki("client.pem"), pki("client.key"))
    with pytest.raises(ValueError, match="cannot load the client certificate"):
        bursar.tls_context(pki("ca.pem"), pki("client.pem"), pki("server.key"))


def test_bursard_refuses_a_remote_listener_without_mutual_tls(stack, tmp_path):
    """Started on a non-loopback address with no client authentication, bursard exits naming
    the problem; with --listen-allow-insecure-remote true it starts."""
    from .conftest import _binary, free_port
    exe = _binary("BURSARD", "bursard")
    args = [exe, "--redis", stack.redis.url, "--listen", f"0.0.0.0:{free_port()}", "--ops", f"127.0.0.1:{free_port()}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "is not a loopback address and the data plane has no mutual TLS" in out.stderr + out.stdout
    p = subprocess.Popen(args + ["--listen-allow-insecure-remote", "true", "--log-level", "warning"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = int(args[4].rsplit(":", 1)[1])
        deadline = 50
        while deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                deadline -= 1
                time.sleep(0.2)
        assert deadline, "bursard with --listen-allow-insecure-remote true did not listen"
        assert p.poll() is None
    finally:
        p.terminate()
        p.wait(10)


def test_bursarctl_check_over_mutual_tls(stack, pki, tls_bursard):
    secret, key_id = stack.key("--budget", "10")

    def ctl(*extra: str):
        return subprocess.run([stack.ctl_exe, "check", "--data-plane", f"127.0.0.1:{tls_bursard.port}",
                               "--secret", secret, "--model", MODEL, "--json", *extra],
                              capture_output=True, text=True, timeout=30)
    ok = ctl("--tls-ca", pki("ca.pem"), "--tls-cert", pki("client.pem"), "--tls-key", pki("client.key"))
    assert ok.returncode == 0, ok.stderr
    answer = json.loads(ok.stdout)
    assert answer["allowed"] is True and answer["key_id"] == key_id
    plain = ctl()
    assert plain.returncode == 6, (plain.returncode, plain.stdout, plain.stderr)
    assert "the data plane did not answer" in plain.stderr
    partial = ctl("--tls-ca", pki("ca.pem"))
    assert partial.returncode == 2 and "--tls-ca, --tls-cert and --tls-key go together" in partial.stderr
