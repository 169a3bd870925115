"""The language-model client against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from pathlib import Path

import pytest

from llm_economist.llm import openai_backend
from llm_economist.llm.openai_backend import FAILURES_TO_REST
from llm_economist.llm import (
    CacheError,
    ChatRequest,
    LLMClient,
    LLMSettings,
    SchemaViolation,
    extract_json,
    request_key,
    validate,
)
from fault_server import KEY, OK_CONTENT, FaultServer, fault_settings

SCHEMA = {
    "type": "object",
    "properties": {
        "hours": {"type": "integer", "minimum": 0, "maximum": 80},
        "reason": {"type": "string", "maxLength": 100},
    },
    "required": ["hours", "reason"],
    "additionalProperties": False,
}


def ask(i: int = 0, **kw) -> ChatRequest:
    return ChatRequest((("system", "You are a worker."), ("user", f"Hours this week? (agent {i})")), SCHEMA, seed=i, tag="worker", **kw)


@pytest.fixture
def server():
    with FaultServer() as s:
        yield s


# -- retries -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["500", "429", "hang"])
def test_transient_failures_are_retried_then_succeed(fault: str) -> None:
    with FaultServer(script=[fault, fault], hang_s=2.0) as s, LLMClient(fault_settings(s.url)) as client:
        reply = client.complete(ask())
        assert reply.ok and reply.data == {"hours": 40, "reason": "steady week"}
        assert reply.error is None and reply.attempts == 3
        u = client.usage.as_dict()
        assert (u["http_calls"], u["retries"], u["failures"], u["requests"]) == (3, 2, 0, 1)
        assert len(s.chat_requests) == 3
        assert u["by_tag"]["worker"]["retries"] == 2


def test_retries_are_bounded_and_the_error_names_the_status() -> None:
    with FaultServer(default="500") as s, LLMClient(fault_settings(s.url, max_retries=2)) as client:
        reply = client.complete(ask())
    assert not reply.ok and reply.text is None and reply.attempts == 3
    assert "HTTP 500" in reply.error and s.url in reply.error and "3 attempts" in reply.error
    assert client.usage.failures == 1 and client.usage.retries == 2 and len(s.chat_requests) == 3


def test_timeouts_name_the_limit() -> None:
    with FaultServer(default="hang", hang_s=2.0) as s, LLMClient(fault_settings(s.url, max_retries=0)) as client:
        reply = client.complete(ask())
    assert reply.text is None and "within 0.5 s" in reply.error and reply.attempts == 1


def test_client_errors_other_than_429_are_not_retried() -> None:
    with FaultServer(default="400") as s, LLMClient(fault_settings(s.url)) as client:
        reply = client.complete(ask())
    assert not reply.ok and reply.attempts == 1 and "HTTP 400" in reply.error and reply.failure == "http_400"
    assert client.usage.retries == 0 and client.usage.failures == 1


# -- bad replies -------------------------------------------------------------------------------
def test_a_reply_that_stays_malformed_is_returned_unusable_not_raised() -> None:
    with FaultServer(default="malformed") as s, LLMClient(fault_settings(s.url, max_retries=2)) as client:
        reply = client.complete(ask())
    assert reply.data is None and not reply.ok
    assert reply.text == "I think I will work about forty hours."
    assert reply.error.startswith("invalid JSON") and reply.attempts == 3
    assert client.usage.failures == 1 and client.usage.retries == 2


def test_a_schema_violation_is_retried_with_the_next_seed() -> None:
    with FaultServer(script=["schema"]) as s, LLMClient(fault_settings(s.url)) as client:
        reply = client.complete(ask(5))
    assert reply.ok and reply.attempts == 2
    assert [r.body["seed"] for r in s.chat_requests] == [5, 6]


def test_transport_retries_resend_the_same_seed() -> None:
    with FaultServer(script=["500"]) as s, LLMClient(fault_settings(s.url)) as client:
        client.complete(ask(5))
    assert [r.body["seed"] for r in s.chat_requests] == [5, 5]


def test_a_schema_violation_that_persists_names_the_missing_field() -> None:
    with FaultServer(default="schema") as s, LLMClient(fault_settings(s.url, max_retries=0)) as client:
        reply = client.complete(ask())
    assert reply.data is None and "missing required 'hours'" in reply.error


def test_replies_without_a_schema_are_usable_text(server: FaultServer) -> None:
    server.content = "Monday I worked, Tuesday I rested."
    with LLMClient(fault_settings(server.url)) as client:
        reply = client.complete(ChatRequest((("user", "Write a diary."),), tag="narrate"))
    assert reply.ok and reply.data == {} and reply.text.startswith("Monday")
    assert "response_format" not in server.chat_requests[0].body


# -- what is sent ------------------------------------------------------------------------------
def test_structured_output_and_sampling_are_sent(server: FaultServer) -> None:
    with LLMClient(fault_settings(server.url, temperature=0.3, max_tokens=99, top_logprobs=5)) as client:
        reply = client.complete(ask(3, logprobs=True))
    body = server.chat_requests[0].body
    assert body["model"] == "fault-model" and body["seed"] == 3
    assert body["temperature"] == 0.3 and body["max_tokens"] == 99
    assert body["messages"][0] == {"role": "system", "content": "You are a worker."}
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"] == {"name": "reply", "schema": SCHEMA, "strict": True}
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert "".join(t.token for t in reply.logprobs) == OK_CONTENT
    assert len(reply.logprobs[0].top) == 5 and reply.logprobs[0].top[0][1] >= reply.logprobs[0].top[-1][1]


def test_a_grammar_replaces_the_schema_only_for_servers_that_take_one(server: FaultServer, tmp_path: Path) -> None:
    grammar = 'root ::= "{\\"hours\\": 40, \\"reason\\": \\"steady week\\"}"'
    with LLMClient(fault_settings(server.url)) as client:  # an unknown server: the schema, no grammar
        client.complete(ask(1, grammar=grammar))
    with LLMClient(fault_settings(server.url, grammar=True)) as client:  # a llama.cpp server: the exact grammar
        client.complete(ask(1, grammar=grammar))
    plain, exact = (r.body for r in server.chat_requests)
    assert "grammar" not in plain and plain["response_format"]["type"] == "json_schema"
    assert exact["grammar"] == grammar and "response_format" not in exact
    assert request_key(ask(1, grammar=grammar), model="m", max_tokens=9, temperature=0.0, seed=1, top_logprobs=0) != \
        request_key(ask(1), model="m", max_tokens=9, temperature=0.0, seed=1, top_logprobs=0)


def test_requests_are_spread_round_robin_over_base_urls() -> None:
    with FaultServer() as a, FaultServer() as b, LLMClient(fault_settings(a.url, b.url, concurrency=1)) as client:
        replies = client.complete_many([ask(i) for i in range(6)])
    assert all(r.ok for r in replies)
    assert len(a.chat_requests) == 3 and len(b.chat_requests) == 3


def test_a_failing_server_hands_its_requests_to_another_and_leaves_the_rotation() -> None:
    # No retries at all: moving a request to another server is not a retry.
    with FaultServer(default="500") as bad, FaultServer() as good:
        with LLMClient(fault_settings(bad.url, good.url, max_retries=0, concurrency=1)) as client:
            replies = client.complete_many([ask(i) for i in range(6)])
    assert all(r.ok and r.attempts == 1 for r in replies) and len(good.chat_requests) == 6
    assert len(bad.chat_requests) == FAILURES_TO_REST  # then out of rotation
    servers = client.usage.as_dict()["by_server"]
    assert servers[bad.url] == {"calls": FAILURES_TO_REST, "failures": FAILURES_TO_REST,
                                "failovers": FAILURES_TO_REST, "rested": 1, "retired": 0}
    assert servers[good.url] == {"calls": 6, "failures": 0, "failovers": 0, "rested": 0, "retired": 0}
    assert client.usage.retries == 0 and client.usage.failures == 0


def test_a_rested_server_is_tried_again_after_the_cool_down(monkeypatch) -> None:
    monkeypatch.setattr(openai_backend, "COOL_DOWN_S", 0.3)
    with FaultServer(["500", "500"]) as flaky, FaultServer() as steady:
        with LLMClient(fault_settings(flaky.url, steady.url, max_retries=0, concurrency=1)) as client:
            client.complete_many([ask(i) for i in range(6)])
            resting = len(flaky.chat_requests)
            time.sleep(0.4)
            replies = client.complete_many([ask(i) for i in range(6, 12)])
    assert resting == 2 and all(r.ok for r in replies)
    assert len(flaky.chat_requests) == resting + 3  # back in the rotation, answering its share


def test_a_request_in_flight_at_a_server_that_stops_answering_is_answered_by_another() -> None:
    with FaultServer(["hang"], hang_s=3.0) as stuck, FaultServer() as other:
        with LLMClient(fault_settings(stuck.url, other.url, timeout_s=0.5, max_retries=0, concurrency=1)) as client:
            reply = client.complete(ask(1))
    assert reply.ok and reply.attempts == 1 and len(other.chat_requests) == 1
    assert client.usage.as_dict()["by_server"][stuck.url]["failovers"] == 1


def test_a_slow_server_holds_no_more_requests_than_its_limit() -> None:
    with FaultServer(delay_s=0.5) as slow, FaultServer() as fast:
        settings = fault_settings(slow.url, fast.url, concurrency=8, server_concurrency=2, timeout_s=5.0)
        with LLMClient(settings) as client:
            replies = client.complete_many([ask(i) for i in range(24)])
    assert all(r.ok for r in replies)
    assert slow.max_in_flight <= 2 and fast.max_in_flight <= 2
    assert len(fast.chat_requests) > 2 * len(slow.chat_requests)  # the fast server took the rest


# -- cache -------------------------------------------------------------------------------------
def test_an_identical_request_is_served_from_the_cache(server: FaultServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    with LLMClient(fault_settings(server.url, cache_path=str(cache))) as client:
        first = client.complete(ask(1))
        second = client.complete(ask(1))
    assert not first.cached and second.cached and second.attempts == 0
    assert second.failure is None and not second.truncated
    assert second.data == first.data and second.key == first.key
    assert len(server.chat_requests) == 1
    assert client.usage.cache_hits == 1 and client.usage.http_calls == 1
    with LLMClient(fault_settings(server.url, cache_path=str(cache))) as again:  # a rerun is free
        assert again.complete(ask(1)).cached
    assert len(server.chat_requests) == 1


def test_the_cache_key_ignores_url_and_tag_but_not_the_seed(server: FaultServer, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache.sqlite")
    with FaultServer() as other:
        with LLMClient(fault_settings(server.url, cache_path=cache)) as client:
            client.complete(ask(1))
        with LLMClient(fault_settings(other.url, cache_path=cache)) as client:
            assert client.complete(dataclasses.replace(ask(1), tag="vote")).cached
            assert not client.complete(ask(2)).cached
        assert len(other.chat_requests) == 1


def test_unusable_replies_are_not_cached(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache.sqlite")
    with FaultServer(script=["malformed"]) as s:
        with LLMClient(fault_settings(s.url, cache_path=cache, max_retries=0)) as client:
            assert not client.complete(ask()).ok
            assert client.complete(ask()).ok
        assert len(s.chat_requests) == 2


def test_concurrent_identical_requests_make_one_call(server: FaultServer, tmp_path: Path) -> None:
    server.delay_s = 0.1
    with LLMClient(fault_settings(server.url, cache_path=str(tmp_path / "c.sqlite"))) as client:
        replies = client.complete_many([ask(1)] * 5)
    assert all(r.ok for r in replies) and sum(r.cached for r in replies) == 4
    assert len(server.chat_requests) == 1


def test_a_corrupt_cache_file_is_named_in_the_error(server: FaultServer, tmp_path: Path) -> None:
    bad = tmp_path / "broken.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError, match="broken.sqlite"):
        LLMClient(fault_settings(server.url, cache_path=str(bad)))


def test_the_cache_stores_text_and_token_counts(server: FaultServer, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    with LLMClient(fault_settings(server.url, cache_path=str(cache))) as client:
        reply = client.complete(ask(logprobs=True))
    rows = sqlite3.connect(cache).execute("SELECT key, text, prompt_tokens, completion_tokens FROM replies").fetchall()
    assert rows == [(reply.key, OK_CONTENT, reply.prompt_tokens, reply.completion_tokens)]


# -- the key -----------------------------------------------------------------------------------
def test_the_api_key_is_sent_but_never_shown_or_stored(server: FaultServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAULT_KEY", KEY)
    cache = tmp_path / "cache.sqlite"
    s = fault_settings(server.url, api_key_env="FAULT_KEY", cache_path=str(cache))
    with LLMClient(s) as client:
        client.complete(ask())
        shown = repr(client) + str(client) + repr(s) + repr(client.usage) + str(client.usage.as_dict())
    assert server.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in shown and "SECRET" not in shown
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"SECRET" not in stored


def test_an_explicit_key_wins_and_local_servers_get_a_placeholder(server: FaultServer, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LLMClient(fault_settings(server.url)) as client:
        client.complete(ask(1))
    with LLMClient(fault_settings(server.url), api_key=KEY) as client:
        client.complete(ask(2))
    assert [r.headers["authorization"] for r in server.chat_requests] == ["Bearer none", f"Bearer {KEY}"]


# -- concurrency and the async path ------------------------------------------------------------
def test_concurrency_limit_is_respected(server: FaultServer) -> None:
    server.delay_s = 0.1
    with LLMClient(fault_settings(server.url, concurrency=3)) as client:
        replies = client.complete_many([ask(i) for i in range(12)])
    assert all(r.ok for r in replies)
    assert server.max_in_flight == 3


def test_async_path_preserves_order(server: FaultServer) -> None:
    async def main() -> list:
        async with LLMClient(fault_settings(server.url, concurrency=4)) as client:
            return await client.acomplete_many([ask(i) for i in range(8)])

    replies = asyncio.run(main())
    keys = [request_key(ask(i), model="fault-model", max_tokens=LLMSettings().max_tokens, temperature=0.7, seed=i, top_logprobs=20) for i in range(8)]
    assert [r.key for r in replies] == keys and all(r.ok for r in replies)
    assert sorted(r.body["seed"] for r in server.chat_requests) == list(range(8))


def test_the_sync_facade_works_across_calls_and_event_loops(server: FaultServer) -> None:
    async def on_another_loop(client: LLMClient):
        reply = await client.acomplete(ask(2))
        await client.backend.aclose()  # this loop's connections end with it
        return reply

    with LLMClient(fault_settings(server.url)) as client:
        assert client.complete(ask(1)).ok
        assert asyncio.run(on_another_loop(client)).ok
        assert client.complete(ask(3)).ok
    assert len(server.chat_requests) == 3


# -- accounting --------------------------------------------------------------------------------
def test_cost_is_accounted_from_token_prices(server: FaultServer) -> None:
    s = fault_settings(server.url, price_prompt_per_million=2.0, price_completion_per_million=10.0)
    with LLMClient(s) as client:
        client.complete_many([ask(i) for i in range(3)])
        u = client.usage.as_dict()
    assert u["prompt_tokens"] > 0 and u["completion_tokens"] > 0
    assert u["cost_usd"] == pytest.approx((u["prompt_tokens"] * 2.0 + u["completion_tokens"] * 10.0) / 1e6)
    assert u["by_tag"]["worker"]["requests"] == 3


def test_cost_is_none_without_prices(server: FaultServer) -> None:
    with LLMClient(fault_settings(server.url)) as client:
        client.complete(ask())
        assert client.usage.as_dict()["cost_usd"] is None


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [("temperature", -1.0), ("max_tokens", 0), ("timeout_s", 0.0), ("max_retries", -1), ("concurrency", 0),
     ("backend", "vllm"), ("top_logprobs", 21), ("base_urls", ("ftp://x",)), ("base_urls", ("http://u:p@host/v1",))],
)
def test_bad_settings_name_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=field):
        LLMSettings(**{field: value})


def test_requests_check_their_messages_and_schema() -> None:
    with pytest.raises(ValueError, match="role"):
        ChatRequest((("robot", "hi"),))
    with pytest.raises(ValueError, match="oneOf"):
        ChatRequest((("user", "hi"),), {"type": "object", "properties": {"a": {"oneOf": []}}})
    assert ChatRequest([["user", "hi"]]).messages == (("user", "hi"),)


def test_json_is_found_inside_fences_and_prose() -> None:
    assert extract_json('```json\n{"hours": 40}\n```') == {"hours": 40}
    assert extract_json('Sure! Here it is: {"hours": 40} hope that helps {') == {"hours": 40}
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json("forty hours")


def test_validation_coerces_integers_and_names_the_path() -> None:
    assert validate({"hours": "40", "reason": "x"}, SCHEMA) == {"hours": 40, "reason": "x"}
    assert validate({"hours": 40.0, "reason": "x"}, SCHEMA)["hours"] == 40
    for bad, where in [({"hours": 81, "reason": "x"}, "maximum"), ({"hours": 4.5, "reason": "x"}, "integer"),
                       ({"hours": 1, "reason": "x", "extra": 1}, "unexpected"), ({"hours": True, "reason": "x"}, "integer")]:
        with pytest.raises(SchemaViolation, match=where):
            validate(bad, SCHEMA)
    enum = {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2}
    assert validate(["a"], enum) == ["a"]
    with pytest.raises(SchemaViolation, match=r"\$\[1\]"):
        validate(["a", "c"], enum)
