"""Chat completions from OpenAI-compatible servers, spread round-robin over their base URLs.

A URL whose last connection attempt failed (nothing listening) is passed over while another
may answer, and tried again after RECHECK_S. Failures that no retry can heal are marked fatal:
HTTP 401/403 (the key), 404 (the model or route) and failed connections on every URL.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import re
import threading
import time
import weakref
from collections.abc import Mapping

import openai
from openai.types.chat import ChatCompletion

from .backend import BackendError, Completion, Sampling
from .types import ChatRequest, TokenLogprob

RECHECK_S = 10.0  # how long a URL that refused a connection is passed over
_KEYLIKE = re.compile(r"\b(sk-|Bearer\s+)[A-Za-z0-9*._\-]{4,}")


class OpenAIBackend:
    """One `AsyncOpenAI` per base URL and event loop; the openai client never retries (we do)."""

    name = "openai"

    def __init__(self, base_urls: tuple[str, ...], model: str, api_key: str, key_source: str = "the API key",
                 grammar: bool = False) -> None:
        if not base_urls:
            raise ValueError("base_urls: at least one URL is needed")
        self.base_urls = tuple(u.rstrip("/") for u in base_urls)
        self.model_id = model
        self._api_key = api_key
        self._key_source = key_source  # which key to check, for error messages
        self.grammar = grammar  # the servers take llama.cpp's `grammar` field
        self._turn = itertools.count()
        self._refused: dict[int, float] = {}  # URL index -> when its last connection attempt failed
        self._lock = threading.Lock()
        # httpx connection pools belong to the loop that opened them, hence clients per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[openai.AsyncOpenAI]] = (
            weakref.WeakKeyDictionary()
        )

    def _loop_clients(self, timeout_s: float) -> list[openai.AsyncOpenAI]:
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._clients.get(loop)
            if clients is None:
                for old in [old for old in self._clients if old.is_closed()]:
                    del self._clients[old]  # their sockets died with their loop
                clients = [
                    openai.AsyncOpenAI(base_url=url, api_key=self._api_key, max_retries=0, timeout=timeout_s)
                    for url in self.base_urls
                ]
                self._clients[loop] = clients
            return clients

    def _pick(self) -> int:
        """The next URL in turn, passing over those that refused recently while another may answer."""
        now = time.monotonic()
        with self._lock:
            start = next(self._turn)
            for k in range(len(self.base_urls)):
                i = (start + k) % len(self.base_urls)
                if i not in self._refused or now - self._refused[i] >= RECHECK_S:
                    return i
            return start % len(self.base_urls)

    def _answered(self, i: int) -> None:
        with self._lock:
            self._refused.pop(i, None)

    async def generate(self, request: ChatRequest, sampling: Sampling) -> Completion:
        clients = self._loop_clients(sampling.timeout_s)
        i = self._pick()
        url = self.base_urls[i]
        kwargs: dict = {
            "model": self.model_id,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "seed": sampling.seed,
            "timeout": sampling.timeout_s,
        }
        if request.grammar is not None and self.grammar:
            kwargs["extra_body"] = {"grammar": request.grammar}
        elif request.schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.schema, "strict": True},
            }
        if request.logprobs:
            kwargs["logprobs"] = True
            if sampling.top_logprobs:
                kwargs["top_logprobs"] = sampling.top_logprobs
        try:
            response = await clients[i].chat.completions.create(**kwargs)
        except openai.APITimeoutError as e:
            raise BackendError(f"no reply from {url} within {sampling.timeout_s:g} s", kind="timeout", retryable=True) from e
        except openai.APIConnectionError as e:
            raise self._connection_failed(i, e) from e
        except openai.APIStatusError as e:
            self._answered(i)
            raise self._status_error(url, e) from e
        except (openai.APIResponseValidationError, json.JSONDecodeError) as e:
            self._answered(i)
            raise BackendError(f"malformed response from {url}: {self._redact(_short(str(e)))}",
                               kind="malformed_response", retryable=True) from e
        except openai.OpenAIError as e:
            raise BackendError(f"request to {url} failed: {self._redact(_short(str(e)))}",
                               kind="backend_error", retryable=False) from e
        self._answered(i)
        try:
            return _completion(response, request.logprobs)
        except (AttributeError, TypeError, ValueError, IndexError) as e:
            raise BackendError(f"malformed response from {url}: {self._redact(_short(str(e)))}",
                               kind="malformed_response", retryable=True) from e

    def _connection_failed(self, i: int, e: openai.APIConnectionError) -> BackendError:
        """Mark URL `i` refusing when no connection could be made; fatal once every URL refuses."""
        cause = e.__cause__ or e
        refused = any(t.__name__ == "ConnectError" for t in type(cause).__mro__)  # of whichever httpx openai uses
        with self._lock:
            if refused:
                self._refused[i] = time.monotonic()
            everywhere = refused and len(self._refused) == len(self.base_urls)
        detail = self._redact(_short(str(_root(cause)) or type(cause).__name__))
        if everywhere:
            return BackendError(
                f"nothing is listening at {', '.join(self.base_urls)} (last: {detail}); "
                "start the server or check llm.base_urls",
                kind="connection", retryable=True, fatal=True,
            )
        return BackendError(f"connection to {self.base_urls[i]} failed: {detail}", kind="connection", retryable=True)

    def _status_error(self, url: str, e: openai.APIStatusError) -> BackendError:
        status = e.status_code
        message = f"HTTP {status} from {url}: {self._redact(_short(e.message))}"
        if status in (401, 403):
            why = "rejects the API key" if status == 401 else f"does not let this API key use model {self.model_id!r}"
            return BackendError(f"{message}; the server {why}: check {self._key_source}",
                                kind=f"http_{status}", retryable=False, fatal=True)
        if status == 404:
            return BackendError(f"{message}; model {self.model_id!r} or the chat route is not there: "
                                "check llm.model and llm.base_urls", kind="http_404", retryable=False, fatal=True)
        return BackendError(message, kind=f"http_{status}", retryable=status == 429 or status >= 500,
                            retry_after=retry_after(e.response.headers))

    def _redact(self, message: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            message = message.replace(self._api_key, "***")
        return _KEYLIKE.sub(r"\1***", message)

    async def aclose(self) -> None:
        """Close the clients of the running loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._clients.pop(loop, [])
        for client in clients:
            await client.close()

    def close(self) -> None:
        """Close the clients of every loop that can still run; drop those of closed loops."""
        with self._lock:
            entries = list(self._clients.items())
            self._clients.clear()
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, clients in entries:
            if loop.is_closed():
                continue
            closing = _close_all(clients)
            if loop is current:
                loop.create_task(closing)
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(closing, loop).result(timeout=10)
            else:
                loop.run_until_complete(closing)

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_urls={self.base_urls!r}, model={self.model_id!r})"


def _completion(response: ChatCompletion, logprobs: bool) -> Completion:
    """The Completion in a server's answer; AttributeError, TypeError or ValueError when it is not one."""
    if not response.choices:
        raise ValueError("the response has no choices")
    choice = response.choices[0]
    tokens = None
    if logprobs and choice.logprobs is not None and choice.logprobs.content:
        tokens = tuple(
            TokenLogprob(
                t.token,
                float(t.logprob),
                tuple(sorted(((a.token, float(a.logprob)) for a in t.top_logprobs or ()), key=lambda a: -a[1])),
            )
            for t in choice.logprobs.content
        )
    usage = response.usage
    return Completion(
        text=choice.message.content or "",
        logprobs=tokens,
        prompt_tokens=int(usage.prompt_tokens) if usage else 0,
        completion_tokens=int(usage.completion_tokens) if usage else 0,
        truncated=choice.finish_reason == "length",
    )


def _root(error: BaseException) -> BaseException:
    """The innermost cause: 'Connect call failed (...)' says more than 'All connection attempts failed'."""
    while (inner := error.__cause__ or error.__context__) is not None:
        error = inner
    return error


async def _close_all(clients: list[openai.AsyncOpenAI]) -> None:
    for client in clients:
        await client.close()


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait (`retry-after-ms`, `retry-after` seconds or HTTP date)."""
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _short(message: str, limit: int = 300) -> str:
    message = " ".join(str(message).split())
    return message if len(message) <= limit else message[: limit - 3] + "..."
