"""Language models: one async client for OpenAI-compatible servers, the embedded local model,
an in-process transformers backend, a response cache and token/cost accounting.
"""

from .cache import ResponseCache, request_key
from .client import LLMClient, open_client
from .schema import SchemaViolation, extract_json, validate
from .server import EMBEDDED_MODEL_NAME, EmbeddedServer, embedded_model_path, ensure_embedded_model, serve
from .types import (
    CacheError,
    ChatReply,
    ChatRequest,
    EmbeddedServerError,
    LLMError,
    LLMOptions,
    LLMSettings,
    LLMUnavailable,
    TokenLogprob,
    Usage,
)

__all__ = [
    "CacheError",
    "ChatReply",
    "ChatRequest",
    "EMBEDDED_MODEL_NAME",
    "EmbeddedServer",
    "EmbeddedServerError",
    "LLMClient",
    "LLMError",
    "LLMOptions",
    "LLMSettings",
    "LLMUnavailable",
    "ResponseCache",
    "SchemaViolation",
    "TokenLogprob",
    "Usage",
    "embedded_model_path",
    "ensure_embedded_model",
    "extract_json",
    "open_client",
    "request_key",
    "serve",
    "validate",
]
