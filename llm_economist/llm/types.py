"""Typed settings, requests, replies and usage counters of the language-model layer."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .schema import check_schema

ROLES = ("system", "user", "assistant")


class LLMError(Exception):
    """Base class of the errors this package raises (bad replies are returned, never raised)."""


class CacheError(LLMError):
    """The response cache file cannot be used (not SQLite, or written by an incompatible version)."""


class LLMUnavailable(LLMError):
    """The server refuses in a way retrying cannot heal (bad key, unknown model, nothing listening);
    raised so a run stops at once instead of producing thousands of failed replies."""


class EmbeddedServerError(LLMError):
    """The embedded llama.cpp server could not start."""


class LLMOptions(BaseModel):
    """The client settings a run chooses in its config section `llm` (config.LLMConfig): where the
    model is, how to sample it and how hard to try. LLMSettings, what a client is built from, adds
    the few the program sets. Never the API key itself, only the name of its variable.

    Values count as written: a boolean is not a number, NaN and infinity are no values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    base_urls: tuple[str, ...] = Field((), strict=False, description="OpenAI-compatible endpoints; empty = embedded model")
    model: str = Field("smollm2-135m-instruct", min_length=1, description="model name sent to the server")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the environment variable holding the key")
    backend: Literal["openai", "transformers"] = Field(
        "openai", description="openai (any OpenAI-compatible server) or transformers (in-process)"
    )
    transformers_model: str | None = Field(None, description="transformers backend: local model path or GGUF file")
    adapter_model: str | None = Field(
        None, min_length=1, description="with base_urls and workers.llm_adapter: the model name the server serves the worker "
        "adapter under (vLLM `--lora-modules NAME=DIR`, SGLang `--lora-paths NAME=DIR`), asked for by workers' decisions")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="sampling temperature")
    max_tokens: int = Field(200, ge=16, le=4096, description="room for the longest valid JSON reply")
    grammar: bool | None = Field(
        None, description="send a request's exact reply grammar (GBNF) as llama.cpp's `grammar` field instead of its JSON "
        "schema; None: only to the embedded model (other servers get the schema, which allows whitespace)")
    timeout_s: float = Field(60.0, gt=0.0, le=3600.0, description="seconds per request")
    max_retries: int = Field(3, ge=0, le=10, description="retries after the first attempt, shared by transport and content failures")
    concurrency: int = Field(4, ge=1, le=256, description="requests in flight per event loop; also the embedded server's slots")
    server_concurrency: int | None = Field(
        None, ge=1, le=256, description="requests in flight per base URL, so a slow server holds no more; None: no limit but concurrency")
    cache_path: str | None = Field(None, description="SQLite response cache; None disables caching")
    price_prompt_per_million: float | None = Field(None, ge=0.0, description="USD per million prompt tokens")
    price_completion_per_million: float | None = Field(None, ge=0.0, description="USD per million completion tokens")

    @model_validator(mode="after")
    def _no_keys(self) -> "LLMOptions":
        # Never echo the offending value: it may be a key typed into the wrong field.
        if any("@" in url.split("//")[-1].split("/")[0] or "?" in url for url in self.base_urls):
            raise ValueError("base_urls must not carry credentials or query strings; put the key in the variable named by api_key_env")
        if not all(url.startswith(("http://", "https://")) for url in self.base_urls):
            raise ValueError("base_urls must be http:// or https:// URLs")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            raise ValueError("api_key_env must be the NAME of an environment variable (letters, digits, _), not the key")
        return self


class LLMSettings(LLMOptions):
    """How to reach a model and how hard to try: a run's `llm` options plus what the program sets.

    Built directly, a bad value raises ValueError naming the field (`timeout_s: ...`), never
    repeating the value.
    """

    backoff_s: float = Field(0.5, ge=0.0, le=60.0, description="delay before retry k is backoff_s * 2**k plus up to 25 % jitter")
    top_logprobs: int = Field(20, ge=0, le=20, description="alternatives asked for at each token of a scored reply")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="default sampling seed of requests without one; seeds the backoff jitter")
    adapter: str | None = Field(
        None, description="worker adapter directory (from `llm-economist tune`); requests that ask for it are answered with it")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ValueError("; ".join(_named(e) for e in err.errors())) from None


def _named(error: dict) -> str:
    """One validation error as `field: what is wrong`, without the value."""
    message = error["msg"].removeprefix("Value error, ")
    return ".".join(str(p) for p in error["loc"]) + ": " + message if error["loc"] else message


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make; everything but `tag` decides the reply and its cache key."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs
    schema: dict | None = None  # JSON schema the reply must satisfy (structured output)
    schema_name: str = "reply"
    grammar: str | None = None  # the exact reply (GBNF), for servers that take one (LLMOptions.grammar); the schema still checks it
    # The reply's fixed opening, handed as the start of the answer to a server that takes a grammar
    # (llama.cpp continues a final assistant message; the grammar covers the rest) and to the
    # in-process transformers model.
    answer_prefix: str | None = None
    logprobs: bool = False
    max_tokens: int | None = None  # None: the client's settings
    temperature: float | None = None  # None: the client's settings
    seed: int | None = None  # None: the client's settings
    adapter: bool = False  # answer with the client's worker adapter, where it has one
    tag: str = ""  # what the call is for ("worker", "planner", ...); accounting only

    def __post_init__(self) -> None:
        if isinstance(self.messages, (str, bytes)) or not self.messages:
            raise ValueError("messages: expected a non-empty sequence of (role, content) pairs")
        messages = []
        for i, pair in enumerate(self.messages):
            if isinstance(pair, dict):
                pair = (pair.get("role"), pair.get("content"))
            if len(pair) != 2 or not all(isinstance(x, str) for x in pair):
                raise ValueError(f"messages[{i}]: expected a (role, content) pair of strings, got {pair!r}")
            if pair[0] not in ROLES:
                raise ValueError(f"messages[{i}]: role {pair[0]!r} is not one of {ROLES}")
            messages.append((pair[0], pair[1]))
        object.__setattr__(self, "messages", tuple(messages))
        if self.schema is not None:
            if not isinstance(self.schema, dict) or self.schema.get("type") != "object":
                raise ValueError("schema: the top level must be a JSON schema of type 'object'")
            check_schema(self.schema)
        if not self.schema_name or not self.schema_name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"schema_name: {self.schema_name!r} must be letters, digits, '_' or '-'")
        if self.max_tokens is not None:
            _check_int("max_tokens", self.max_tokens, 1, 32768)
        if self.temperature is not None:
            _check_range("temperature", self.temperature, 0.0, 2.0)
        if self.seed is not None:
            _check_int("seed", self.seed, 0, 2**63 - 1)


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability and the most likely alternatives, best first."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ChatReply:
    """What came back for one request; `ok` means `data` holds a schema-checked JSON object.

    `failure` is the category of the last failed attempt, for counting fallbacks by cause:
    "timeout", "connection", "http_<status>" (e.g. "http_500", "http_429"), "malformed_response"
    (the server's answer is not a chat completion), "invalid_json", "schema_violation",
    "empty_reply", or "backend_error" (the in-process model failed). `error` has the detail.
    """

    text: str | None  # raw content of the last answer received; None when every attempt failed in transport
    data: dict | None  # the parsed object that passed the schema check, else None
    logprobs: tuple[TokenLogprob, ...] | None
    prompt_tokens: int  # of the completion returned (not summed over retries; Usage has the totals)
    completion_tokens: int
    cached: bool
    attempts: int  # calls to the backend for this reply (0 when served from the cache)
    error: str | None  # why the reply is unusable; None when usable
    key: str  # content address of the request (sha256 hex)
    failure: str | None = None  # why the reply is unusable, as a category (above); None when usable
    truncated: bool = False  # the last completion stopped at max_tokens (finish_reason "length")

    @property
    def ok(self) -> bool:
        return self.data is not None


_COUNTERS = ("requests", "cache_hits", "http_calls", "retries", "failures", "prompt_tokens", "completion_tokens")
# per base URL: calls answered or failed there, transport failures, requests moved on to another
# server, and times the server was taken out of rotation
SERVER_COUNTERS = ("calls", "failures", "failovers", "rested", "retired")


@dataclass
class Usage:
    """Thread-safe counters of one client: calls, retries, failures, tokens spent and their cost.

    Tokens count every backend call made (retries included); cache hits spend none.
    `cost_usd` is None unless a price is configured (a missing price counts as zero).
    """

    requests: int = 0  # replies asked for
    cache_hits: int = 0
    http_calls: int = 0  # backend calls made (for the transformers backend: generations)
    retries: int = 0
    failures: int = 0  # replies returned unusable
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    by_tag: dict[str, dict[str, int]] = field(default_factory=dict)
    by_server: dict[str, dict[str, int]] = field(default_factory=dict)
    price_prompt_per_million: float | None = field(default=None, repr=False)
    price_completion_per_million: float | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.price_prompt_per_million is not None or self.price_completion_per_million is not None:
            self.cost_usd = 0.0

    def add(self, tag: str, **counts: int) -> None:
        """Add to the named counters, overall and for `tag`."""
        with self._lock:
            _add_row(self.by_tag, tag, _COUNTERS, counts)
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)
            if self.cost_usd is not None:
                self.cost_usd = (
                    self.prompt_tokens * (self.price_prompt_per_million or 0.0)
                    + self.completion_tokens * (self.price_completion_per_million or 0.0)
                ) / 1e6

    def add_server(self, url: str, **counts: int) -> None:
        """Add to the named counters of the server at `url`."""
        with self._lock:
            _add_row(self.by_server, url, SERVER_COUNTERS, counts)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
            out["cost_usd"] = self.cost_usd
            out["by_tag"] = {tag: dict(row) for tag, row in self.by_tag.items()}
            out["by_server"] = {url: dict(row) for url, row in self.by_server.items()}
            return out


def _add_row(table: dict[str, dict[str, int]], key: str, names: tuple[str, ...], counts: dict[str, int]) -> None:
    unknown = set(counts) - set(names)
    if unknown:
        raise ValueError(f"unknown usage counters: {sorted(unknown)}")
    row = table.setdefault(key, dict.fromkeys(names, 0))
    for name, n in counts.items():
        row[name] += n


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {value!r}")


def _check_range(name: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low < value if low_open else low <= value) or not value <= high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name}: expected a number in {bracket}{low:g}, {high:g}], got {value!r}")
