"""The overspend LiteLLM users report, side by side: two LiteLLM proxy processes × 50 concurrent
clients on one key with a small budget and a TPM limit.

- **bursar**: both proxies run bursar.litellm against one bursard. Asserted: the key's spend in
  bursar ≤ its budget, and the tokens of the admitted requests ≤ SPEC §13.2's bucket contract
  ``R + R·t/60`` (R = the TPM limit, t = the seconds the load lasted).
- **litellm-native**: two proxies without bursar, with LiteLLM's own key limits (custom auth
  returning ``max_budget``/``tpm_limit``/``rpm_limit``, ``custom_auth_run_common_checks``, one
  shared Redis). The same load; its numbers are printed, not asserted. Then once more with a key
  without ``max_budget``, to see LiteLLM's TPM limiter on its own.
"""
from __future__ import annotations

import asyncio
import time

import httpx

from conftest import NATIVE_LIMITS
from test_litellm import MSG, nano

CLIENTS_PER_PROXY = 50
REQUESTS_PER_CLIENT = 2
MAX_TOKENS = 50  # each request reserves ~60 tokens and ~31,500 nano-USD; it uses 14 and 5,700
BUDGET_USD = NATIVE_LIMITS["NATIVE_MAX_BUDGET"]
TPM = int(NATIVE_LIMITS["NATIVE_TPM"])
RPM = int(NATIVE_LIMITS["NATIVE_RPM"])


def _load(proxies, key: str) -> dict:
    """CLIENTS_PER_PROXY clients on each proxy at once, each sending REQUESTS_PER_CLIENT requests
    one after another. Returns what the callers saw."""
    async def client(c: httpx.AsyncClient, out: list):
        for _ in range(REQUESTS_PER_CLIENT):
            r = await c.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG,
                                                            "max_tokens": MAX_TOKENS})
            body = r.json()
            out.append((r.status_code, r.headers.get("x-litellm-response-cost"),
                        body.get("usage") if r.status_code == 200 else None,
                        None if r.status_code == 200 else (body.get("error") or {}).get("type")))

    async def run():
        out: list = []
        clients = [httpx.AsyncClient(base_url=p.base, headers={"Authorization": f"Bearer {key}"}, timeout=300,
                                     limits=httpx.Limits(max_connections=CLIENTS_PER_PROXY)) for p in proxies]
        start = time.monotonic()
        try:
            await asyncio.gather(*(client(c, out) for c in clients for _ in range(CLIENTS_PER_PROXY)))
        finally:
            for c in clients:
                await c.aclose()
        return out, time.monotonic() - start

    out, seconds = asyncio.run(run())
    ok = [r for r in out if r[0] == 200]
    denied: dict = {}
    for status, _, _, typ in out:
        if status != 200:
            denied[f"{status} {typ}"] = denied.get(f"{status} {typ}", 0) + 1
    return {"sent": len(out), "admitted": len(ok), "denied": denied, "seconds": seconds,
            "tokens": sum(u["total_tokens"] for _, _, u, _ in ok),
            "cost_nusd": sum(nano(float(c)) for _, c, _, _ in ok if c is not None)}


def _line(side: str, spend: int, budget: int, r: dict) -> str:
    bound = TPM + TPM * r["seconds"] / 60
    return (f"{side}: admitted spend {spend} / budget {budget} nano-USD; admitted tokens {r['tokens']} / "
            f"bound {bound:.0f} (TPM {TPM}, {r['seconds']:.1f} s); {r['admitted']} of {r['sent']} requests "
            f"admitted, denied {r['denied']}")


def test_overspend_bursar_vs_litellm_native(proxy, proxy_b, native_proxies, bursar_server, capsys):
    budget = nano(BUDGET_USD)
    # --- bursar: two proxies, one bursard
    key, key_id = bursar_server.key("--budget", f"${BUDGET_USD}", "--tpm", str(TPM), "--rpm", str(RPM))
    b = _load([proxy, proxy_b], key)
    usage = bursar_server.wait_settled(key_id, timeout=60)
    assert usage["reserved"]["count"] == 0
    spend = usage["spend"]["spend_nusd"]
    assert usage["spend"]["budget_nusd"] == budget
    bursar_line = _line("bursar", spend, budget, b)
    # --- LiteLLM's own limits: two proxies, one Redis
    n = _load(native_proxies, "sk-native-overspend-" + str(time.monotonic_ns()))
    native_line = _line("litellm-native", n["cost_nusd"], budget, n)
    # LiteLLM's TPM limiter alone (the budget check above may refuse first): same key limits
    # without max_budget
    t = _load(native_proxies, "sk-native-tpm-overspend-" + str(time.monotonic_ns()))
    tpm_line = _line("litellm-native (TPM/RPM only, no max_budget)", t["cost_nusd"], budget, t)
    with capsys.disabled():
        print("\n" + bursar_line + "\n" + native_line + "\n" + tpm_line)
    # bursar's side, asserted
    assert b["admitted"] > 0
    assert set(b["denied"]) <= {"402 key_budget", "429 key_tpm"}, b["denied"]
    assert spend <= budget, bursar_line
    assert spend == b["cost_nusd"], (spend, b["cost_nusd"])  # bursar's spend = LiteLLM's costs
    assert b["tokens"] <= TPM + TPM * b["seconds"] / 60, bursar_line
