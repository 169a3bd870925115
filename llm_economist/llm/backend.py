"""The contract between the client and a backend: one generation in, a Completion or a BackendError out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .types import ChatRequest, LLMError, TokenLogprob


@dataclass(frozen=True)
class Sampling:
    """The resolved sampling settings of one attempt (request values over client defaults)."""

    max_tokens: int
    temperature: float
    seed: int
    top_logprobs: int
    timeout_s: float


@dataclass(frozen=True)
class Completion:
    """One raw answer of a backend."""

    text: str
    logprobs: tuple[TokenLogprob, ...] | None
    prompt_tokens: int
    completion_tokens: int
    truncated: bool = False  # generation stopped at max_tokens


class BackendError(LLMError):
    """A call failed before producing content.

    `kind` is the failure category the reply records ("timeout", "http_500", ...). `retryable`
    says whether trying again may help; `fatal` that the failure, once retries are spent (at once
    when not retryable), means no request can succeed, so the client raises LLMUnavailable;
    `failover` that another server may answer the same request at once.
    """

    def __init__(
        self, message: str, *, kind: str, retryable: bool, retry_after: float | None = None, fatal: bool = False,
        failover: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after
        self.fatal = fatal
        self.failover = failover


class Backend(Protocol):
    name: str
    model_id: str  # identifies the model in cache keys

    async def generate(self, request: ChatRequest, sampling: Sampling) -> Completion: ...

    async def aclose(self) -> None: ...

    def close(self) -> None: ...
