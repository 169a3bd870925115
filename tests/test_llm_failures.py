"""How the client meets a broken server: fatal errors raise LLMUnavailable at once, transient ones
come back as unusable replies whose `failure` names the cause. Real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time

import pytest

from llm_economist.llm import ChatRequest, LLMClient, LLMUnavailable
from fault_server import KEY, FaultServer, fault_settings

SCHEMA = {
    "type": "object",
    "properties": {"hours": {"enum": [0, 20, 40]}, "reason": {"type": "string"}},
    "required": ["hours", "reason"],
    "additionalProperties": False,
}


def ask(i: int = 0) -> ChatRequest:
    return ChatRequest((("user", f"Hours this week? (agent {i})"),), SCHEMA, seed=i, tag="worker")


def nothing_listening() -> str:
    """The URL of a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# -- fatal: raised at once ---------------------------------------------------------------------
def test_a_rejected_key_raises_at_once_after_one_request(monkeypatch) -> None:
    monkeypatch.setenv("FAULT_KEY", KEY)
    with FaultServer(default="401") as s, LLMClient(fault_settings(s.url, api_key_env="FAULT_KEY", backoff_s=5.0)) as client:
        start = time.monotonic()
        with pytest.raises(LLMUnavailable) as raised:
            client.complete(ask())
        assert time.monotonic() - start < 2.0
    assert len(s.chat_requests) == 1
    message = str(raised.value)
    assert "HTTP 401" in message and s.url in message and "FAULT_KEY" in message
    assert KEY not in message and "SECRET" not in message


def test_a_forbidden_key_raises_naming_the_status_and_url() -> None:
    with FaultServer(default="403") as s, LLMClient(fault_settings(s.url, backoff_s=5.0)) as client:
        with pytest.raises(LLMUnavailable, match="HTTP 403") as raised:
            client.complete(ask())
    assert s.url in str(raised.value) and len(s.chat_requests) == 1


def test_an_unknown_model_raises_naming_the_model_and_url() -> None:
    with FaultServer(default="404") as s, LLMClient(fault_settings(s.url, backoff_s=5.0)) as client:
        with pytest.raises(LLMUnavailable, match="HTTP 404") as raised:
            client.complete(ask())
    message = str(raised.value)
    assert s.url in message and "'fault-model'" in message and "llm.model" in message
    assert len(s.chat_requests) == 1


def test_nothing_listening_raises_after_the_retries() -> None:
    url = nothing_listening()
    with LLMClient(fault_settings(url, max_retries=2)) as client:
        with pytest.raises(LLMUnavailable, match="nothing is listening") as raised:
            client.complete(ask())
    assert url in str(raised.value) and "llm.base_urls" in str(raised.value)
    assert client.usage.http_calls == 3 and client.usage.retries == 2


def test_nothing_listening_anywhere_names_every_url() -> None:
    urls = (nothing_listening(), nothing_listening())
    with LLMClient(fault_settings(*urls, max_retries=1)) as client:
        with pytest.raises(LLMUnavailable) as raised:
            client.complete(ask())
    assert all(url in str(raised.value) for url in urls)


def test_requests_fail_over_from_a_refusing_url_to_one_that_answers() -> None:
    with FaultServer() as live, LLMClient(fault_settings(nothing_listening(), live.url)) as client:
        replies = client.complete_many([ask(i) for i in range(8)])
    assert all(r.ok for r in replies) and len(live.chat_requests) == 8


def test_a_refusing_url_is_passed_over_once_known() -> None:
    dead = nothing_listening()
    with FaultServer() as live, LLMClient(fault_settings(dead, live.url)) as client:
        replies = [client.complete(ask(i)) for i in range(6)]
    assert all(r.ok for r in replies) and client.usage.retries == 0  # moved at once, not retried
    assert client.usage.as_dict()["by_server"][dead] == {"calls": 1, "failures": 1, "failovers": 1, "rested": 1, "retired": 0}


@pytest.mark.parametrize("refusal", ["401", "403", "404"])
def test_a_server_that_refuses_the_key_or_model_is_retired_and_the_healthy_one_carries_on(refusal: str) -> None:
    with FaultServer(default=refusal) as refusing, FaultServer() as live, \
            LLMClient(fault_settings(refusing.url, live.url, concurrency=1)) as client:
        replies = [client.complete(ask(i)) for i in range(6)]
    assert all(r.ok for r in replies) and len(refusing.chat_requests) == 1 and len(live.chat_requests) == 6
    assert client.usage.as_dict()["by_server"][refusing.url] == {"calls": 1, "failures": 0, "failovers": 1, "rested": 0, "retired": 1}


def test_a_pool_whose_every_server_refuses_the_key_stops_the_run() -> None:
    with FaultServer(default="401") as a, FaultServer(default="401") as b, \
            LLMClient(fault_settings(a.url, b.url, concurrency=1)) as client:
        with pytest.raises(LLMUnavailable, match="HTTP 401"):
            client.complete(ask())
    assert len(a.chat_requests) + len(b.chat_requests) == 2


def test_complete_many_raises_on_one_rejected_request_and_stops_the_rest() -> None:
    with FaultServer(script=["401"], delay_s=0.3) as s, LLMClient(fault_settings(s.url, concurrency=4)) as client:
        start = time.monotonic()
        with pytest.raises(LLMUnavailable, match="HTTP 401"):
            client.complete_many([ask(i) for i in range(20)])
        assert time.monotonic() - start < 2.0
        time.sleep(0.5)  # requests already on the wire may still arrive
        seen = len(s.chat_requests)
        time.sleep(1.0)
        assert len(s.chat_requests) == seen <= 4 + 1  # those in flight, and one that took the freed slot


def test_acomplete_many_leaves_no_task_behind_when_one_request_is_fatal(caplog) -> None:
    async def main() -> set:
        async with LLMClient(fault_settings(s.url, concurrency=4)) as client:
            with pytest.raises(LLMUnavailable):
                await client.acomplete_many([ask(i) for i in range(12)])
            return asyncio.all_tasks() - {asyncio.current_task()}

    with FaultServer(script=["401"], delay_s=0.3) as s, caplog.at_level(logging.ERROR, logger="asyncio"):
        assert asyncio.run(main()) == set()
        gc.collect()
    assert "never retrieved" not in caplog.text


# -- transient: an unusable reply with its category --------------------------------------------
@pytest.mark.parametrize(
    "behaviour, failure",
    [("500", "http_500"), ("429", "http_429"), ("garbage", "malformed_response"), ("malformed", "invalid_json"),
     ("schema", "schema_violation"), ("empty", "empty_reply")],
)
def test_a_transient_failure_that_persists_is_returned_with_its_category(behaviour: str, failure: str) -> None:
    with FaultServer(default=behaviour) as s, LLMClient(fault_settings(s.url, max_retries=2)) as client:
        reply = client.complete(ask())
    assert not reply.ok and reply.failure == failure and reply.error
    assert reply.attempts == 3 and client.usage.failures == 1


def test_a_timeout_is_returned_as_timeout() -> None:
    with FaultServer(default="hang", hang_s=2.0) as s, LLMClient(fault_settings(s.url, timeout_s=0.2, max_retries=1)) as client:
        reply = client.complete(ask())
    assert reply.failure == "timeout" and "within 0.2 s" in reply.error and reply.attempts == 2


def test_the_failure_is_that_of_the_last_attempt() -> None:
    with FaultServer(script=["500", "malformed"]) as s, LLMClient(fault_settings(s.url, max_retries=1)) as client:
        reply = client.complete(ask())
    assert reply.failure == "invalid_json" and reply.text is not None


def test_a_schema_violation_names_the_offending_value() -> None:
    with FaultServer(content='{"hours": 45, "reason": "long week"}') as s, LLMClient(fault_settings(s.url, max_retries=0)) as client:
        reply = client.complete(ask())
    assert reply.failure == "schema_violation" and "45" in reply.error and "hours" in reply.error


def test_a_usable_reply_has_no_failure() -> None:
    with FaultServer(content='{"hours": 40, "reason": "steady"}') as s, LLMClient(fault_settings(s.url)) as client:
        reply = client.complete(ask())
    assert reply.ok and reply.failure is None and reply.error is None and not reply.truncated


# -- truncation --------------------------------------------------------------------------------
def test_a_reply_cut_at_max_tokens_is_marked_truncated() -> None:
    with FaultServer(content='{"hours": 40, "reason": "steady"}', finish_reason="length") as s:
        with LLMClient(fault_settings(s.url)) as client:
            reply = client.complete(ask())
    assert reply.ok and reply.truncated


def test_an_unusable_truncated_reply_says_it_was_cut_off() -> None:
    with FaultServer(default="malformed", finish_reason="length") as s, LLMClient(fault_settings(s.url, max_retries=0)) as client:
        reply = client.complete(ask())
    assert reply.truncated and reply.failure == "invalid_json" and "cut off at max_tokens" in reply.error
