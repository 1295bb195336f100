"""The implementation of ``bursar.litellm``, imported on first use of one of its names (it needs
LiteLLM; the ``bursar`` package itself needs nothing). See ``bursar/litellm.py``."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections import OrderedDict
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any, Dict, Optional, Tuple

try:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.proxy._types import LitellmUserRoles, ProxyException, UserAPIKeyAuth
except ImportError as e:  # the bursar client itself needs nothing; this module runs inside LiteLLM
    raise ImportError(f"bursar.litellm's handler runs inside a LiteLLM proxy and needs LiteLLM's proxy in "
                      f"the same environment (tested with litellm 1.110.2): {e}") from e

import bursar

__all__ = ["BursarHandler", "handler", "proxy_handler_instance", "user_api_key_auth", "Settings"]

log = logging.getLogger("bursar.litellm")

KEY_PREFIX = "sk-br-"
TICKET = "bursar_ticket"
MAX_MONEY = (1 << 53) - 1
PRICE_FROM_TABLE = -1  # a cost bursar computes from the organization's price table (SPEC §13.12)
MAX_U32 = (1 << 32) - 1
NANO = Decimal(1_000_000_000)
# Headers a caller could send to force LiteLLM to log content the key's owner turned off.
_UNREDACT_HEADERS = ("litellm-disable-message-redaction", "x-litellm-disable-message-redaction")
# Streams whose success event never came are settled at their last known usage after this long.
STREAM_GRACE_S = 30.0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: expected an integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {raw!r}")
    return value


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}: expected 0/1/true/false, got {raw!r}")


class Settings:
    """Configuration, read from the environment once (see the module docstring)."""

    def __init__(self, url: str = "tcp://127.0.0.1:7420", timeout_ms: int = 250,
                 settle_timeout_ms: int = 2000, pool_size: int = 2, fail_open: bool = False,
                 default_max_output_tokens: int = 4096,
                 max_output_tokens: Optional[Dict[str, int]] = None,
                 redact_key_info: bool = True, tls: Optional[Tuple[str, str, str]] = None,
                 credential: Optional[str] = None) -> None:
        self.url = url
        #: (ca, cert, key) PEM paths for a data plane that speaks mutual TLS; None: plain
        self.tls = tls
        #: the gateway credential's secret (bgw_…) presented on every connection (AUTH); None: none
        self.credential = credential
        self.timeout_ms = timeout_ms
        self.settle_timeout_ms = settle_timeout_ms
        self.pool_size = pool_size
        self.fail_open = fail_open
        self.default_max_output_tokens = default_max_output_tokens
        self.max_output_tokens = dict(max_output_tokens or {})
        self.redact_key_info = redact_key_info

    @classmethod
    def from_env(cls) -> "Settings":
        per_model: Dict[str, int] = {}
        raw = os.environ.get("BURSAR_MAX_OUTPUT_TOKENS")
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError as e:
                raise ValueError(f"BURSAR_MAX_OUTPUT_TOKENS: not JSON ({e})") from None
            if not isinstance(parsed, dict) or not all(
                    isinstance(k, str) and type(v) is int and 0 <= v <= MAX_U32 for k, v in parsed.items()):
                raise ValueError("BURSAR_MAX_OUTPUT_TOKENS: expected a JSON object of model -> token count")
            per_model = parsed
        files = [os.environ.get(n) or None for n in ("BURSAR_TLS_CA", "BURSAR_TLS_CERT", "BURSAR_TLS_KEY")]
        if any(files) and not all(files):
            raise ValueError("BURSAR_TLS_CA, BURSAR_TLS_CERT and BURSAR_TLS_KEY go together (mutual TLS): "
                             "set all three or none")
        credential = (os.environ.get("BURSAR_GATEWAY_CREDENTIAL") or "").strip() or None
        if credential is not None and not credential.startswith("bgw_"):
            raise ValueError("BURSAR_GATEWAY_CREDENTIAL: expected a gateway credential's secret (bgw_…)")
        return cls(
            tls=(files[0], files[1], files[2]) if all(files) else None,  # type: ignore[arg-type]
            credential=credential,
            url=os.environ.get("BURSAR_URL") or "tcp://127.0.0.1:7420",
            timeout_ms=_env_int("BURSAR_TIMEOUT_MS", 250),
            settle_timeout_ms=_env_int("BURSAR_SETTLE_TIMEOUT_MS", 2000),
            pool_size=_env_int("BURSAR_POOL_SIZE", 2) or 1,
            fail_open=_env_bool("BURSAR_FAIL_OPEN", False),
            default_max_output_tokens=_env_int("BURSAR_DEFAULT_MAX_OUTPUT_TOKENS", 4096),
            max_output_tokens=per_model,
            redact_key_info=_env_bool("BURSAR_REDACT_KEY_INFO", True),
        )


def usd_to_nano(usd: Any, *, ceil: bool = False) -> int:
    """USD (a float from LiteLLM) to integer nano-USD, clamped to the wire's 0 … 2⁵³−1."""
    if usd is None:
        return 0
    try:
        d = Decimal(repr(float(usd))) * NANO
    except (TypeError, ValueError):
        return 0
    if d != d or d <= 0:  # NaN or nothing
        return 0
    n = int(d.to_integral_value(rounding=ROUND_CEILING if ceil else ROUND_HALF_UP))
    return min(n, MAX_MONEY)


def _u32(n: Any) -> int:
    try:
        v = int(n or 0)
    except (TypeError, ValueError):
        return 0
    return max(0, min(v, MAX_U32))


class _Open:
    """One admitted request whose reservation is not settled or released yet."""

    __slots__ = ("reservation", "model", "input_tokens", "max_output_tokens", "estimated_cost",
                 "headers", "created", "stream", "usage", "streamed", "stream_failed")

    def __init__(self, reservation: int, model: str, input_tokens: int, max_output_tokens: int,
                 estimated_cost: int, headers: Dict[str, str]) -> None:
        self.reservation = reservation
        self.model = model
        self.input_tokens = input_tokens
        self.max_output_tokens = max_output_tokens
        self.estimated_cost = estimated_cost
        self.headers = headers
        self.created = time.monotonic()
        self.stream = False
        self.usage: Optional[Tuple[int, int, int]] = None  # last usage seen in a stream
        self.streamed: list = []  # the text of the content chunks passed to the caller
        self.stream_failed = False  # the upstream failed after the stream began


def _metadata(d: Any) -> Dict[str, Any]:
    """The metadata dict of a request (``data``) or of a logging event's kwargs."""
    if not isinstance(d, dict):
        return {}
    for holder in (d, d.get("litellm_params") or {}):
        if not isinstance(holder, dict):
            continue
        for name in ("metadata", "litellm_metadata"):
            m = holder.get(name)
            if isinstance(m, dict) and TICKET in m:
                return m
    return {}


def _ticket(d: Any) -> Optional[str]:
    t = _metadata(d).get(TICKET)
    return t if isinstance(t, str) else None


def _usage_of(response: Any) -> Tuple[int, int]:
    usage = getattr(response, "usage", None)
    if usage is None and isinstance(response, dict):
        usage = response.get("usage")
    if usage is None:
        return 0, 0
    get = (lambda k: usage.get(k)) if isinstance(usage, dict) else (lambda k: getattr(usage, k, None))
    prompt = get("prompt_tokens")
    if prompt is None:
        prompt = get("input_tokens")
    completion = get("completion_tokens")
    if completion is None:
        completion = get("output_tokens")
    return _u32(prompt), _u32(completion)


class BursarHandler(CustomLogger):
    """The LiteLLM callback. One instance per proxy process (``bursar.litellm.handler``)."""

    def __init__(self, settings: Optional[Settings] = None) -> None:
        super().__init__()
        self._settings = settings
        self._clients: Dict[asyncio.AbstractEventLoop, bursar.AsyncClient] = {}
        self._open: Dict[str, _Open] = {}
        # Rate-limit headers per ticket, for the response-headers hook, which LiteLLM calls after
        # the success hook (non-streaming) or before the stream (streaming); popped there.
        self._headers: Dict[str, Tuple[float, Dict[str, str]]] = {}
        self._tasks: set = set()
        self._prices: Dict[str, Tuple[Decimal, Decimal, Optional[int], str]] = {}
        #: counts, for tests and metrics: checks, denies, settles, releases, errors
        self.stats: Dict[str, int] = {"check": 0, "deny": 0, "settle": 0, "release": 0,
                                      "unavailable": 0, "settle_failed": 0, "late_settle": 0}

    # ------------------------------------------------------------------ configuration
    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    def _client(self) -> bursar.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            s = self.settings
            client = bursar.AsyncClient(s.url, pool_size=s.pool_size, timeout=s.timeout_ms / 1000,
                                        settle_timeout=s.settle_timeout_ms / 1000,
                                        fail_open=s.fail_open,
                                        tls=bursar.tls_context(*s.tls) if s.tls else None,
                                        credential=s.credential)
            self._clients[loop] = client
        return client

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ estimates
    def _deployments(self, model: str) -> list:
        try:
            from litellm.proxy.proxy_server import llm_router
        except Exception:  # pragma: no cover - only outside the proxy
            return []
        if llm_router is None:
            return []
        try:
            registry = getattr(llm_router, "registry", None)
            found = registry().deployments(model) if callable(registry) else llm_router.get_model_list(model_name=model)
        except Exception:
            found = None
        return list(found or [])

    def _price(self, model: str) -> Tuple[Decimal, Decimal, Optional[int], str]:
        """(input USD/token, output USD/token, the model's max output tokens, tokenizer model) for
        a model group: the dearest of its deployments, so the estimate is an upper bound."""
        cached = self._prices.get(model)
        if cached is not None:
            return cached
        pin = pout = Decimal(0)
        max_out: Optional[int] = None
        tokenizer_model = model
        candidates = []
        for dep in self._deployments(model):
            params = dep.get("litellm_params") or {}
            info = dep.get("model_info") or {}
            candidates.append((params.get("model") or model, params, info))
        if not candidates:
            candidates.append((model, {}, {}))
        for name, params, info in candidates:
            try:
                mi = litellm.get_model_info(model=name)
            except Exception:
                mi = {}
            i = params.get("input_cost_per_token") or info.get("input_cost_per_token") or mi.get("input_cost_per_token") or 0
            o = params.get("output_cost_per_token") or info.get("output_cost_per_token") or mi.get("output_cost_per_token") or 0
            pin = max(pin, Decimal(repr(float(i))))
            pout = max(pout, Decimal(repr(float(o))))
            mo = info.get("max_output_tokens") or mi.get("max_output_tokens")
            if isinstance(mo, int) and mo > 0:
                max_out = mo if max_out is None else max(max_out, mo)
            if tokenizer_model == model:
                tokenizer_model = name
        result = (pin, pout, max_out, tokenizer_model)
        self._prices[model] = result
        return result

    def _estimate(self, model: str, data: dict) -> Tuple[int, int, int]:
        """(input tokens, max output tokens, estimated cost in nano-USD) for a request."""
        pin, pout, model_max_out, tokenizer_model = self._price(model)
        try:
            if data.get("messages") is not None:
                tokens = litellm.token_counter(model=tokenizer_model, messages=data["messages"],
                                               tools=data.get("tools"))
            else:
                text = data.get("prompt", data.get("input"))
                tokens = litellm.token_counter(model=tokenizer_model, text=text) if text else 0
        except Exception as e:  # a tokenizer problem must not block the request
            log.warning("bursar: token count failed for %s (%s); counting characters / 4", model, e)
            tokens = len(json.dumps(data.get("messages") or data.get("prompt") or data.get("input") or "")) // 4
        input_tokens = _u32(tokens)
        requested = data.get("max_completion_tokens") or data.get("max_tokens") or data.get("max_output_tokens")
        if requested is not None:
            max_out = _u32(requested)
        else:
            s = self.settings
            max_out = s.max_output_tokens.get(model, s.default_max_output_tokens)
            if model_max_out is not None:
                max_out = min(max_out, model_max_out)
        if pin == 0 and pout == 0:
            # LiteLLM knows no price for it: bursar prices it from the organization's price
            # table, or refuses it (price_unknown) under a budget. Never silently free.
            return input_tokens, _u32(max_out), PRICE_FROM_TABLE
        cost = (pin * input_tokens + pout * max_out) * NANO
        estimated = min(int(cost.to_integral_value(rounding=ROUND_CEILING)), MAX_MONEY)
        return input_tokens, _u32(max_out), estimated

    # ------------------------------------------------------------------ CHECK
    async def async_pre_call_hook(self, user_api_key_dict: UserAPIKeyAuth, cache: Any, data: dict,
                                  call_type: Any) -> dict:
        for name in ("metadata", "litellm_metadata"):
            m = data.get(name)
            if isinstance(m, dict):
                m.pop(TICKET, None)  # never trust a caller's ticket
        # Routes whose own API has a "metadata" field (/v1/responses, /v1/messages) carry
        # LiteLLM's in "litellm_metadata"; use whichever LiteLLM uses for this request.
        field = "litellm_metadata" if isinstance(data.get("litellm_metadata"), dict) else "metadata"
        meta = data.get(field)
        if not isinstance(meta, dict):
            meta = data[field] = {}
        model = data.get("model")
        if not isinstance(model, str) or not model:
            return data  # nothing to price (e.g. a file or batch route): not a model call
        digest = _digest(user_api_key_dict)
        if digest is None:
            raise ProxyException(message="bursar: a bursar key (sk-br-…) is required",
                                 type="unknown_key", param=None, code=401)
        input_tokens, max_out, estimated = self._estimate(model, data)
        self.stats["check"] += 1
        try:
            result = await self._client().check(digest=digest, model=model, input_tokens=input_tokens,
                                                max_output_tokens=max_out, estimated_cost=estimated)
        except ValueError as e:  # e.g. a model name over 64 bytes: no key could allow it
            raise ProxyException(message=f"bursar: {e}", type="invalid_request_error",
                                 param="model", code=400) from None
        except bursar.BursarError as e:
            self.stats["unavailable"] += 1
            if isinstance(e, bursar.Unauthorized):  # a configuration error: BURSAR_GATEWAY_CREDENTIAL
                log.error("bursar: CHECK failed: %s", e)
            else:
                log.warning("bursar: CHECK failed: %s", e)
            raise ProxyException(message="bursar: the budget service is unavailable",
                                 type="bursar_unavailable", param=None, code=503,
                                 headers={"Retry-After": "1"}) from None
        headers = bursar.rate_limit_headers(result)
        if not result.allowed:
            self.stats["deny"] += 1
            reason = result.reason
            raise ProxyException(message=f"bursar: {_DENY_TEXT.get(reason.name_str, reason.name_str)}",
                                 type=reason.name_str, param=None, code=reason.http_status,
                                 headers=headers)
        if result.reservation:
            ticket = secrets.token_hex(16)
            self._open[ticket] = _Open(result.reservation, model, input_tokens, max_out, estimated, headers)
            meta[TICKET] = ticket
            if headers:
                self._remember_headers(ticket, headers)
        if result.content_logging_disabled:
            # LiteLLM reads this per-request switch into the request's logging object when it
            # creates it, which is before this hook: set it there too (it is the same dict that
            # the success/failure handlers consult when they redact).
            data["turn_off_message_logging"] = True
            logging_obj = data.get("litellm_logging_obj")
            params = getattr(logging_obj, "standard_callback_dynamic_params", None)
            if isinstance(params, dict):
                params["turn_off_message_logging"] = True
            elif logging_obj is not None:
                log.error("bursar: cannot turn content logging off for a request: LiteLLM's logging "
                          "object has no standard_callback_dynamic_params")
                raise ProxyException(message="bursar: content logging cannot be turned off for this key",
                                     type="bursar_unavailable", param=None, code=503)
            for holder in (meta.get("headers"), (data.get("proxy_server_request") or {}).get("headers")):
                if isinstance(holder, dict):
                    for h in list(holder):
                        if h.lower() in _UNREDACT_HEADERS:
                            holder.pop(h, None)
        return data

    # ------------------------------------------------------------------ SETTLE / RELEASE
    def _take(self, ticket: Optional[str]) -> Optional[_Open]:
        return self._open.pop(ticket, None) if ticket else None

    async def _settle(self, entry: _Open, input_tokens: int, output_tokens: int, cost: int) -> None:
        if entry.estimated_cost == PRICE_FROM_TABLE and cost <= 0:
            cost = PRICE_FROM_TABLE  # priced by bursar at the prices its CHECK used
        try:
            r = await self._client().settle(entry.reservation, input_tokens=input_tokens,
                                            output_tokens=output_tokens, cost=cost)
            self.stats["settle"] += 1
            if not r.ok:
                log.warning("bursar: SETTLE of %s answered %s", entry.model, r.status.name_str)
        except Exception as e:
            self.stats["settle_failed"] += 1
            log.error("bursar: SETTLE failed (%s); the reservation keeps its estimate until its TTL", e)

    async def _release(self, entry: _Open) -> None:
        try:
            await self._client().release(entry.reservation)
            self.stats["release"] += 1
        except Exception as e:
            self.stats["settle_failed"] += 1
            log.error("bursar: RELEASE failed (%s); the reservation keeps its estimate until its TTL", e)

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: UserAPIKeyAuth,
                                           response: Any) -> Any:
        entry = self._take(_ticket(data))
        if entry is not None:
            hidden = getattr(response, "_hidden_params", None) or {}
            cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
            prompt, completion = _usage_of(response)
            if cost is None:
                try:
                    cost = litellm.completion_cost(completion_response=response)
                except Exception:
                    cost = None
            nano = usd_to_nano(cost) if cost is not None else entry.estimated_cost
            self._spawn(self._settle(entry, prompt, completion, nano))
        return response

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        # Non-streaming requests were settled in async_post_call_success_hook; this settles
        # streams (the event comes once the stream ended, also after a client disconnect).
        ticket = _ticket(kwargs)
        entry = self._open.get(ticket) if ticket else None
        if entry is None or not (kwargs.get("stream") or entry.stream):
            return
        entry = self._take(ticket)
        if entry is None:
            return
        prompt, completion = _usage_of(response_obj)
        cost = kwargs.get("response_cost")
        if cost is None:
            slo = kwargs.get("standard_logging_object") or {}
            cost = slo.get("response_cost") if isinstance(slo, dict) else None
        nano = usd_to_nano(cost) if cost is not None else entry.estimated_cost
        await self._settle(entry, prompt, completion, nano)

    async def async_post_call_failure_hook(self, request_data: dict, original_exception: Exception,
                                           user_api_key_dict: UserAPIKeyAuth,
                                           traceback_str: Optional[str] = None) -> Any:
        entry = self._take(_ticket(request_data))
        if entry is None:
            return None
        if entry.stream_failed and (entry.usage is not None or entry.streamed):
            # The upstream failed after part of the answer was streamed to the caller: the
            # provider generated (and bills) those tokens and the prompt, so SETTLE what was
            # streamed rather than RELEASE (a failure before any content RELEASEs).
            p, c, nano = self._streamed_usage(entry)
            self._spawn(self._settle(entry, p, c, nano))
        else:
            self._spawn(self._release(entry))
        return None

    def _streamed_usage(self, entry: _Open) -> Tuple[int, int, int]:
        """(input tokens, output tokens, cost in nano-USD) of a stream that broke off: the
        provider's usage when a usage chunk came, else the prompt as counted at CHECK and the
        streamed text counted and priced the way LiteLLM prices a stream without usage."""
        if entry.usage is not None and entry.usage[2] > 0:
            return entry.usage
        pin, pout, _, tokenizer_model = self._price(entry.model)
        text = "".join(entry.streamed)
        try:
            out = litellm.token_counter(model=tokenizer_model, text=text, count_response_tokens=True)
        except Exception:
            out = len(entry.streamed)
        out = min(_u32(out), entry.max_output_tokens or MAX_U32)
        cost = (pin * entry.input_tokens + pout * out) * NANO
        return entry.input_tokens, out, min(int(cost.to_integral_value(rounding=ROUND_HALF_UP)), MAX_MONEY)

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict: UserAPIKeyAuth,
                                                      response: Any, request_data: dict):
        ticket = _ticket(request_data)
        entry = self._open.get(ticket) if ticket else None
        if entry is not None:
            entry.stream = True
        try:
            async for item in response:
                if entry is not None:
                    if getattr(item, "usage", None) is not None:
                        p, c = _usage_of(item)
                        entry.usage = (p, c, usd_to_nano(getattr(item.usage, "cost", None)))
                    for choice in getattr(item, "choices", None) or ():
                        content = getattr(getattr(choice, "delta", None), "content", None)
                        if isinstance(content, str) and content:
                            entry.streamed.append(content)
                yield item
        except Exception:
            # The upstream failed mid-stream (a client disconnect is CancelledError/GeneratorExit,
            # not this): the failure hook that follows settles what was streamed.
            if entry is not None:
                entry.stream_failed = True
            raise
        finally:
            if entry is not None and ticket in self._open:
                # The success event normally settles the stream moments later; if it never
                # comes (an error inside LiteLLM's logging), settle what was seen.
                loop = asyncio.get_running_loop()
                loop.call_later(STREAM_GRACE_S, self._settle_stale_stream, ticket)

    def _settle_stale_stream(self, ticket: str) -> None:
        entry = self._take(ticket)
        if entry is None:
            return
        self.stats["late_settle"] += 1
        if entry.usage is not None and entry.usage[2] > 0:
            p, c, nano = entry.usage
        else:  # nothing known: keep the estimate (an over-count, never an over-admission)
            p, c, nano = entry.input_tokens, entry.max_output_tokens, entry.estimated_cost
        log.warning("bursar: no success event for a stream of %s after %.0f s; settling what was seen",
                    entry.model, STREAM_GRACE_S)
        self._spawn(self._settle(entry, p, c, nano))

    async def async_post_call_response_headers_hook(self, data: dict, user_api_key_dict: UserAPIKeyAuth,
                                                    response: Any, request_headers: Any = None,
                                                    litellm_call_info: Any = None) -> Optional[Dict[str, str]]:
        ticket = _ticket(data)
        got = self._headers.pop(ticket, None) if ticket else None
        return dict(got[1]) if got is not None else None

    def _remember_headers(self, ticket: str, headers: Dict[str, str]) -> None:
        now = time.monotonic()
        self._headers[ticket] = (now, headers)
        if len(self._headers) > 10_000:  # requests whose headers hook never ran (oldest first)
            for t in list(self._headers)[:1000]:
                if now - self._headers[t][0] > 60:
                    self._headers.pop(t, None)

    # ------------------------------------------------------------------ introspection
    def open_reservations(self) -> int:
        return len(self._open)


_DENY_TEXT = {
    "unknown_key": "unknown API key",
    "key_revoked": "this API key was revoked",
    "key_expired": "this API key has expired",
    "creator_lost_access": "the key's owner no longer has access to its project",
    "project_inactive": "the key's project is archived or deleted",
    "org_suspended": "the organization is suspended",
    "model_not_allowed": "this key may not use this model",
    "key_rpm": "the key's requests-per-minute limit is reached",
    "key_tpm": "the key's tokens-per-minute limit is reached",
    "project_rpm": "the project's requests-per-minute limit is reached",
    "project_tpm": "the project's tokens-per-minute limit is reached",
    "key_budget": "the key's budget for this period is spent",
    "project_budget": "the project's monthly budget is spent",
    "org_credits": "the organization's credits do not cover this request",
    "request_too_large": "the request exceeds a tokens-per-minute limit outright",
    "store_unavailable": "the budget store is unavailable; retry with backoff",
    "overloaded": "the budget service is overloaded; retry later",
    "key_lookups_throttled": "too many unknown keys; retry later",
    "price_unknown": "this model has no price, and a budget applies to this key",
}


# Key digests of the keys user_api_key_auth accepted, by the public token it gave LiteLLM instead.
# LiteLLM hands the identity's token to every logging integration (user_api_key_hash) and
# redact_user_api_key_info does not remove it there, so the token must not be the digest: a
# digest can spend the key's limits at bursard's data plane. Auth and the pre-call hook of one
# request run in the same process moments apart, so a bounded map is enough.
_DIGESTS: "OrderedDict[str, bytes]" = OrderedDict()
_DIGESTS_MAX = 65536
_TOKEN_PREFIX = "brk-"


def public_token(digest: bytes) -> str:
    """The identifier LiteLLM (and its logs) see for a bursar key: one-way from the digest, stable
    per key, and not a LiteLLM ``sk-`` key (LiteLLM would hash it again)."""
    return _TOKEN_PREFIX + hashlib.sha256(b"bursar.litellm\x00" + digest).hexdigest()


def _digest(user: UserAPIKeyAuth) -> Optional[bytes]:
    """bursar's key digest (SHA-256 of the secret) for the identity user_api_key_auth made."""
    token = getattr(user, "token", None) or getattr(user, "api_key", None)
    if not isinstance(token, str):
        return None
    digest = _DIGESTS.get(token)
    if digest is not None:
        _DIGESTS.move_to_end(token)
    return digest


async def user_api_key_auth(request: Any, api_key: str) -> UserAPIKeyAuth:
    """LiteLLM custom auth (``general_settings.custom_auth``): bursar keys pass through to the
    CHECK in the pre-call hook, which is where they are judged; the master key keeps the admin
    routes (its model calls are CHECKed like any key's, and bursard does not know it)."""
    key = api_key or ""
    if key.startswith("Bearer "):
        key = key[len("Bearer "):]
    if key.startswith(KEY_PREFIX):
        digest = hashlib.sha256(key.encode()).digest()
        token = public_token(digest)
        _DIGESTS[token] = digest
        _DIGESTS.move_to_end(token)
        while len(_DIGESTS) > _DIGESTS_MAX:
            _DIGESTS.popitem(last=False)
        # key_alias: bursar's own display form of a key (its last four characters)
        return UserAPIKeyAuth(api_key=token, key_alias=KEY_PREFIX + "\u2026" + key[-4:])
    try:
        from litellm.proxy.proxy_server import master_key
    except Exception:  # pragma: no cover
        master_key = None
    if master_key and key and hmac.compare_digest(key.encode(), str(master_key).encode()):
        return UserAPIKeyAuth(api_key=key, user_role=LitellmUserRoles.PROXY_ADMIN)
    raise ProxyException(message="bursar: a bursar key (sk-br-…) is required", type="unknown_key",
                         param=None, code=401, headers={"WWW-Authenticate": "Bearer"})


if _env_bool("BURSAR_REDACT_KEY_INFO", True):
    # Set at import, before LiteLLM builds its router from the settings it has then.
    litellm.redact_user_api_key_info = True

# The environment is read now, so a bad value stops the proxy at start-up rather than failing
# requests later.
handler = BursarHandler(Settings.from_env())
proxy_handler_instance = handler
