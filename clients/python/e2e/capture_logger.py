"""A LiteLLM callback for the e2e tests: writes what a logging integration would receive for
each success/failure event (messages, response, cost, metadata ticket) to $CAPTURE_LOG as JSON
lines, so a test can see whether content logging was turned off for a request."""
import json
import os
import time

from litellm.integrations.custom_logger import CustomLogger


def _write(kind, kwargs, response_obj):
    slo = kwargs.get("standard_logging_object") or {}
    md = (kwargs.get("litellm_params") or {}).get("metadata") or {}
    rec = {
        "t": time.time(), "event": kind, "call_id": kwargs.get("litellm_call_id"),
        "stream": bool(kwargs.get("stream")), "response_cost": kwargs.get("response_cost"),
        "kwargs_messages": kwargs.get("messages"), "slo_messages": slo.get("messages"),
        "slo_response": slo.get("response"), "ticket": md.get("bursar_ticket"),
        "client_disconnected": md.get("client_disconnected"),
        "user_api_key_hash": md.get("user_api_key_hash"),
        "slo_user_api_key_hash": (slo.get("metadata") or {}).get("user_api_key_hash"),
        "exception": kwargs.get("exception") and repr(kwargs.get("exception")),
    }
    path = os.environ.get("CAPTURE_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(rec, default=repr) + "\n")


class Capture(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        _write("success", kwargs, response_obj)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        _write("failure", kwargs, response_obj)


    async def async_post_call_failure_hook(self, request_data, original_exception, user_api_key_dict,
                                           traceback_str=None):
        _write("post_call_failure", {"litellm_call_id": request_data.get("litellm_call_id"),
                                     "litellm_params": {"metadata": request_data.get("metadata") or {}},
                                     "exception": repr(original_exception)}, None)


capture = Capture()
