"""Chat completions from OpenAI-compatible servers, spread round-robin over their base URLs."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import re
import threading
import time
import weakref
from collections.abc import Mapping

import openai

from .backend import BackendError, Completion, Sampling
from .types import ChatRequest, TokenLogprob

_KEYLIKE = re.compile(r"\b(sk-|Bearer\s+)[A-Za-z0-9*._\-]{4,}")


class OpenAIBackend:
    """One `AsyncOpenAI` per base URL and event loop; the openai client never retries (we do)."""

    name = "openai"

    def __init__(self, base_urls: tuple[str, ...], model: str, api_key: str) -> None:
        if not base_urls:
            raise ValueError("base_urls: at least one URL is needed")
        self.base_urls = tuple(u.rstrip("/") for u in base_urls)
        self.model_id = model
        self._api_key = api_key
        self._turn = itertools.count()
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

    async def generate(self, request: ChatRequest, sampling: Sampling) -> Completion:
        clients = self._loop_clients(sampling.timeout_s)
        i = next(self._turn) % len(clients)
        url = self.base_urls[i]
        kwargs: dict = {
            "model": self.model_id,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "seed": sampling.seed,
            "timeout": sampling.timeout_s,
        }
        if request.schema is not None:
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
            raise BackendError(f"no reply from {url} within {sampling.timeout_s:g} s", retryable=True) from e
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            raise BackendError(f"connection to {url} failed: {self._redact(str(cause) or type(cause).__name__)}", retryable=True) from e
        except openai.APIStatusError as e:
            status = e.status_code
            message = self._redact(_short(e.message))
            raise BackendError(
                f"HTTP {status} from {url}: {message}",
                retryable=status == 429 or status >= 500,
                retry_after=retry_after(e.response.headers),
            ) from e
        except openai.APIResponseValidationError as e:
            raise BackendError(f"malformed response from {url}: {self._redact(_short(e.message))}", retryable=True) from e
        except openai.OpenAIError as e:
            raise BackendError(f"request to {url} failed: {self._redact(_short(str(e)))}", retryable=False) from e
        if not response.choices:
            raise BackendError(f"response from {url} has no choices", retryable=True)
        choice = response.choices[0]
        logprobs = None
        if request.logprobs and choice.logprobs is not None and choice.logprobs.content:
            logprobs = tuple(
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
            logprobs=logprobs,
            prompt_tokens=int(usage.prompt_tokens) if usage else 0,
            completion_tokens=int(usage.completion_tokens) if usage else 0,
            truncated=choice.finish_reason == "length",
        )

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
