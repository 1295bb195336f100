"""bursar.litellm — bursar limits and budgets for a LiteLLM proxy (tested with litellm 1.110.2).

Enable it in the proxy's ``config.yaml``::

    litellm_settings:
      callbacks: bursar.litellm.handler            # CHECK / SETTLE / RELEASE
    general_settings:
      master_key: os.environ/LITELLM_MASTER_KEY
      custom_auth: bursar.litellm.user_api_key_auth  # sk-br-… keys, no LiteLLM database

and point it at bursard with ``BURSAR_URL`` (below). Callers use their bursar key as the bearer
token: ``Authorization: Bearer sk-br-…``. LiteLLM needs no database of its own keys.

What happens to one proxy request (hooks as observed with the real proxy, 1.110.2):

1. ``user_api_key_auth`` (custom auth) accepts any ``sk-br-`` bearer without a lookup (bursard is
   the judge) and the master key (for admin routes); anything else is 401 ``unknown_key``. It
   keeps the key's digest (SHA-256 of the secret) in process memory and gives LiteLLM a one-way
   token of it instead (``brk-…``): LiteLLM would otherwise log ``sha256(secret)`` — the digest,
   which can spend the key at bursard — as ``user_api_key_hash`` to every logging integration.
2. ``async_pre_call_hook`` (once per proxy request, before the router, so before any retry or
   fallback) sends CHECK: the requested model name, input tokens from ``litellm.token_counter``,
   ``max_tokens``/``max_completion_tokens`` or the default below, and the estimated cost from
   LiteLLM's price map (the dearest deployment of the model group), in nano-USD. A deny raises
   ``ProxyException``: the caller gets SPEC §8's status, an OpenAI-shaped body
   ``{"error": {"message", "type": <reason>, "param": null, "code": "<status>"}}`` and the
   rate-limit headers. An allow records the reservation under a random ticket in the request's
   metadata (``bursar_ticket``) and, when the key has content logging disabled, sets the
   request's ``turn_off_message_logging``.
3. Non-streaming success: ``async_post_call_success_hook`` (once per proxy request, after the
   router's retries/fallbacks) SETTLEs ``response.usage`` and LiteLLM's ``response_cost``.
4. Streaming success: ``async_log_success_event`` with ``stream=True`` (once, when the stream ends,
   also after a client disconnect, then with the partial usage LiteLLM counted) SETTLEs.
5. Failure: ``async_post_call_failure_hook`` (once per proxy request, after every retry and
   fallback failed) RELEASEs. Per-attempt failure events are ignored: a retry may still succeed.
   A stream whose upstream fails after content was streamed (the caller got part of the answer,
   then an error) is SETTLEd instead: the provider bills the prompt and the generated tokens.
   The amount is the stream's usage chunk if one came, else the prompt counted at CHECK plus the
   streamed text counted with ``litellm.token_counter``, at LiteLLM's prices.

Every path pops the ticket's reservation from one dict first, so each reservation is settled or
released exactly once whatever order the hooks come in. SETTLE/RELEASE run in background tasks
(the client retries them within ``BURSAR_SETTLE_TIMEOUT_MS``), so they add no latency.

Environment:

- ``BURSAR_URL``: ``tcp://host:port`` or ``unix:///path`` (default ``tcp://127.0.0.1:7420``)
- ``BURSAR_TLS_CA``, ``BURSAR_TLS_CERT``, ``BURSAR_TLS_KEY``: PEM files for a data plane that
  speaks mutual TLS (bursard's ``--listen-tls-*``): the CA of bursard's certificate, this gateway's
  certificate and its key; all three or none
- ``BURSAR_GATEWAY_CREDENTIAL``: a gateway credential's secret (``bgw_…``, issued by the operator,
  SPEC §6.5), presented on every connection to bursard (AUTH): the proxy then serves only the
  organizations it names (other organizations' keys are 401 ``unknown_key``). Required when
  bursard runs with ``--data-plane-auth required``. A refused credential makes requests 503
  ``bursar_unavailable``, logged as an error naming the refused credential
- ``BURSAR_TIMEOUT_MS``: CHECK deadline (default 250)
- ``BURSAR_SETTLE_TIMEOUT_MS``: SETTLE/RELEASE budget, retries included (default 2000)
- ``BURSAR_POOL_SIZE``: connections per event loop (default 2)
- ``BURSAR_FAIL_OPEN``: ``1`` admits requests when bursard cannot be reached (default ``0``: such
  requests get 503 ``bursar_unavailable``)
- ``BURSAR_DEFAULT_MAX_OUTPUT_TOKENS``: output tokens reserved when a request names no maximum
  (default 4096; never more than the model's own ``max_output_tokens`` in LiteLLM's map)
- ``BURSAR_MAX_OUTPUT_TOKENS``: JSON object of per-model defaults, e.g. ``{"gpt-4o-mini": 1024}``
- ``BURSAR_REDACT_KEY_INFO``: ``1`` (default) sets ``litellm.redact_user_api_key_info`` (drops
  ``user_api_key_*`` from the metadata some integrations send; the standard logging payload
  keeps them, hence the ``brk-`` token above).
"""

# The names LiteLLM's config refers to live in ``_litellm``, which imports LiteLLM: loaded on
# first use (PEP 562), so ``import bursar.litellm`` works wherever ``bursar`` is installed and
# only a proxy that names them needs LiteLLM.
_EXPORTS = ("BursarHandler", "Settings", "handler", "proxy_handler_instance", "user_api_key_auth")

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        from . import _litellm

        return getattr(_litellm, name)
    raise AttributeError(f"module 'bursar.litellm' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
