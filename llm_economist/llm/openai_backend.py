"""Chat completions from OpenAI-compatible servers, spread over their base URLs.

Each request goes to the least busy server in rotation (round-robin among equals), never to
one already holding `server_concurrency` requests. A server fails over: when it refuses a
connection, drops one, times out or answers 429/5xx, the request moves at once to another
server in rotation. A server that refuses a connection, or fails FAILURES_TO_REST times in a
row, leaves the rotation for COOL_DOWN_S and is then tried again. Counts per server (calls,
failures, failovers, times rested, retired) go to the client's usage. A server that answers
HTTP 401/403 (the key) or 404 (the model or route) is retired: no retry there can heal it, so it
leaves the rotation for good and its requests move to the others. Failures that no retry can heal
are fatal: the last server retired, and refused connections on every URL.
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
from dataclasses import dataclass, replace

import openai
from openai.types.chat import ChatCompletion

from .backend import BackendError, Completion, Sampling
from .types import ChatRequest, TokenLogprob, Usage

COOL_DOWN_S = 10.0  # how long a server out of rotation is passed over
FAILURES_TO_REST = 2  # failures in a row (5xx, timeouts, dropped connections) that take a server out
REFUSALS = (401, 403, 404)  # the key or the model refused: the server is retired
_KEYLIKE = re.compile(r"\b(sk-|Bearer\s+)[A-Za-z0-9*._\-]{4,}")


@dataclass
class _Health:
    """What the backend knows of one server, shared by every event loop."""

    failures_in_row: int = 0
    refused: bool = False  # its last connection attempt found nothing listening
    resting_until: float = 0.0  # out of rotation until this time.monotonic()
    retired: bool = False  # it refused the key or the model: out of rotation for good


class _LoopSlots:
    """Requests in flight per server on one event loop, and a condition to wait for a free slot."""

    def __init__(self, n: int) -> None:
        self.in_flight = [0] * n
        self.freed = asyncio.Condition()


class OpenAIBackend:
    """One `AsyncOpenAI` per base URL and event loop; the openai client never retries (we do)."""

    name = "openai"

    def __init__(self, base_urls: tuple[str, ...], model: str, api_key: str, key_source: str = "the API key",
                 grammar: bool = False, server_concurrency: int | None = None, usage: Usage | None = None,
                 adapter_model: str | None = None, adapter_body: list | None = None) -> None:
        if not base_urls:
            raise ValueError("base_urls: at least one URL is needed")
        self.base_urls = tuple(u.rstrip("/") for u in base_urls)
        self.model_id = model
        self._api_key = api_key
        self._key_source = key_source  # which key to check, for error messages
        self.grammar = grammar  # the servers take llama.cpp's `grammar` field
        # How a request that asks for the worker adapter gets it: by the model name the server
        # serves it under (vLLM, SGLang), or by llama.cpp's per-request `lora` field.
        self.adapter_model = adapter_model
        self.adapter_body = adapter_body
        self.server_concurrency = server_concurrency  # None: no limit per server
        self.usage = usage if usage is not None else Usage()
        self._turn = itertools.count()
        self._health = [_Health() for _ in self.base_urls]
        self._lock = threading.Lock()
        # httpx connection pools and asyncio conditions belong to the loop that made them.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[openai.AsyncOpenAI]] = (
            weakref.WeakKeyDictionary()
        )
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSlots] = weakref.WeakKeyDictionary()

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

    def _loop_slots(self) -> _LoopSlots:
        loop = asyncio.get_running_loop()
        with self._lock:
            slots = self._slots.get(loop)
            if slots is None:
                slots = self._slots[loop] = _LoopSlots(len(self.base_urls))
            return slots

    def _in_rotation(self, i: int, now: float) -> bool:
        return not self._health[i].retired and self._health[i].resting_until <= now

    def _choose(self, in_flight: list[int], tried: set[int]) -> int | None:
        """The least busy untried server in rotation with a free slot (round-robin among equals);
        an untried resting server when none is in rotation; None when every candidate is full.
        A BackendError when no untried server is left (fatal when every server is retired)."""
        now = time.monotonic()
        n = len(self.base_urls)
        with self._lock:
            start = next(self._turn)
            untried = [i for i in ((start + k) % n for k in range(n)) if i not in tried and not self._health[i].retired]
            if not untried:
                if all(h.retired for h in self._health):
                    raise BackendError(f"every server ({', '.join(self.base_urls)}) refused the key or the model; see the "
                                       "first error above", kind="retired", retryable=False, fatal=True)
                raise BackendError("every server left was tried for this request", kind="connection", retryable=True)
            candidates = [i for i in untried if self._in_rotation(i, now)] or untried
        limit = self.server_concurrency
        free = [i for i in candidates if limit is None or in_flight[i] < limit]
        return min(free, key=lambda i: in_flight[i]) if free else None

    async def _acquire(self, slots: _LoopSlots, tried: set[int]) -> int:
        async with slots.freed:
            while (i := self._choose(slots.in_flight, tried)) is None:
                await slots.freed.wait()
            slots.in_flight[i] += 1
            return i

    async def _release(self, slots: _LoopSlots, i: int) -> None:
        async with slots.freed:
            slots.in_flight[i] -= 1
            slots.freed.notify_all()

    def _answered(self, i: int) -> None:
        with self._lock:
            self._health[i] = _Health()
        self.usage.add_server(self.base_urls[i], calls=1)

    def _failed(self, i: int, refused: bool = False) -> None:
        """Count a transport failure at server `i`; take it out of rotation when it refused or failed repeatedly."""
        rested = 0
        with self._lock:
            health = self._health[i]
            health.failures_in_row += 1
            health.refused = health.refused or refused
            if (refused or health.failures_in_row >= FAILURES_TO_REST) and health.resting_until <= time.monotonic():
                health.resting_until = time.monotonic() + COOL_DOWN_S
                rested = 1
        self.usage.add_server(self.base_urls[i], calls=1, failures=1, rested=rested)

    async def generate(self, request: ChatRequest, sampling: Sampling) -> Completion:
        """One completion, moved to another server at once when the one it was sent to fails in transport."""
        clients = self._loop_clients(sampling.timeout_s)
        slots = self._loop_slots()
        kwargs = self._arguments(request, sampling)
        tried: set[int] = set()
        while True:
            i = await self._acquire(slots, tried)
            try:
                return self._prefixed(await self._call(i, clients[i], kwargs, request.logprobs, sampling.timeout_s), request)
            except BackendError as e:
                tried.add(i)
                if not e.failover or not self._another(tried):
                    raise
                self.usage.add_server(self.base_urls[i], failovers=1)
            finally:
                await self._release(slots, i)

    def _prefixed(self, completion: Completion, request: ChatRequest) -> Completion:
        """The whole reply where the server was handed its opening: the text from the opening on
        (llama.cpp returns it, others may not), and the opening as a first token chosen for certain."""
        prefix = request.answer_prefix
        if not (prefix and request.grammar is not None and self.grammar):
            return completion
        text = completion.text if completion.text.startswith(prefix) else prefix + completion.text
        logprobs = (TokenLogprob(prefix, 0.0, ()), *completion.logprobs) if completion.logprobs else completion.logprobs
        return replace(completion, text=text, logprobs=logprobs)

    def _another(self, tried: set[int]) -> bool:
        """Whether a server not yet tried for this request is in rotation."""
        now = time.monotonic()
        with self._lock:
            return any(self._in_rotation(i, now) for i in range(len(self.base_urls)) if i not in tried)

    def _arguments(self, request: ChatRequest, sampling: Sampling) -> dict:
        kwargs: dict = {
            "model": self.model_id,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "seed": sampling.seed,
            "timeout": sampling.timeout_s,
        }
        extra: dict = {}
        if request.adapter and self.adapter_model is not None:
            kwargs["model"] = self.adapter_model
        if request.adapter and self.adapter_body is not None:
            extra["lora"] = self.adapter_body
        if request.grammar is not None and self.grammar:
            extra["grammar"] = request.grammar
            if request.answer_prefix:
                kwargs["messages"].append({"role": "assistant", "content": request.answer_prefix})
        elif request.schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.schema, "strict": True},
            }
        if extra:
            kwargs["extra_body"] = extra
        if request.logprobs:
            kwargs["logprobs"] = True
            if sampling.top_logprobs:
                kwargs["top_logprobs"] = sampling.top_logprobs
        return kwargs

    async def _call(self, i: int, client: openai.AsyncOpenAI, kwargs: dict, logprobs: bool, timeout_s: float) -> Completion:
        url = self.base_urls[i]
        try:
            response = await client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as e:
            self._failed(i)
            raise BackendError(f"no reply from {url} within {timeout_s:g} s", kind="timeout", retryable=True,
                               failover=True) from e
        except openai.APIConnectionError as e:
            raise self._connection_failed(i, e) from e
        except openai.APIStatusError as e:
            if e.status_code in REFUSALS:
                raise self._refused(i, e) from e
            error = self._status_error(url, e)
            if error.failover:
                self._failed(i)
            else:
                self._answered(i)
            raise error from e
        except (openai.APIResponseValidationError, json.JSONDecodeError) as e:
            self._answered(i)
            raise BackendError(f"malformed response from {url}: {self._redact(_short(str(e)))}",
                               kind="malformed_response", retryable=True) from e
        except openai.OpenAIError as e:
            raise BackendError(f"request to {url} failed: {self._redact(_short(str(e)))}",
                               kind="backend_error", retryable=False) from e
        self._answered(i)
        try:
            return _completion(response, logprobs)
        except (AttributeError, TypeError, ValueError, IndexError) as e:
            raise BackendError(f"malformed response from {url}: {self._redact(_short(str(e)))}",
                               kind="malformed_response", retryable=True) from e

    def _connection_failed(self, i: int, e: openai.APIConnectionError) -> BackendError:
        """A failover; fatal once every URL refuses connections (nothing listening anywhere)."""
        cause = e.__cause__ or e
        refused = any(t.__name__ == "ConnectError" for t in type(cause).__mro__)  # of whichever httpx openai uses
        self._failed(i, refused=refused)
        with self._lock:
            everywhere = refused and all(h.refused for h in self._health)
        detail = self._redact(_short(str(_root(cause)) or type(cause).__name__))
        if everywhere:
            return BackendError(
                f"nothing is listening at {', '.join(self.base_urls)} (last: {detail}); "
                "start the server or check llm.base_urls",
                kind="connection", retryable=True, fatal=True, failover=True,
            )
        return BackendError(f"connection to {self.base_urls[i]} failed: {detail}", kind="connection",
                            retryable=True, failover=True)

    def _refused(self, i: int, e: openai.APIStatusError) -> BackendError:
        """Retire server `i`, which refused the key or the model; fatal once no server is left."""
        status, url = e.status_code, self.base_urls[i]
        message = self._http_message(url, e)
        if status == 404:
            message += f"; model {self.model_id!r} or the chat route is not there: check llm.model and llm.base_urls"
        else:
            why = "rejects the API key" if status == 401 else f"does not let this API key use model {self.model_id!r}"
            message += f"; the server {why}: check {self._key_source}"
        with self._lock:
            self._health[i].retired = True
            left = sum(not h.retired for h in self._health)
        self.usage.add_server(url, calls=1, retired=1)
        if left:
            return BackendError(f"{message}; {url} is retired, {left} other server(s) carry on", kind=f"http_{status}",
                                retryable=False, failover=True)
        return BackendError(message, kind=f"http_{status}", retryable=False, fatal=True)

    def _http_message(self, url: str, e: openai.APIStatusError) -> str:
        return f"HTTP {e.status_code} from {url}: {self._redact(_short(e.message))}"

    def _status_error(self, url: str, e: openai.APIStatusError) -> BackendError:
        status = e.status_code
        message = self._http_message(url, e)
        passing = status == 429 or status >= 500  # another server, or this one later, may answer
        return BackendError(message, kind=f"http_{status}", retryable=passing, failover=passing,
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
