"""A scripted OpenAI-compatible chat server on 127.0.0.1 for testing the client's failure handling.

Each chat request takes the next behaviour from the script (then `default`):
  "ok"         a JSON reply (`content`), with usage, and logprobs when asked for
  "500"        HTTP 500
  "429"        HTTP 429 with Retry-After: 0
  "400"        HTTP 400, a request the server will not take (not retried, not fatal)
  "401"        HTTP 401, OpenAI's "invalid_api_key" error, echoing the key it was sent
  "403"        HTTP 403, the key may not use the model
  "404"        HTTP 404, OpenAI's "model_not_found" error
  "hang"       no answer for `hang_s` seconds (past the client's timeout), then a late reply
  "malformed"  content that holds no JSON
  "schema"     JSON without the required "hours"
  "empty"      empty content
  "garbage"    HTTP 200 whose body is not JSON at all
`content` is the "ok" reply, or a function of the request body that makes it: a string, or a scored
reply, a list of (token, {alternative: logprob}) pairs whose tokens make the text and whose
alternatives are the token's top log-probabilities (the token itself first). Chat replies end with
`finish_reason` ("stop"; "length" pretends the reply hit max_tokens); `delay_s` delays "ok",
"malformed", "schema" and "empty". Every request is recorded (path, headers with lower-case names,
parsed body). The server stops itself after `lifetime_s` seconds or `max_requests` requests
(dropping requests that still arrive on open connections), and only ever binds the loopback address.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from typing import Any

from llm_economist.llm import LLMSettings

BEHAVIOURS = ("ok", "500", "429", "400", "401", "403", "404", "hang", "malformed", "schema", "empty", "garbage")
OK_CONTENT = '{"hours": 40, "reason": "steady week"}'
MALFORMED_CONTENT = "I think I will work about forty hours."
SCHEMA_CONTENT = '{"reason": "no hours given"}'
CHAT_PATH = "/v1/chat/completions"
KEY = "sk-test-0123456789abcdefSECRET"  # a key-shaped secret that must never be echoed


def fault_settings(*urls: str, **kw) -> LLMSettings:
    """Client settings for talking to fault servers: short timeouts and backoff, a fixed seed."""
    base = dict(base_urls=urls, model="fault-model", timeout_s=0.5, max_retries=3, backoff_s=0.01, seed=7)
    base.update(kw)
    return LLMSettings(**base)


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    behaviour: str


class FaultServer:
    def __init__(
        self,
        script: list[str] | tuple[str, ...] = (),
        default: str = "ok",
        content: str | Callable[[dict], str | list[tuple[str, dict[str, float]]]] = OK_CONTENT,
        delay_s: float = 0.0,
        hang_s: float = 3.0,
        lifetime_s: float = 120.0,
        max_requests: int = 1000,
        finish_reason: str = "stop",
    ) -> None:
        for b in (*script, default):
            if b not in BEHAVIOURS:
                raise ValueError(f"behaviour {b!r} is not one of {BEHAVIOURS}")
        self.script = list(script)
        self.default = default
        self.content = content
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.finish_reason = finish_reason
        self.max_requests = max_requests
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def reply(self, body: dict) -> str | list[tuple[str, dict[str, float]]]:
        """The "ok" content: fixed, or made from the request by a callable."""
        return self.content(body) if callable(self.content) else self.content

    @property
    def chat_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == CHAT_PATH]

    def _next(self, path: str, headers: dict[str, str], body: Any) -> str:
        with self._lock:
            if path != CHAT_PATH:
                behaviour = "unrouted"
            else:
                behaviour = self.script.pop(0) if self.script else self.default
            self.requests.append(Recorded(path, headers, body, behaviour))
            if len(self.requests) >= self.max_requests:
                threading.Thread(target=self.stop, daemon=True).start()
            return behaviour

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server._next(self.path, {k.lower(): v for k, v in self.headers.items()}, None)
                if self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": "fault-model", "object": "model", "owned_by": "tests"}]})
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if server._stopping.is_set():  # a stopped server drops its kept-alive connections unanswered
                    self.close_connection = True
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                behaviour = server._next(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                server._enter()
                try:
                    self._respond(behaviour, body)
                finally:
                    server._leave()

            def _respond(self, behaviour: str, body: Any) -> None:
                if behaviour == "unrouted":
                    self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                elif behaviour == "500":
                    self._json(500, {"error": {"message": "scripted internal error", "type": "server_error"}})
                elif behaviour == "429":
                    self._json(429, {"error": {"message": "scripted rate limit", "type": "rate_limit"}}, {"Retry-After": "0"})
                elif behaviour == "400":
                    self._json(400, _openai_error("scripted bad request", "invalid_value"))
                elif behaviour == "401":
                    key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    self._json(401, _openai_error(f"Incorrect API key provided: {key}.", "invalid_api_key"))
                elif behaviour == "403":
                    message = f"Project does not have access to model {body.get('model')}."
                    self._json(403, _openai_error(message, "model_not_allowed"))
                elif behaviour == "404":
                    self._json(404, _openai_error(f"The model `{body.get('model')}` does not exist.", "model_not_found"))
                elif behaviour == "garbage":
                    self._raw(200, b"<html>502 Bad Gateway</html>")
                elif behaviour == "hang":
                    server._stopping.wait(server.hang_s)
                    self._chat(body, server.reply(body))
                else:
                    if server.delay_s:
                        server._stopping.wait(server.delay_s)
                    content = {
                        "ok": server.reply(body), "malformed": MALFORMED_CONTENT, "schema": SCHEMA_CONTENT, "empty": "",
                    }[behaviour]
                    self._chat(body, content)

            def _chat(self, body: dict, content: str | list[tuple[str, dict[str, float]]]) -> None:
                top = int(body.get("top_logprobs") or 0)
                if isinstance(content, str):  # 4-character tokens, each far likelier than any alternative
                    scored = [(p, {p: -0.1, **{f"alt{k}": -0.1 - k for k in range(1, top)}})
                              for p in (content[i : i + 4] for i in range(0, len(content), 4))]
                else:
                    scored, content = content, "".join(token for token, _ in content)
                logprobs = None
                if body.get("logprobs"):
                    logprobs = {
                        "content": [
                            {
                                "token": token, "logprob": alternatives.get(token, -0.1), "bytes": list(token.encode()),
                                "top_logprobs": [{"token": a, "logprob": lp, "bytes": None} for a, lp in list(alternatives.items())[:top]],
                            }
                            for token, alternatives in scored
                        ]
                    }
                prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
                self._json(200, {
                    "id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fault-model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "logprobs": logprobs, "finish_reason": server.finish_reason}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(scored),
                              "total_tokens": prompt_tokens + len(scored)},
                })

            def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                self._raw(status, json.dumps(payload).encode(), headers)

            def _raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        return Handler

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _openai_error(message: str, code: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
