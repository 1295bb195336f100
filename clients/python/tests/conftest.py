"""Fixtures that run a real redis-server and a real bursard on ephemeral loopback ports.

Binaries: $BURSARD / $BURSARCTL, else <repo>/.build/$BURSAR_CONFIG (default debug). A missing
binary is a failure, never a skip. Nothing here mocks bursard; the few fake servers in
``helpers.py`` only stand in for failure modes a real bursard cannot be made to show on demand
(a server that never answers, a broken stream).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable, List, NamedTuple, Optional, Tuple, Union

import pytest

REPO = Path(__file__).resolve().parents[3]
CONFIG = os.environ.get("BURSAR_CONFIG", "debug")


def _binary(env: str, name: str) -> str:
    path = os.environ.get(env) or str(REPO / ".build" / CONFIG / name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"{name} not found at {path}: build it or set ${env}")
    return path


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait(predicate, what: str, seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Redis:
    def __init__(self, workdir: str) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found on PATH")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", workdir, "--save", "",
             "--appendonly", "no", "--logfile", os.path.join(workdir, "redis.log")])
        _wait(self._ping, "redis-server")
        self.url = f"redis://127.0.0.1:{self.port}"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Bursard:
    """One bursard process; ``kill`` and ``start`` again keep its ports and socket path."""

    def __init__(self, redis: Redis, workdir: str, name: str = "bursard",
                 extra_args: Optional[List[str]] = None) -> None:
        self.exe = _binary("BURSARD", "bursard")
        self.redis = redis
        self.port = free_port()
        self.ops_port = free_port()
        self.unix_path = os.path.join(workdir, f"{name}.sock")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.proc: Optional[subprocess.Popen] = None
        self.extra_args: List[str] = list(extra_args or [])
        self.tcp_url = f"tcp://127.0.0.1:{self.port}"
        self.unix_url = f"unix://{self.unix_path}"
        self.ops_url = f"http://127.0.0.1:{self.ops_port}"
        self.start()

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.exe, "--redis", self.redis.url, "--listen", f"127.0.0.1:{self.port}",
             "--unix", self.unix_path, "--ops", f"127.0.0.1:{self.ops_port}",
             # A 1 s Redis deadline: these tests are about the client, and a busy CI machine
             # (a 200-CHECK pipeline on 2 shared cores) can stall Redis past the 50 ms default.
             "--deadline-ms", "1000",
             "--log-level", "warning", *self.extra_args], stdout=log, stderr=log)
        log.close()
        _wait(self._healthy, f"bursard (log: {self.log_path})")

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"bursard exited with {self.proc.returncode}; log: "
                               + Path(self.log_path).read_text()[-2000:])
        try:
            with urllib.request.urlopen(self.ops_url + "/healthz", timeout=1):
                pass
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class OtherOrg(NamedTuple):
    """A second organization: its id, its Owner's token, and one key (secret, id) of it."""

    org_id: int
    token: str
    secret: str
    key_id: int


class Stack:
    """redis-server + bursard, bootstrapped: an organization, its Owner token, one project; the
    operator token, for gateway credentials and a second organization."""

    def __init__(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix="bursar-pytest-")
        self.ctl_exe = _binary("BURSARCTL", "bursarctl")
        self.redis = Redis(self.workdir)
        self.bursard = Bursard(self.redis, self.workdir)
        self.extra: List[Bursard] = []
        boot = self.ctl("bootstrap", "--org", "pyclient", "--owner", "owner@pyclient.test",
                        token=False)
        self.token = boot["owner_token"]
        self.operator_token = boot["operator_token"]
        self.org_id = boot["organization"]["id"]
        self.project = self.ctl("project", "create", "P", "--models", "gpt-4o-mini,gpt-4o,o5-mini")
        self._n = 0
        self._other: Optional[OtherOrg] = None

    def ctl(self, *args: str, token: Union[bool, str] = True, server: Optional[str] = None):
        """bursarctl with ``--json``; ``token`` True: the Owner's, a str: that token, False: none."""
        env = dict(os.environ, BURSAR_SERVER=server or self.bursard.ops_url)
        if token:
            env["BURSAR_TOKEN"] = token if isinstance(token, str) else self.token
        out = subprocess.run([self.ctl_exe, *args, "--json"], env=env, capture_output=True,
                             text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"bursarctl {' '.join(args)}: exit {out.returncode}: {out.stderr}")
        return json.loads(out.stdout) if out.stdout.strip() else None

    def key(self, *limits: str):
        """Create a key in project P with these bursarctl limit flags; (secret, key id)."""
        self._n += 1
        made = self.ctl("key", "create", "--project", "P", "--name", f"k{self._n}", *limits)
        return made["secret"], made["key"]["id"]

    def spend(self, key_id: int) -> int:
        """The key's spend this window, nano-USD, from the admin API (bursarctl usage key)."""
        return self.ctl("usage", "key", str(key_id))["spend"]["spend_nusd"]

    def usage(self, key_id: int) -> dict:
        return self.ctl("usage", "key", str(key_id))

    def admin(self, method: str, path: str, body: Any = None,
              token: Optional[str] = None) -> Tuple[int, Any]:
        """One admin API request on the ops port, as ``token`` (default the Owner's): (HTTP
        status, JSON answer or None)."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.bursard.ops_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        return status, (json.loads(raw) if raw.strip() else None)

    def gateway_credential(self, name: str, organizations: Iterable[int]) -> dict:
        """Issue a gateway credential (operator): {"id", "name", "organizations",
        "created_at_ms", "secret"}; the secret is shown only here."""
        status, body = self.admin("POST", "/v1/gateway-credentials",
                                  {"name": name, "organizations": list(organizations)},
                                  token=self.operator_token)
        if status != 201:
            raise RuntimeError(f"POST /v1/gateway-credentials: {status} {body}")
        return body

    def revoke_gateway_credential(self, credential_id: str) -> None:
        status, body = self.admin("DELETE", f"/v1/gateway-credentials/{credential_id}",
                                  token=self.operator_token)
        if status != 204:
            raise RuntimeError(f"DELETE /v1/gateway-credentials/{credential_id}: {status} {body}")

    def other_org(self) -> OtherOrg:
        """A second organization (made once, by the operator) with a project and one key."""
        if self._other is None:
            made = self.ctl("org", "create", "--name", "pyclient-b", "--owner", "owner@pyclient-b.test",
                            token=self.operator_token)
            token = made["owner_token"]
            self.ctl("project", "create", "PB", "--models", "gpt-4o-mini", token=token)
            key = self.ctl("key", "create", "--project", "PB", "--name", "kb", token=token)
            self._other = OtherOrg(made["organization"]["id"], token, key["secret"], key["key"]["id"])
        return self._other

    def another_bursard(self, name: str, extra_args: Optional[List[str]] = None) -> Bursard:
        b = Bursard(self.redis, self.workdir, name, extra_args)
        self.extra.append(b)
        return b

    def stop(self) -> None:
        for b in self.extra:
            b.stop()
        self.bursard.stop()
        self.redis.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    s = Stack()
    try:
        yield s
    finally:
        s.stop()
