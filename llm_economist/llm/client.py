"""The client: cache lookup, a bounded retry loop with backoff, reply checking and accounting,
over one backend (OpenAI-compatible servers or an in-process transformers model).

Retries share one budget of `max_retries` per reply. Transport failures that may pass (timeouts,
connection errors, HTTP 429 and 5xx) wait `backoff_s * 2**k` plus jitter, or the server's
Retry-After when it gives one of at most 60 s; other HTTP errors end the reply at once. A reply
whose JSON is missing or breaks the schema is retried at once with the next seed. A reply that
stays unusable comes back with `data=None`, `error` and `failure` set: bad replies are never raised.

With several base URLs the backend moves a request that fails in transport to another server at
once (openai_backend); these retries only begin once no server in rotation is left to try.

Failures no retry can heal raise LLMUnavailable instead, so a run stops within seconds: HTTP
401/403 and 404 at once, and failed connections to every base URL once the retries are spent.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future

from .backend import Backend, BackendError, Completion, Sampling
from .adapter import load_worker_adapter
from .cache import CachedReply, ResponseCache, request_key
from .schema import SchemaViolation, extract_json, validate
from .types import ChatReply, ChatRequest, LLMSettings, LLMUnavailable, Usage

MAX_RETRY_AFTER_S = 60.0
LOCAL_KEY = "none"  # what local servers get when no key is configured


class LLMClient:
    """Chat completions with retries, a response cache and usage accounting.

    With backend "openai" and no base URLs, the machine's shared embedded server is used when one
    runs (`server.shared_servers`), else an embedded llama.cpp server is started and owned
    (closed with the client). The async methods are the main path; `complete` and
    `complete_many` run them on a private event loop in a background thread.
    """

    def __init__(self, settings: LLMSettings, api_key: str | None = None) -> None:
        if not isinstance(settings, LLMSettings):
            raise TypeError(f"settings: expected LLMSettings, got {type(settings).__name__}")
        self.settings = settings
        self.usage = Usage(
            price_prompt_per_million=settings.price_prompt_per_million,
            price_completion_per_million=settings.price_completion_per_million,
        )
        self._jitter = random.Random(settings.seed)
        self._jitter_lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._loops_lock = threading.Lock()
        self._runner: _LoopThread | None = None
        self._closed = False
        self.server = None  # the embedded server this client owns, if any
        self._cache = ResponseCache(settings.cache_path) if settings.cache_path else None
        try:
            self.adapter = load_worker_adapter(settings.adapter) if settings.adapter else None
            self._backend = self._make_backend(api_key)
        except BaseException:
            if self._cache is not None:
                self._cache.close()
            if self.server is not None:
                self.server.close()
            raise

    def _make_backend(self, api_key: str | None) -> Backend:
        s = self.settings
        adapter = self.adapter
        if s.backend == "transformers":
            from .transformers_backend import TransformersBackend

            return TransformersBackend(s.transformers_model, adapter.peft_dir if adapter else None)
        from .openai_backend import OpenAIBackend

        base_urls, adapter_body = s.base_urls, None
        if adapter is not None and base_urls and s.adapter_model is None:
            raise ValueError("llm.adapter_model: a worker adapter on your own servers needs the model name they serve it under "
                             f"(vLLM: --lora-modules NAME={adapter.peft_dir})")
        if not base_urls:
            from .server import LORA_REQUEST, EmbeddedServer, shared_server_url

            gguf = str(adapter.gguf) if adapter else None
            shared = shared_server_url(gguf)
            if shared is None:
                self.server = EmbeddedServer(parallel=s.concurrency, adapter=gguf)
            base_urls = (shared or self.server.base_url,)
            adapter_body = LORA_REQUEST if adapter else None
        if api_key is not None:
            key, source = api_key, "the api_key given to LLMClient"
        else:
            key = os.environ.get(s.api_key_env)
            source = f"the API key in the environment variable {s.api_key_env}" + ("" if key else " (it is not set)")
        grammar = s.grammar if s.grammar is not None else not s.base_urls  # the embedded server is llama.cpp
        return OpenAIBackend(base_urls, s.model, key or LOCAL_KEY, source, grammar, s.server_concurrency, self.usage,
                             adapter_model=s.adapter_model if adapter else None, adapter_body=adapter_body)

    @property
    def backend(self) -> Backend:
        return self._backend

    # -- the async path -------------------------------------------------------------------------
    async def acomplete(self, request: ChatRequest) -> ChatReply:
        """One reply: from the cache, or from the backend with retries.

        Never raises for bad replies; raises LLMUnavailable when the server cannot serve any request.
        """
        if not isinstance(request, ChatRequest):
            raise TypeError(f"request: expected ChatRequest, got {type(request).__name__}")
        if self._closed:
            raise RuntimeError("LLMClient is closed")
        s = self.settings
        base = Sampling(
            max_tokens=request.max_tokens if request.max_tokens is not None else s.max_tokens,
            temperature=request.temperature if request.temperature is not None else s.temperature,
            seed=request.seed if request.seed is not None else s.seed,
            top_logprobs=s.top_logprobs,
            timeout_s=s.timeout_s,
        )
        model = self._backend.model_id + (f"+adapter:{self.adapter.digest}" if request.adapter and self.adapter else "")
        key = request_key(
            request, model=model, max_tokens=base.max_tokens,
            temperature=base.temperature, seed=base.seed, top_logprobs=base.top_logprobs,
        )
        self.usage.add(request.tag, requests=1)
        if self._cache is None:
            return await self._fresh(request, base, key)
        hit = self._from_cache(request, key)
        if hit is not None:
            return hit
        state = self._state()
        pending = state.pending.get(key)
        if pending is not None:  # the same request is already on its way: share its reply
            shared = await asyncio.shield(pending)
            if shared is not None and shared.ok:
                self.usage.add(request.tag, cache_hits=1)
                return ChatReply(shared.text, shared.data, shared.logprobs, shared.prompt_tokens,
                                 shared.completion_tokens, True, 0, None, key)
            return await self._fresh(request, base, key)
        future: asyncio.Future[ChatReply | None] = asyncio.get_running_loop().create_future()
        state.pending[key] = future
        reply = None
        try:
            reply = await self._fresh(request, base, key)
            return reply
        finally:
            state.pending.pop(key, None)
            future.set_result(reply)  # None (the call raised or was cancelled): waiters call themselves

    async def acomplete_many(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        """Replies in the order of `requests`, at most `concurrency` backend calls at a time.

        When one request raises (LLMUnavailable), the others are cancelled before it propagates.
        """
        tasks = [asyncio.ensure_future(self.acomplete(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _from_cache(self, request: ChatRequest, key: str) -> ChatReply | None:
        assert self._cache is not None
        stored = self._cache.get(key)
        if stored is None:
            return None
        data, _, _ = _check(request, stored.text, truncated=False)
        if data is None:  # stored under another schema check; treat as a miss
            return None
        self.usage.add(request.tag, cache_hits=1)
        return ChatReply(stored.text, data, stored.logprobs, stored.prompt_tokens, stored.completion_tokens,
                         True, 0, None, key)

    async def _fresh(self, request: ChatRequest, base: Sampling, key: str) -> ChatReply:
        s, tag = self.settings, request.tag
        state = self._state()
        attempts = bad_replies = 0
        last: Completion | None = None
        failure, error = None, "no attempt made"
        for attempt in range(s.max_retries + 1):
            if attempt:
                self.usage.add(tag, retries=1)
            # the same request again after a transport failure; the next seed after a bad reply
            sampling = Sampling(base.max_tokens, base.temperature, base.seed + bad_replies, base.top_logprobs, base.timeout_s)
            attempts += 1
            self.usage.add(tag, http_calls=1)
            try:
                async with state.slots:
                    completion = await self._backend.generate(request, sampling)
            except BackendError as e:
                failure, error = e.kind, str(e)
                if not e.retryable or attempt == s.max_retries:
                    if e.fatal:
                        raise LLMUnavailable(error) from e
                    break
                await asyncio.sleep(self._delay(attempt, e.retry_after))
                continue
            self.usage.add(tag, prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens)
            last = completion
            data, failure, error = _check(request, completion.text, completion.truncated, sampling.max_tokens)
            if data is not None:
                if self._cache is not None:
                    self._cache.put(key, CachedReply(completion.text, completion.logprobs,
                                                     completion.prompt_tokens, completion.completion_tokens))
                return ChatReply(completion.text, data, completion.logprobs, completion.prompt_tokens,
                                 completion.completion_tokens, False, attempts, None, key, None, completion.truncated)
            bad_replies += 1
        self.usage.add(tag, failures=1)
        error = f"{error} (after {attempts} attempt{'s' if attempts != 1 else ''})"
        if last is None:
            return ChatReply(None, None, None, 0, 0, False, attempts, error, key, failure)
        return ChatReply(last.text, None, last.logprobs, last.prompt_tokens, last.completion_tokens,
                         False, attempts, error, key, failure, last.truncated)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after <= MAX_RETRY_AFTER_S:
            return retry_after
        with self._jitter_lock:
            jitter = self._jitter.random()
        return self.settings.backoff_s * 2**attempt * (1.0 + 0.25 * jitter)

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._loops_lock:
            state = self._loops.get(loop)
            if state is None:
                for old in [old for old in self._loops if old.is_closed()]:
                    del self._loops[old]
                state = self._loops[loop] = _LoopState(self.settings.concurrency)
            return state

    # -- the sync facade ------------------------------------------------------------------------
    def complete(self, request: ChatRequest) -> ChatReply:
        return self.complete_many([request])[0]

    def complete_many(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        """`acomplete_many` on the client's private event loop; blocks until all replies are in."""
        if self._closed:
            raise RuntimeError("LLMClient is closed")
        if self._runner is None:
            with self._loops_lock:
                if self._runner is None:
                    self._runner = _LoopThread()
        return self._runner.run(self.acomplete_many(list(requests)))

    # -- lifetime -------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close from inside an event loop (`async with`)."""
        if self._closed:
            return
        close = getattr(self._backend, "aclose", None)
        if close is not None:
            await close()
        self.close()

    def close(self) -> None:
        """Close the backend's connections, the cache, the private loop and any owned server."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._runner is not None:
                try:
                    self._runner.run(self._backend.aclose())
                finally:
                    self._runner.stop()
            self._backend.close()
        finally:
            if self._cache is not None:
                self._cache.close()
            if self.server is not None:
                self.server.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        s = self.settings
        where = s.base_urls or ("embedded" if s.backend == "openai" else s.transformers_model or "embedded GGUF")
        return f"LLMClient(backend={s.backend!r}, model={s.model!r}, endpoints={where!r}, cache={s.cache_path!r})"


def open_client(settings: LLMSettings, api_key: str | None = None) -> LLMClient:
    """A client for `settings`; starts (and owns) the embedded server when no base URL is given."""
    return LLMClient(settings, api_key)


def _check(
    request: ChatRequest, text: str, truncated: bool, max_tokens: int | None = None,
) -> tuple[dict | None, str | None, str | None]:
    """(data, None, None) for a usable reply, else (None, failure category, why)."""
    cut = f"; cut off at max_tokens={max_tokens}" if truncated else ""
    if not text.strip():
        return None, "empty_reply", f"empty reply{cut}"
    if request.schema is None:
        try:
            return extract_json(text), None, None
        except ValueError:
            return {}, None, None  # free text: usable as text, no JSON in it
    try:
        value = extract_json(text)
    except ValueError as e:
        return None, "invalid_json", f"invalid JSON: {e}{cut}"
    try:
        return validate(value, request.schema), None, None
    except SchemaViolation as e:
        return None, "schema_violation", f"schema violation: {e}{cut}"


class _LoopState:
    """Per event loop: the concurrency slots and the requests in flight (asyncio objects are loop-bound)."""

    def __init__(self, concurrency: int) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self.pending: dict[str, asyncio.Future[ChatReply]] = {}


class _LoopThread:
    """A private event loop on a daemon thread, so connection pools stay bound to one loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="llm-client-loop", daemon=True)
        self._thread.start()

    def run(self, coro):  # type: ignore[no-untyped-def]
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()
