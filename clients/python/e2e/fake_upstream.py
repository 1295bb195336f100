"""A fake OpenAI-compatible upstream for the LiteLLM end-to-end tests. Standard library only.

    python fake_upstream.py --port 0 --port-file PATH

POST {prefix}/v1/chat/completions answers deterministically:

- ``usage.prompt_tokens`` = the number of whitespace-separated words in every message's text
  content, plus 3 per message (so a test can predict it);
- ``usage.completion_tokens`` = ``min(max_tokens or max_completion_tokens, 8)``, 8 when neither
  is given; the answer's text is that many ``"tok "``;
- ``stream: true`` sends one SSE chunk per completion token and then, when
  ``stream_options.include_usage`` is true, a final chunk with ``choices: []`` and the usage,
  then ``data: [DONE]``.

Behaviour is chosen by a path prefix (put it in LiteLLM's ``api_base``) or the model name:

- prefix ``/fail`` or a model named ``fail-*``: HTTP 500 with an OpenAI error body;
- prefix ``/slow`` or a model named ``slow-*``: a stream sends one chunk every 0.25 s (a
  non-streaming answer waits 0.25 s per token), so a client can disconnect mid-stream;
- prefix ``/break`` or a model named ``break-*``: a stream sends ``BREAK_AFTER`` (3) content
  chunks, then an OpenAI error event (``data: {"error": …}``, what OpenAI sends when a stream
  fails) and closes, without usage or ``[DONE]``; a non-streaming answer is HTTP 500;
- prefix ``/plain`` (or anything else): the normal answer.

GET /_log returns every request seen so far as JSON lines objects
``{"path", "model", "stream", "completion_tokens", "prompt_tokens", "outcome"}`` where outcome
is ``ok``, ``failed``, ``disconnected`` (the client went away mid-stream) or ``streaming``;
POST /_reset clears it. GET /health answers 200.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_log: list[dict] = []
_lock = threading.Lock()
SLOW_DELAY = 0.25
DEFAULT_COMPLETION_TOKENS = 8
BREAK_AFTER = 3


def _words(content) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return sum(len(p.get("text", "").split()) for p in content if isinstance(p, dict))
    return 0


def usage_for(body: dict) -> tuple[int, int]:
    messages = body.get("messages") or []
    prompt = sum(_words(m.get("content")) + 3 for m in messages if isinstance(m, dict))
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    completion = min(int(cap), DEFAULT_COMPLETION_TOKENS) if cap else DEFAULT_COMPLETION_TOKENS
    return prompt, completion


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-upstream/1"
    # Headers and body go out as separate writes: with Nagle's algorithm the body would wait for
    # the gateway's delayed ACK (40 ms on Linux), and every latency measured through it with it.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet
        if os.environ.get("FAKE_UPSTREAM_VERBOSE"):
            super().log_message(fmt, *args)

    def _json(self, status: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self._json(200, {"ok": True})
        if self.path == "/_log":
            with _lock:
                return self._json(200, list(_log))
        if self.path.endswith("/models"):
            return self._json(200, {"object": "list", "data": []})
        self._json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/_reset":
            with _lock:
                _log.clear()
            return self._json(200, {"ok": True})
        if not self.path.endswith("/chat/completions"):
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._json(400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
        model = str(body.get("model", ""))
        prefix = self.path[: -len("/chat/completions")]
        mode = "plain"
        if prefix.startswith("/fail") or model.startswith("fail-"):
            mode = "fail"
        elif prefix.startswith("/slow") or model.startswith("slow-"):
            mode = "slow"
        elif prefix.startswith("/break") or model.startswith("break-"):
            mode = "break"
        prompt, completion = usage_for(body)
        stream = bool(body.get("stream"))
        entry = {"path": self.path, "model": model, "stream": stream, "prompt_tokens": prompt,
                 "completion_tokens": completion, "outcome": "streaming",
                 # What a gateway in front told the provider (Envoy with bursar's ext_authz: the reservation).
                 "reservation": self.headers.get("x-bursar-reservation")}
        with _lock:
            _log.append(entry)
        if mode == "fail" or (mode == "break" and not stream):
            entry["outcome"] = "failed"
            return self._json(500, {"error": {"message": "fake upstream failure", "type": "server_error",
                                              "code": "fake_failure"}})
        rid = f"chatcmpl-fake{len(_log)}"
        created = int(time.time())
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}
        if not stream:
            if mode == "slow":
                time.sleep(SLOW_DELAY * completion)
            entry["outcome"] = "ok"
            return self._json(200, {
                "id": rid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop" if completion < 8 else "length",
                             "message": {"role": "assistant", "content": "tok " * completion}}],
                "usage": usage,
            })
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def chunk(delta, finish=None, with_usage=None, choices=True):
            obj = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
            if with_usage is not None:
                obj["usage"] = with_usage
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

        try:
            chunk({"role": "assistant", "content": ""})
            for i in range(completion):
                if mode == "slow":
                    time.sleep(SLOW_DELAY)
                if mode == "break" and i == BREAK_AFTER:
                    err = {"error": {"message": "fake upstream failed mid-stream", "type": "server_error",
                                     "code": "fake_mid_stream_failure"}}
                    self.wfile.write(b"data: " + json.dumps(err).encode() + b"\n\n")
                    self.wfile.flush()
                    entry["outcome"] = "broken"
                    return
                chunk({"content": "tok "})
            chunk({}, finish="stop" if completion < 8 else "length")
            if include_usage:
                chunk(None, with_usage=usage, choices=False)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            entry["outcome"] = "ok"
        except (BrokenPipeError, ConnectionResetError):
            entry["outcome"] = "disconnected"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    class Server(ThreadingHTTPServer):
        # Gateways in front open many connections at once (the two-Envoy concurrency run: 100
        # clients); the default listen backlog of 5 would refuse some of them.
        request_queue_size = 1024
    srv = Server((args.host, args.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    print(f"fake upstream listening on {args.host}:{port}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
