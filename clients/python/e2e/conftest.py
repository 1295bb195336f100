"""Fixtures for the LiteLLM end-to-end tests: every component is a real process on an ephemeral
loopback port, started once per session — redis-server, bursard (``--redis`` at it), the fake
OpenAI-compatible upstream, and a LiteLLM proxy whose config names ``bursar.litellm``.

Nothing is mocked. A missing binary or package fails the session loudly (it is never skipped).

Environment (``deploy/litellm-e2e.sh`` sets it):

- ``BURSARD``, ``BURSARCTL``: the binaries (default: ``.build/debug/…`` of the repository, then PATH)
- ``LITELLM_BIN``: the ``litellm`` entry point of the venv (default: beside this Python)
- the ``bursar`` package (client + ``bursar.litellm``) must be *installed* in LiteLLM's venv
  (the script does ``pip install ./clients/python``): the proxy runs with ``PYTHONPATH`` holding
  only this directory (for ``capture_logger``), never the source tree
- ``E2E_KEEP_LOGS``: a directory to copy the processes' logs to at the end
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MASTER_KEY = "sk-master-e2e"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(env: str, name: str) -> str:
    explicit = os.environ.get(env)
    candidates = [explicit] if explicit else [str(REPO / ".build" / "debug" / name),
                                              str(REPO / ".build" / "release" / name),
                                              shutil.which(name) or ""]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    pytest.fail(f"{name} not found (set {env}; looked at {candidates})", pytrace=False)


def _wait(what: str, probe, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before it was ready:\n"
                        + log.read_text(errors="replace")[-12000:], pytrace=False)
        try:
            if probe():
                return
        except Exception:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} not ready after {timeout:.0f} s:\n" + log.read_text(errors="replace")[-3000:],
                pytrace=False)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


class Processes:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> tuple[subprocess.Popen, Path]:
        log = self.work / f"{name}.log"
        f = open(log, "wb")
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=self.work,
                                start_new_session=True)
        self.procs.append((name, proc))
        return proc, log

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="session")
def work():
    d = Path(tempfile.mkdtemp(prefix="bursar-litellm-e2e-"))
    yield d
    keep = os.environ.get("E2E_KEEP_LOGS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for p in d.glob("*.log"):
            shutil.copy(p, Path(keep) / p.name)
        for p in d.glob("*.jsonl"):
            shutil.copy(p, Path(keep) / p.name)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def procs(work):
    p = Processes(work)
    yield p
    p.stop()


class Bursar:
    """bursard + redis-server, and the admin side through bursarctl (Owner token)."""

    def __init__(self, ctl: str, ops: str, data: str, token: str) -> None:
        self.ctl, self.ops, self.data, self.token = ctl, ops, data, token
        self._n = 0

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, BURSAR_SERVER=self.ops, BURSAR_TOKEN=self.token)
        r = subprocess.run([self.ctl, *args], env=env, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"bursarctl {' '.join(args)} exited {r.returncode}: {r.stderr}{r.stdout}")
        return r

    def json(self, *args: str):
        return json.loads(self.run(*args, "--json").stdout)

    def key(self, *limits: str, project: str = "E2E") -> tuple[str, int]:
        """A new key (secret, id) in the test project with these bursarctl limit flags."""
        self._n += 1
        d = self.json("key", "create", "--project", project, "--name", f"k{self._n}-{time.monotonic_ns()}", *limits)
        return d["secret"], d["key"]["id"]

    def usage(self, key_id: int) -> dict:
        return self.json("usage", "key", str(key_id))

    def metrics(self) -> dict:
        """bursard's Prometheus counters, {"name{labels}": value}."""
        with urllib.request.urlopen(self.ops + "/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def redis(self, *args: str) -> str:
        """One command on bursard's redis-server (redis-cli), its reply as text."""
        return self.redis_bytes(*args).decode().strip()

    def redis_bytes(self, *args: str) -> bytes:
        """One command on bursard's redis-server (redis-cli), its reply's bytes as stored."""
        cli = shutil.which("redis-cli") or pytest.fail("redis-cli not on PATH", pytrace=False)
        r = subprocess.run([cli, "-p", str(self.redis_port), "--raw", *args], capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        # --raw ends the reply with one newline of its own.
        return r.stdout[:-1] if r.stdout.endswith(b"\n") else r.stdout

    def reservation_name(self, rid: str) -> tuple[int, int]:
        """(organization id, sequence) inside the reservation id `rid` (32 hex digits, as
        `x-bursar-reservation` carries it): the id is AES-256 of those two big-endian u64 as one
        block, under the installation's reservation key in Redis (`br:ridkey`, base64 of 32
        bytes; SPEC §5). Test code only, through the openssl CLI: clients treat ids as opaque."""
        assert re.fullmatch("[0-9a-f]{32}", rid), f"not a reservation id: {rid!r}"
        key = base64.b64decode(self.redis("GET", "br:ridkey"), validate=True)
        assert len(key) == 32, "br:ridkey is not 32 bytes of base64"
        openssl = shutil.which("openssl") or pytest.fail("openssl not on PATH", pytrace=False)
        r = subprocess.run([openssl, "enc", "-d", "-aes-256-ecb", "-nopad", "-K", key.hex()],
                           input=bytes.fromhex(rid), capture_output=True, timeout=10)
        assert r.returncode == 0 and len(r.stdout) == 16, r.stderr
        org, seq = struct.unpack(">QQ", r.stdout)
        return org, seq

    RESERVATION_STATUSES = ("open", "settled", "released", "expired", "swept", "void")

    def reservation(self, rid: str) -> dict:
        """The reservation `rid` (32 hex digits) as Redis holds it (SPEC §13.1, §13.6), at
        `br:{o<org>}:r:<sequence>` of its decrypted name: status, reserved tokens and cost, and
        the settled actuals once settled. Packed (`packed - `, then status and flags, one byte
        each, then big-endian i64s: expiry, tokens, cost; metered, one byte; four rates, made
        at, actual tokens and cost, −1 until settled; ...), or the text of an earlier release."""
        org, seq = self.reservation_name(rid)
        raw = self.redis_bytes("GET", f"br:{{o{org}}}:r:{seq}")
        if raw.startswith(b"packed - "):
            status, _flags, _expires, tokens, cost = struct.unpack_from(">BBqqq", raw, 9)
            actual_tokens, actual_cost = struct.unpack_from(">qq", raw, 9 + 2 + 3 * 8 + 1 + 5 * 8)
            out = {"status": self.RESERVATION_STATUSES[status - 1], "tokens": tokens, "cost": cost}
            if actual_tokens >= 0:
                out["actual_tokens"], out["actual_cost"] = actual_tokens, actual_cost
            return out
        f = raw.decode().split()
        out = {"status": f[0], "tokens": int(f[4]), "cost": int(f[5])}
        if len(f) >= 16 and f[14] != "-":
            out["actual_tokens"], out["actual_cost"] = int(f[14]), int(f[15])
        return out

    def wait_settled(self, key_id: int, timeout: float = 15.0) -> dict:
        """The key's usage once nothing is reserved any more (SETTLE/RELEASE run in the
        background after the response)."""
        end = time.monotonic() + timeout
        u = self.usage(key_id)
        while u["reserved"]["count"] and time.monotonic() < end:
            time.sleep(0.1)
            u = self.usage(key_id)
        return u


def _start_redis(procs: Processes, work: Path, name: str) -> int:
    redis = shutil.which("redis-server") or pytest.fail("redis-server not on PATH", pytrace=False)
    rport = _free_port()
    rp, rlog = procs.start(name, [redis, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                  "--dir", str(work), "--logfile", ""])

    def redis_ping() -> bool:
        with socket.create_connection(("127.0.0.1", rport), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    _wait(name, redis_ping, 20, rp, rlog)
    return rport


@pytest.fixture(scope="session")
def bursar_server(procs, work) -> Bursar:
    bursard = _binary("BURSARD", "bursard")
    ctl = _binary("BURSARCTL", "bursarctl")
    rport = _start_redis(procs, work, "redis")
    dport, oport, gport = _free_port(), _free_port(), _free_port()
    # A 1 s Redis deadline: the CI machine may be busy, and these tests are about the gateway.
    bp, blog = procs.start("bursard", [bursard, "--listen", f"127.0.0.1:{dport}", "--ops", f"127.0.0.1:{oport}",
                                       "--redis", f"redis://127.0.0.1:{rport}", "--deadline-ms", "1000",
                                       "--max-unknown-keys-per-minute", "0", "--unix", str(work / "bursard.sock"),
                                       # The gRPC front door Envoy's ext_authz filter calls (test_envoy.py).
                                       "--grpc", f"127.0.0.1:{gport}"])
    ops = f"http://127.0.0.1:{oport}"
    _wait("bursard", lambda: _http_ok(ops + "/readyz"), 60, bp, blog)
    boot = subprocess.run([ctl, "bootstrap", "--org", "E2E Org", "--owner", "owner@e2e.test", "--owner-name", "Owner",
                           "--json"], env=dict(os.environ, BURSAR_SERVER=ops), capture_output=True, text=True, timeout=60)
    assert boot.returncode == 0, boot.stderr
    booted = json.loads(boot.stdout)
    b = Bursar(ctl, ops, f"tcp://127.0.0.1:{dport}", booted["owner_token"])
    b.operator_token = booted["operator_token"]
    b.unix = f"unix://{work / 'bursard.sock'}"  # the same data plane on a unix socket
    b.grpc_port = gport
    b.redis_port = rport
    b.run("project", "create", "E2E", "--models", ",".join(MODELS), "--budget", "$1000")
    return b


# The proxy's model groups; every one is priced by LiteLLM's map as openai/gpt-4o-mini.
MODELS = ["gpt-4o-mini", "slow-gpt-4o-mini", "fail-gpt-4o-mini", "fallback-gpt-4o-mini", "other-gpt-4o-mini",
          "break-gpt-4o-mini"]


class Upstream:
    def __init__(self, base: str) -> None:
        self.base = base

    def log(self) -> list:
        with urllib.request.urlopen(self.base + "/_log", timeout=5) as r:
            return json.loads(r.read())


@pytest.fixture(scope="session")
def upstream(procs) -> Upstream:
    port = _free_port()
    p, log = procs.start("upstream", [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    _wait("fake upstream", lambda: _http_ok(base + "/health"), 30, p, log)
    return Upstream(base)


def _config(upstream: str, variant: str = "bursar") -> str:
    def model(name: str, prefix: str) -> str:
        return (f"  - model_name: {name}\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
                f"      api_base: {upstream}/{prefix}/v1\n      api_key: fake-upstream-key\n")
    return ("model_list:\n" + model("gpt-4o-mini", "plain") + model("other-gpt-4o-mini", "plain")
            + model("slow-gpt-4o-mini", "slow") + model("fail-gpt-4o-mini", "fail")
            + model("fallback-gpt-4o-mini", "fail") + model("break-gpt-4o-mini", "break")
            + "router_settings:\n  num_retries: 2\n  retry_after: 0\n"
            + "  fallbacks: [{\"fallback-gpt-4o-mini\": [\"gpt-4o-mini\"]}]\n"
            + _SETTINGS[variant])


_BURSAR_AUTH = "general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n  custom_auth: bursar.litellm.user_api_key_auth\n"
_SETTINGS = {
    # the suite's proxies: bursar.litellm and the capture logger
    "bursar": "litellm_settings:\n  callbacks: [\"bursar.litellm.handler\", \"capture_logger.capture\"]\n" + _BURSAR_AUTH,
    # LiteLLM's own limits (test_overspend.py)
    "native": ("litellm_settings:\n  callbacks: [\"capture_logger.capture\"]\n"
               "general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n"
               "  custom_auth: native_auth.user_api_key_auth\n  custom_auth_run_common_checks: true\n"),
    # bench_latency.py: bursar.litellm alone, and no callback at all (master key)
    "bench-bursar": "litellm_settings:\n  callbacks: [\"bursar.litellm.handler\"]\n" + _BURSAR_AUTH,
    "bench-none": "general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n",
}


class Proxy:
    def __init__(self, base: str, capture: Path, log: Path) -> None:
        self.base = base
        self.capture = capture
        self.log = log

    def events(self, call_id: str, kind: str = "success", timeout: float = 10.0) -> list:
        """The logging events (capture_logger) of one proxy request of this kind ("success",
        "failure"), once there is one."""
        end = time.monotonic() + timeout
        while True:
            found = []
            if self.capture.exists():
                for line in self.capture.read_text().splitlines():
                    rec = json.loads(line)
                    if rec.get("call_id") == call_id and rec.get("event") == kind:
                        found.append(rec)
            if found or time.monotonic() > end:
                return found
            time.sleep(0.1)


def _start_proxy(procs: Processes, work: Path, name: str, bursar_url: str, upstream: Upstream,
                 extra_env: dict | None = None, variant: str = "bursar") -> Proxy:
    litellm_bin = os.environ.get("LITELLM_BIN") or str(Path(sys.executable).with_name("litellm"))
    if not os.path.exists(litellm_bin):
        pytest.fail(f"litellm not found at {litellm_bin} (set LITELLM_BIN)", pytrace=False)
    cfg = work / f"{name}-config.yaml"
    cfg.write_text(_config(upstream.base, variant))
    port = _free_port()
    capture = work / f"{name}-capture.jsonl"
    env = dict(os.environ, LITELLM_MASTER_KEY=MASTER_KEY, LITELLM_LOCAL_MODEL_COST_MAP="True",
               BURSAR_URL=bursar_url, BURSAR_TIMEOUT_MS="2000", CAPTURE_LOG=str(capture),
               PYTHONPATH=str(HERE),
               **(extra_env or {}))
    env.pop("DATABASE_URL", None)
    # LiteLLM's start-up failed once (uvicorn exit 3, "startup failure") on a machine at load 7.7
    # on 2 cores; a proxy that exits before it is ready gets one more try, said on stderr with
    # its log. A proxy that is never ready, or fails twice, fails the session.
    for attempt in (1, 2):
        port = _free_port()
        run = name if attempt == 1 else f"{name}-retry"
        p, log = procs.start(run, [litellm_bin, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
                             env=env)
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        try:
            _wait(f"LiteLLM proxy {run}", lambda: _http_ok(base + "/health/liveliness"), 240, p, log)
        except pytest.fail.Exception:
            if attempt == 2 or p.poll() is None:
                raise
            print(f"\nLiteLLM proxy {name} exited with {p.returncode} before it was ready; starting it "
                  f"again. Its log:\n" + log.read_text(errors="replace")[-12000:], file=sys.stderr)
            continue
        print(f"\nLiteLLM proxy {run} ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        return Proxy(base, capture, log)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def proxy(procs, work, bursar_server, upstream) -> Proxy:
    return _start_proxy(procs, work, "litellm", bursar_server.data, upstream)


@pytest.fixture(scope="session")
def proxy_b(procs, work, bursar_server, upstream) -> Proxy:
    """A second proxy on the same bursard (two gateways sharing budgets)."""
    return _start_proxy(procs, work, "litellm-b", bursar_server.data, upstream)


@pytest.fixture(scope="session")
def proxy_unix(procs, work, bursar_server, upstream) -> Proxy:
    """A proxy reaching bursard over its unix socket (BURSAR_URL=unix:///…)."""
    return _start_proxy(procs, work, "litellm-unix", bursar_server.unix, upstream)


@pytest.fixture(scope="session")
def proxy_without_bursar(procs, work, upstream) -> Proxy:
    """A proxy whose BURSAR_URL names a port nobody listens on."""
    return _start_proxy(procs, work, "litellm-nobursar", f"tcp://127.0.0.1:{_free_port()}", upstream)


# LiteLLM's own limits for the overspend comparison (test_overspend.py): the same budget and TPM
# as the bursar key there, enforced by LiteLLM from a shared Redis.
NATIVE_LIMITS = {"NATIVE_MAX_BUDGET": "0.0005", "NATIVE_TPM": "1000", "NATIVE_RPM": "1000"}


@pytest.fixture(scope="session")
def native_proxies(procs, work, upstream) -> list:
    """Two LiteLLM proxies without bursar, sharing one Redis (REDIS_HOST/REDIS_PORT) for LiteLLM's
    spend counters and rate limiter; keys from native_auth.py."""
    rport = _start_redis(procs, work, "redis-native")
    env = dict(NATIVE_LIMITS, REDIS_HOST="127.0.0.1", REDIS_PORT=str(rport))
    return [_start_proxy(procs, work, f"litellm-native-{i}", "tcp://127.0.0.1:1", upstream, env, variant="native")
            for i in (1, 2)]
