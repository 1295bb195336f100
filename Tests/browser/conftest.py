"""Fixtures: the seeded organization (once per run), one headless Chromium, the permission
matrix; on a failed test, the page source and a PNG of what the browser showed."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import bursar  # noqa: E402
from browser import Console, start_chromium  # noqa: E402

ARTIFACTS = os.environ.get("BROWSER_ARTIFACTS") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "bursar-browser")

# The order the modules run in: screenshots first, while the data is the seed's alone.
# test_history adds traffic (spend the other modules read) and keys, so it comes after them all.
MODULE_ORDER = ["test_screenshots", "test_permissions", "test_keys", "test_caps", "test_sessions", "test_link",
                "test_organization", "test_history"]


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.module.__name__.rsplit(".", 1)[-1]
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)
    items.sort(key=rank)  # stable: the order within a module is kept


@pytest.fixture(scope="session")
def seed() -> bursar.Seed:
    return bursar.seed_organization()


@pytest.fixture(scope="session")
def permissions() -> list:
    return bursar.load_permissions()


_driver = None


@pytest.fixture(scope="session")
def driver():
    global _driver
    _driver = start_chromium()
    yield _driver
    _driver.quit()
    _driver = None


@pytest.fixture(scope="session")
def console(driver, seed) -> Console:
    c = Console(driver)
    c.sign_in(seed.users["owner"])  # learns /console/o/<org> from the sign-in's redirect
    return c


@pytest.fixture(scope="session")
def urls(console, seed) -> dict:
    """The contract's pages, for the seeded organization."""
    o = console.org_path
    u = {"overview": o, "organization": f"{o}/organization", "audit": f"{o}/audit"}
    for name, p in seed.projects.items():
        u[f"project:{name}"] = f"{o}/p/{p['id']}"
        u[f"key-new:{name}"] = f"{o}/p/{p['id']}/keys/new"
    return u


def another_bursard(name: str, *flags: str, scheme: str = "http", data_plane: str = "127.0.0.1:0",
                    env: dict | None = None):
    """Another bursard on the same Redis (so the same store and console sessions), with these flags,
    its data plane on `data_plane` and `env` added to its environment; yields its ops URL and stops
    it afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(bursar.WORK, f"bursard-{name}.log"), "w")
    p = subprocess.Popen([bursar.BURSARD, "--redis", bursar.REDIS_URL, "--listen", data_plane,
                          "--ops", f"127.0.0.1:{port}", "--log-level", "warning", *flags],
                         stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    server = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if bursar.request("GET", "/healthz", server=server).status == 200:
                break
        except OSError:
            pass
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise RuntimeError(f"the {name} bursard did not start (see {log.name})")
        time.sleep(0.1)
    yield server
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
    log.close()


@pytest.fixture(scope="session")
def short_session_server(seed):
    """A second bursard whose console sessions last 2 seconds."""
    yield from another_bursard("short-ttl", "--console-session-ttl", "2")


@pytest.fixture(scope="session")
def tls_server(seed):
    """A second bursard serving its ops port over TLS, with a self-signed certificate made here."""
    cert, key = os.path.join(bursar.WORK, "ops-cert.pem"), os.path.join(bursar.WORK, "ops-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    yield from another_bursard("tls", "--ops-tls-cert", cert, "--ops-tls-key", key, scheme="https")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call") and _driver is not None:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid.split("::", 1)[-1])
        if rep.when == "setup":
            name += ".setup"
        d = os.path.join(ARTIFACTS, "failures")
        os.makedirs(d, exist_ok=True)
        try:
            _driver.save_screenshot(os.path.join(d, name + ".png"))
            with open(os.path.join(d, name + ".html"), "w") as f:
                f.write(f"<!-- {_driver.current_url} -->\n{_driver.page_source}")
        except Exception as e:  # the browser itself may be what failed
            with open(os.path.join(d, name + ".txt"), "w") as f:
                f.write(f"no page captured: {e!r}\n")
