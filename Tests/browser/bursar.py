"""The world outside the browser: bursarctl (admin API and CHECK over the binary protocol), the
seeded organization, proto/permissions.tsv, and raw HTTP to the console (for status codes,
headers and forms posted without a browser)."""

from __future__ import annotations

import csv
import http.client as httpclient
import importlib.util
import json
import os
import re
import ssl
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field

SERVER = os.environ["BURSAR_SERVER"]  # http://127.0.0.1:OPS, the ops port
DATA_PLANE = os.environ["BURSAR_DATA_PLANE"]  # 127.0.0.1:PORT
REDIS_URL = os.environ["BURSAR_REDIS_URL"]
BURSARD = os.environ["BURSARD"]
BURSARCTL = os.environ["BURSARCTL"]
WORK = os.environ.get("BURSAR_WORK", "/tmp")
PERMISSIONS = os.environ.get(
    "BURSAR_PERMISSIONS",
    os.path.join(os.path.dirname(__file__), "..", "..", "proto", "permissions.tsv"),
)

NANO = 1_000_000_000  # nano-USD per dollar


class CtlError(Exception):
    pass


def _env() -> dict:
    # bursarctl reads BURSAR_SERVER/BURSAR_TOKEN/BURSAR_ORG as defaults: every call here names them.
    return {k: v for k, v in os.environ.items() if k not in ("BURSAR_TOKEN", "BURSAR_ORG")}


def ctl(*args: str, token: str | None = None, server: str = SERVER, as_json: bool = True):
    """Runs bursarctl against the admin API; returns its JSON answer (None when it prints nothing)."""
    cmd = [BURSARCTL, *args, "--server", server]
    if token is not None:
        cmd += ["--token", token]
    if as_json:
        cmd.append("--json")
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=30)
    if p.returncode != 0:
        raise CtlError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    if not as_json:
        return p.stdout
    return json.loads(p.stdout) if p.stdout.strip() else None


def check(secret: str, model: str, tokens: int = 1, cost: str = "0.001", keep: bool = False) -> dict:
    """A CHECK over the binary protocol (bursarctl check); the decision as a dict, allowed or not."""
    cmd = [BURSARCTL, "check", "--data-plane", DATA_PLANE, "--secret", secret, "--model", model,
           "--tokens", str(tokens), "--cost", cost, "--json"]
    if keep:
        cmd.append("--keep")
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=30)
    if p.returncode not in (0, 7):
        raise CtlError(f"check: exit {p.returncode}: {p.stderr.strip()}")
    decision = json.loads(p.stdout)
    assert decision["allowed"] == (p.returncode == 0), (p.returncode, decision)
    return decision


def data_plane(address: str = DATA_PLANE):
    """A blocking client of a data plane: the repository's Python client (clients/python: pure
    Python, no dependencies), loaded from its source as `bursar_client`, since this module is the
    tests' `bursar`. A context manager."""
    if "bursar_client" not in sys.modules:
        package = os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python", "bursar")
        spec = importlib.util.spec_from_file_location(
            "bursar_client", os.path.join(package, "__init__.py"), submodule_search_locations=[package])
        module = importlib.util.module_from_spec(spec)
        sys.modules["bursar_client"] = module
        spec.loader.exec_module(module)
    return sys.modules["bursar_client"].Client(f"tcp://{address}", pool_size=1, timeout=5, settle_timeout=10)


def spend(client, secret: str, model: str, tokens: int, cost_nusd: int) -> None:
    """A CHECK estimating `cost_nusd` for `tokens` input tokens, then its SETTLE at exactly that."""
    r = client.check(key=secret, model=model, input_tokens=tokens, max_output_tokens=0, estimated_cost=cost_nusd)
    assert r.allowed, (model, r.as_dict())
    s = client.settle(r.reservation, input_tokens=tokens, output_tokens=0, cost=cost_nusd)
    assert s.ok, (model, s)


# ---------------------------------------------------------------------------------------------
# permissions.tsv

STANDINGS = ("org_owner", "project_admin", "project_member", "org_member_no_project")


@dataclass(frozen=True)
class Permission:
    section: str
    action: str
    cells: dict  # standing -> "yes" | "no" | "own"

    def allowed(self, standing: str) -> bool:
        """Whether a user of this standing regarding a project (or the organization) may do it.
        "own" = only for a project the user is in: true for the standings that mean a role in it."""
        cell = self.cells[standing]
        if cell == "yes":
            return True
        if cell == "no":
            return False
        if cell == "own":
            return standing in ("org_owner", "project_admin", "project_member")
        raise ValueError(f"permissions.tsv: {self.action}/{standing}: unknown cell {cell!r}")


def load_permissions(path: str = PERMISSIONS) -> list[Permission]:
    with open(path, newline="") as f:
        lines = [line for line in f if not line.startswith("#") and line.strip()]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    assert rows, f"{path}: no rows"
    missing = [s for s in STANDINGS if s not in rows[0]]
    assert not missing, f"{path}: columns {missing} missing"
    return [Permission(r["section"], r["action"], {s: r[s].strip() for s in STANDINGS}) for r in rows]


# ---------------------------------------------------------------------------------------------
# The seeded organization

@dataclass
class User:
    role: str  # the fixture's name: owner, admin, member, outsider
    email: str
    name: str
    id: int
    token: str
    org_owner: bool
    projects: dict = field(default_factory=dict)  # project name -> "admin" | "member"

    def standing(self, project: str) -> str:
        """The permissions.tsv column that applies to this user regarding the project."""
        if self.org_owner:
            return "org_owner"
        role = self.projects.get(project)
        return {"admin": "project_admin", "member": "project_member"}.get(role, "org_member_no_project")

    def org_standings(self) -> set:
        """The columns that apply regarding the organization (no project in question)."""
        if self.org_owner:
            return {"org_owner"}
        return {self.standing(p) for p in self.projects} or {"org_member_no_project"}


@dataclass
class Key:
    id: int
    name: str
    project: str
    user: str  # User.role
    secret: str


@dataclass
class Seed:
    org_id: int
    operator_token: str
    users: dict  # role -> User
    projects: dict  # name -> {"id": int, "models": [...], "tpm": int, ...}
    keys: list  # [Key]

    def keys_of(self, project: str | None = None, user: str | None = None) -> list:
        return [k for k in self.keys if (project is None or k.project == project)
                and (user is None or k.user == user)]


PRODUCTION_MODELS = ["gpt-5.5", "claude-opus-4.8", "gemini-3-pro", "o5-mini", "llama-4-405b", "mistral-large-3"]
SANDBOX_MODELS = ["gpt-5.5", "o5-mini"]
# The Project Member's grant in Production: four models, keys up to $300, 30k TPM, 120 RPM.
MEMBER_GRANT = {"models": ["gpt-5.5", "claude-opus-4.8", "gemini-3-pro", "o5-mini"],
                "max_key_spend": 300, "tpm": 30000, "rpm": 120}


# Spend each seeded key holds in its current window (a CHECK's estimate, kept): $1,236.50 in Production.
SEEDED_SPEND = {"prod-api": 420.0, "prod-batch": 180.0, "ben-prod": 36.5, "ops-canary": 600.0}


def seed_organization() -> Seed:
    """FastRouter AI as on the product page, through bursarctl against the real bursard:
    Ada (Owner); Cleo (Member; Project Admin of Production, Project Member of Sandbox);
    Ben (Member; Project Member of Production with a grant); Dan (Member, no project).
    Keys for Ada, Cleo and Ben, and usage held by CHECKs so spend and budget bars are not zero."""
    boot = ctl("bootstrap", "--org", "FastRouter AI", "--owner", "ada@fastrouter.ai",
               "--owner-name", "Ada Lovelace")
    ada_token = boot["owner_token"]
    users = {"owner": User("owner", "ada@fastrouter.ai", "Ada Lovelace", boot["owner"]["user_id"],
                           ada_token, True)}

    projects = {}
    for name, models, tpm, rpm, budget in (
        ("Production", PRODUCTION_MODELS, 120000, 600, 2000),
        ("Sandbox", SANDBOX_MODELS, 20000, 60, 200),
    ):
        p = ctl("project", "create", name, "--models", ",".join(models), "--tpm", str(tpm),
                "--rpm", str(rpm), "--budget", str(budget), token=ada_token)
        projects[name] = {"id": p["id"], "models": models, "tpm": tpm, "rpm": rpm, "budget": budget}

    for role, email, name in (("admin", "cleo@fastrouter.ai", "Cleo Park"),
                              ("member", "ben@fastrouter.ai", "Ben Okafor"),
                              ("outsider", "dan@fastrouter.ai", "Dan Reyes")):
        inv = ctl("member", "invite", email, "--name", name, token=ada_token)
        # New people accept with the invitation's token alone, and get their own token.
        joined = ctl("invitation", "accept", inv["accept_token"])
        users[role] = User(role, email, name, joined["member"]["user_id"], joined["token"], False)

    def add(project: str, role: str, project_role: str, *grant: str):
        ctl("project", "member", "add", project, users[role].email, "--role", project_role, *grant,
            token=ada_token)
        users[role].projects[project] = project_role

    add("Production", "admin", "admin")
    add("Sandbox", "admin", "member")
    add("Production", "member", "member", "--models", ",".join(MEMBER_GRANT["models"]),
        "--max-key-spend", str(MEMBER_GRANT["max_key_spend"]), "--tpm", str(MEMBER_GRANT["tpm"]),
        "--rpm", str(MEMBER_GRANT["rpm"]))

    keys = []

    def key(role: str, project: str, name: str, *limits: str) -> Key:
        k = ctl("key", "create", "--project", project, "--name", name, *limits, token=users[role].token)
        keys.append(Key(k["key"]["id"], name, project, role, k["secret"]))
        return keys[-1]

    key("owner", "Production", "ops-canary", "--rpm", "120")
    key("owner", "Sandbox", "sandbox-ci", "--budget", "50", "--period", "weekly")
    key("admin", "Production", "prod-api", "--budget", "800", "--tpm", "60k", "--rpm", "300")
    key("admin", "Production", "prod-batch", "--budget", "300", "--period", "weekly",
                "--models", "gpt-5.5,o5-mini")
    key("admin", "Sandbox", "sandbox-experiments", "--tpm", "10k", "--expires-in", "14d")
    key("member", "Production", "ben-prod", "--budget", "200", "--period", "monthly", "--rpm", "60",
              "--tpm", "20k", "--models", ",".join(MEMBER_GRANT["models"]), "--expires-in", "30d",
              "--no-content-logging")
    key("member", "Production", "ben-notebook", "--budget", "20", "--period", "daily", "--models", "o5-mini")

    # Usage: reservations kept open count at their estimate in spend (until --reservation-ttl).
    by_name = {k.name: k for k in keys}
    for name, model, tokens in (("prod-api", "gpt-5.5", 4200), ("prod-batch", "o5-mini", 2600),
                                ("ben-prod", "claude-opus-4.8", 1200), ("ops-canary", "gemini-3-pro", 900)):
        d = check(by_name[name].secret, model, tokens=tokens, cost=f"{SEEDED_SPEND[name]:.2f}", keep=True)
        assert d["allowed"], (name, d)

    return Seed(boot["organization"]["id"], boot["operator_token"], users, projects, keys)


# ---------------------------------------------------------------------------------------------
# Raw HTTP to the console: no redirects followed, no cookie jar, nothing hidden.

@dataclass
class Response:
    status: int
    headers: list  # [(name, value)]
    body: str

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def set_cookies(self) -> list:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def body_attr(self, attr: str) -> str | None:
        m = re.search(r"<body\b[^>]*\b" + re.escape(attr) + r"\s*=\s*[\"']([^\"']*)[\"']", self.body)
        return m.group(1) if m else None

    @property
    def page(self):
        return self.body_attr("data-page")

    @property
    def error(self):
        return self.body_attr("data-error")


def request(method: str, path: str, *, server: str = SERVER, cookie: str | None = None,
         form: dict | list | None = None, headers: dict | None = None) -> Response:
    u = urllib.parse.urlsplit(server)
    if u.scheme == "https":  # the tests' own self-signed certificate: not verified
        conn = httpclient.HTTPSConnection(u.hostname, u.port, timeout=15, context=ssl._create_unverified_context())
    else:
        conn = httpclient.HTTPConnection(u.hostname, u.port, timeout=15)
    h = dict(headers or {})
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form, doseq=True)
        h["Content-Type"] = "application/x-www-form-urlencoded"
    if cookie is not None:
        h["Cookie"] = cookie
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
    finally:
        conn.close()


def hidden_inputs(html: str, form_selector_id: str | None = None) -> dict:
    """name -> value of the hidden inputs in the page (or in form#id)."""
    if form_selector_id:
        m = re.search(r"<form\b[^>]*\bid\s*=\s*[\"']" + re.escape(form_selector_id) + r"[\"'].*?</form>", html, re.S)
        html = m.group(0) if m else ""
    out = {}
    for tag in re.findall(r"<input\b[^>]*>", html):
        if re.search(r"\btype\s*=\s*[\"']hidden[\"']", tag):
            n = re.search(r"\bname\s*=\s*[\"']([^\"']*)[\"']", tag)
            v = re.search(r"\bvalue\s*=\s*[\"']([^\"']*)[\"']", tag)
            if n:
                out[n.group(1)] = v.group(1) if v else ""
    return out


def cookie_attributes(set_cookie: str) -> tuple:
    """'a=b; Path=/x; HttpOnly' -> ('a', 'b', {'path': '/x', 'httponly': ''})"""
    parts = [p.strip() for p in set_cookie.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip()
    return name, value, attrs
