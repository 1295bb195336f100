"""LiteLLM custom auth for the *native* side of the overspend comparison (no bursar): LiteLLM's own
key limits, given the way LiteLLM runs without its Postgres/Prisma database — a custom auth that
returns the key's ``max_budget`` / ``tpm_limit`` / ``rpm_limit`` — with
``general_settings.custom_auth_run_common_checks: true`` so LiteLLM's common checks (key budget,
budget reservation) run on it, and ``REDIS_HOST``/``REDIS_PORT`` so both proxies share LiteLLM's
spend counters and rate-limit counters in one Redis.

Environment: ``NATIVE_MAX_BUDGET`` (USD), ``NATIVE_TPM``, ``NATIVE_RPM``; every ``sk-native-…``
bearer is accepted with those limits (``sk-native-tpm-…``: without the budget) (``api_key`` → LiteLLM's token ``sha256(key)``, the same in
both proxies, so they share the key's counters).
"""
import hmac
import os

from litellm.proxy._types import LitellmUserRoles, ProxyException, UserAPIKeyAuth


async def user_api_key_auth(request, api_key: str) -> UserAPIKeyAuth:
    key = api_key or ""
    if key.startswith("Bearer "):
        key = key[len("Bearer "):]
    if key.startswith("sk-native-"):
        # sk-native-tpm-…: the rate limits only (no max_budget), to see LiteLLM's TPM limiter alone
        budget = None if key.startswith("sk-native-tpm-") else float(os.environ["NATIVE_MAX_BUDGET"])
        return UserAPIKeyAuth(api_key=key, key_alias="native", max_budget=budget,
                              tpm_limit=int(os.environ["NATIVE_TPM"]),
                              rpm_limit=int(os.environ["NATIVE_RPM"]))
    master = os.environ.get("LITELLM_MASTER_KEY", "")
    if master and hmac.compare_digest(key.encode(), master.encode()):
        return UserAPIKeyAuth(api_key=key, user_role=LitellmUserRoles.PROXY_ADMIN)
    raise ProxyException(message="unknown key", type="auth_error", param=None, code=401)
