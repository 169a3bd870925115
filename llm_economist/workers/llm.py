"""Language-model workers: each persona reads its situation in plain words and chooses hours.

The prompt (`prompts.DecisionPrompts`) is compact, a few hundred tokens, in one of two decision
formats. The reply is structured (JSON schema): hours from a set of 10-hour bins, three readable
reasoning channels on a 1-5 scale and, in the narrative format, a one-line reason and a short
public message that the neighbours read next period.

Scored choice: where the server returns log-probabilities, the hours come with a probability
distribution over the bins, read off the alternatives for the first digit of the hours value
(every bin 0, 10, ..., 90 starts with a different digit).

A reply that stays unusable after the client's retries falls back to the worker's previous hours
(40 in the first period); fallbacks are counted and flagged in the traces. In archetype mode one
call per archetype serves all its members, who draw their hours from the archetype's
distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..economy.labour import LLM_HOURS_PER_BIN, jensen_shannon
from ..economy.outcome import Outcome
from ..economy.policy import Policy
from ..economy.utility import Preferences
from ..llm import ChatReply, ChatRequest, LLMClient, TokenLogprob
from ..mechanisms.base import Mechanism
from ..governance import Ballots, Platform
from ..personas import Population, SocialGraph
from .archetypes import assign_archetypes
from .base import Decisions, Observation, Workers
from .prompts import CHANNELS, DecisionPrompts, schedule_line, short_money
from .rational import RationalWorkers

if TYPE_CHECKING:
    from ..population_model import PopulationModel

Tensor = torch.Tensor

FALLBACK_HOURS = 40.0
DIGITS = frozenset("0123456789")  # ASCII only: a superscript or other script's digit names no bin
VOTE_PROMPT = (
    "You are a voter in an economy. An election decides next year's taxes. Answer only with JSON: your "
    "ranking of all platforms from best to worst for you (letters), the platforms you approve of, and a "
    "one-line reason."
)


def hour_distribution(
    logprobs: Sequence[TokenLogprob] | None, bins: Sequence[int], temperature: float = 1.0
) -> list[float] | None:
    """Probabilities over `bins` from the alternatives at the first digit of the hours value.

    An alternative counts for the bin named by its first digit; mass on anything else (a
    non-digit, or a digit beyond the last bin) is dropped and the rest renormalised. Each
    alternative weighs exp(logprob / temperature): servers report the model's raw log-probabilities,
    while the worker's stated hours are drawn at the sampling temperature, and the distribution
    must be the one the stated hours come from (temperature 0: the most likely bin).
    """
    text = ""
    for token in logprobs or ():
        before, text = text, text + token.token
        if '"hours"' not in before or _lead(token.token) not in DIGITS:
            continue
        mass = dict.fromkeys(bins, 0.0)
        alternatives = token.top or ((token.token, token.logprob),)
        top = max(logprob for _, logprob in alternatives)
        for alternative, logprob in alternatives:
            head = _lead(alternative)
            if head in DIGITS and int(head) * LLM_HOURS_PER_BIN in mass:
                # Relative to the top alternative, so a small temperature cannot underflow every weight.
                mass[int(head) * LLM_HOURS_PER_BIN] += math.exp((logprob - top) / temperature) if temperature > 0 else float(logprob == top)
        total = sum(mass.values())
        return [mass[b] / total for b in bins] if total > 0 else None
    return None


def _lead(token: str) -> str:
    """A token's first character past the JSON punctuation a tokenizer may glue to a value (`: 4`)."""
    return token.lstrip(' \t\n:"')[:1]


@dataclass(frozen=True)
class ParsedDecision:
    hours: float
    distribution: list[float] | None
    channels: tuple[int, int, int] | None
    reason: str
    message: str
    failure: str | None  # why the reply was unusable ("timeout", "http_500", ...); None when used

    @property
    def fallback(self) -> bool:
        return self.failure is not None


class LLMWorkers(Workers):
    """Persona workers voiced by a language model through an OpenAI-compatible client."""

    name = "llm"

    def __init__(
        self,
        population: Population,
        graph: SocialGraph,
        client: LLMClient,
        prefs: Preferences,
        seed: int = 0,
        memory: int = 3,
        neighbours: int = 3,
        archetypes: int = 0,
        archetype_check: int = 24,
        raw_text: bool = False,
        scored: bool = True,
        decision_format: str = "narrative",
        satisfaction: bool = False,
    ) -> None:
        if memory < 1 or neighbours < 0 or archetypes < 0 or archetype_check < 0:
            raise ValueError("llm workers: memory >= 1, neighbours >= 0, archetypes >= 0, archetype_check >= 0")
        self.prompts = DecisionPrompts(population, graph, prefs, seed, memory, neighbours, scored, decision_format, satisfaction)
        self.client = client
        self.graph = graph
        self.prefs = prefs
        self.seed = seed
        self.raw_text = raw_text
        self.bins = self.prompts.bins
        self.personas = self.prompts.personas
        self.n = population.n
        if archetypes:
            self.labels, self.representatives = assign_archetypes(population.table, archetypes, seed)
        else:
            self.labels, self.representatives = np.arange(self.n), np.arange(self.n)
        order = np.argsort(self.labels, kind="stable")
        self.members = np.split(order, np.cumsum(np.bincount(self.labels))[:-1])
        self.archetype_check = archetype_check if archetypes else 0
        # Planners query a population model; for language-model workers that is the rational
        # model with the same preferences (model-based planners say so in the report).
        self._model = RationalWorkers(prefs)

    def expected_hours(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        return self._model.expected_hours(wage, policy, transfer)

    def request(self, agent: int, obs: Observation) -> ChatRequest:
        """The agent's decision request, as `DecisionPrompts` builds it."""
        return self.prompts.request(agent, obs)

    def options(self, agent: int, obs: Observation) -> tuple[int, ...]:
        """The hour options in the order the agent is shown them."""
        return self.prompts.options(agent, obs)

    # -- prompts ----------------------------------------------------------------------------
    # -- replies ----------------------------------------------------------------------------
    def parse(self, reply: ChatReply, previous_hours: float) -> ParsedDecision:
        if not reply.ok:
            return ParsedDecision(previous_hours, None, None, "", "", reply.failure or "unusable")
        data = reply.data  # the schema guarantees hours from the bins and every channel
        channels = tuple(int(data[c]) for c in CHANNELS)
        return ParsedDecision(
            float(data["hours"]), hour_distribution(reply.logprobs, self.bins, self.client.settings.temperature), channels,
            str(data.get("reason", ""))[:60], str(data.get("message", ""))[:48], None,
        )

    def act(self, obs: Observation, generator: torch.Generator) -> Decisions:
        speakers = [int(a) for a in self.representatives]
        checked = self._check_agents(obs) if obs.step == 0 else []
        asked = speakers + checked
        replies = self.client.complete_many([self.request(a, obs) for a in asked])
        previous = obs.last.hours if obs.last is not None else torch.full((self.n,), FALLBACK_HOURS)
        parsed = [self.parse(r, float(previous[a])) for r, a in zip(replies, asked)]
        voices, checks = parsed[: len(speakers)], parsed[len(speakers) :]

        hours = torch.empty(self.n, dtype=obs.wage.dtype)
        for k, (voice, idx) in enumerate(zip(voices, self.members)):
            if voice.fallback:
                hours[idx] = previous[idx].to(hours.dtype)
            elif voice.distribution is not None and len(idx) > 1:
                probs = torch.tensor(voice.distribution, dtype=torch.float64).expand(len(idx), -1)
                draws = torch.multinomial(probs, 1, replacement=True, generator=generator).squeeze(-1)
                hours[idx] = torch.tensor(self.bins, dtype=hours.dtype)[draws]
                hours[speakers[k]] = voice.hours  # the voice itself keeps what it said
            else:
                hours[idx] = voice.hours
        columns = self._columns(voices, replies[: len(speakers)])
        columns["option_order"] = [",".join(map(str, self.options(int(self.representatives[k]), obs))) for k in self.labels]
        diagnostics = self._diagnostics(replies[: len(speakers)], voices)
        if checks:
            diagnostics.update(self._archetype_check(checked, checks, voices))
        return Decisions(hours, columns, diagnostics, fallbacks=tuple(v.failure for v in voices))

    def _columns(self, voices: list[ParsedDecision], replies: list[ChatReply]) -> dict[str, list]:
        """Per-agent trace columns; members of an archetype carry their archetype's reply."""
        of = self.labels
        columns: dict[str, list] = {
            "archetype": of.tolist(),
            "prompt_hash": [replies[k].key for k in of],
            "stated_hours": [voices[k].hours for k in of],
            "hour_distribution": [voices[k].distribution for k in of],
            "fallback": [voices[k].fallback for k in of],
            "fallback_reason": [f"{voices[k].failure}: {replies[k].error}" if voices[k].fallback else None for k in of],
            "reason": [voices[k].reason for k in of],
            "message": [voices[k].message for k in of],
            "prompt_tokens": [replies[k].prompt_tokens for k in of],
            "completion_tokens": [replies[k].completion_tokens for k in of],
            "cached": [replies[k].cached for k in of],
        }
        for c, name in enumerate(CHANNELS):
            columns[name] = [voices[k].channels[c] if voices[k].channels else None for k in of]
        if self.raw_text:
            columns["raw_text"] = [replies[k].text for k in of]
        return columns

    @staticmethod
    def _diagnostics(replies: list[ChatReply], voices: list[ParsedDecision]) -> dict[str, float]:
        """Counts for the run summary."""
        return {
            "llm_decisions": float(len(voices)),
            "llm_fallbacks": float(sum(v.fallback for v in voices)),
            "llm_scored": float(sum(v.distribution is not None for v in voices)),
            "llm_cache_hits": float(sum(r.cached for r in replies)),
            "llm_prompt_tokens": float(sum(r.prompt_tokens for r in replies)),
            "llm_completion_tokens": float(sum(r.completion_tokens for r in replies)),
        }

    def _check_agents(self, obs: Observation) -> list[int]:
        """Agents (not representatives) to also ask one by one, to measure the archetype shortcut."""
        if not self.archetype_check:
            return []
        others = np.setdiff1d(np.arange(self.n), self.representatives)
        rng = np.random.default_rng(self.seed)
        return sorted(int(a) for a in rng.choice(others, size=min(self.archetype_check, len(others)), replace=False))

    def _archetype_check(self, agents: list[int], own: list[ParsedDecision], voices: list[ParsedDecision]) -> dict[str, float]:
        """How far per-agent answers fall from their archetype's: mean |hours gap| and Jensen-Shannon."""
        gaps, divergences = [], []
        for agent, mine in zip(agents, own):
            theirs = voices[self.labels[agent]]
            if mine.fallback or theirs.fallback:
                continue
            gaps.append(abs(mine.hours - theirs.hours))
            if mine.distribution and theirs.distribution:
                divergences.append(jensen_shannon(mine.distribution, theirs.distribution))
        result = {"archetype_check_agents": float(len(gaps))}
        if gaps:
            result["archetype_check_mean_abs_hours_gap"] = float(np.mean(gaps))
        if divergences:
            result["archetype_check_mean_js_divergence"] = float(np.mean(divergences))
        return result


    # -- elections --------------------------------------------------------------------------
    def ballots(
        self, platforms: Sequence[Platform], mechanism: Mechanism, population_model: PopulationModel, last: Outcome | None, year: int
    ) -> tuple[Ballots, dict[str, float]]:
        """Each voice ranks and approves the platforms after reading what each means for it.

        A ranking that repeats or omits platforms is completed in order of the money the voter
        would keep (counted as repaired); an unusable reply votes by that order outright and
        approves only its first choice (counted as a fallback).
        """
        letters = [f"P{c + 1}" for c in range(len(platforms))]
        policies = [population_model.resolve(mechanism.compile(p.theta)) for p in platforms]
        transfers = [float(population_model.respond(policy).transfer.reshape(-1)[0]) for policy in policies]
        income = last.income if last is not None else population_model.respond(policies[0]).income
        keep = torch.stack([income - pol.schedule.tax(income) + t for pol, t in zip(policies, transfers)])  # (C, N)
        schema = {
            "type": "object",
            "properties": {
                "ranking": {"type": "array", "items": {"type": "string", "enum": letters}, "minItems": len(letters), "maxItems": len(letters)},
                "approve": {"type": "array", "items": {"type": "string", "enum": letters}, "maxItems": len(letters)},
                "reason": {"type": "string", "maxLength": 100},
            },
            "required": ["ranking", "approve", "reason"],
            "additionalProperties": False,
        }
        requests = []
        for a in (int(r) for r in self.representatives):
            z = float(income[a])
            options = [
                f"{letter} ({p.name}): {schedule_line(pol.for_agent(a), t)} For you at {short_money(z)} a year: tax {short_money(float(pol.schedule.tax(income[a : a + 1])[0]))}, "
                f"rebate {short_money(t)}, you keep {short_money(float(keep[c, a]))}."
                for c, (letter, p, pol, t) in enumerate(zip(letters, platforms, policies, transfers))
            ]
            persona = self.personas[a]
            user = f"You are {persona[:1].lower()}{persona[1:]}\nThe platforms:\n" + "\n".join(options) + "\nRank them (by label) and say which you approve of."
            messages = (("system", VOTE_PROMPT), ("user", user))
            requests.append(ChatRequest(messages, schema, "ballot", seed=(self.seed * 7_919 + year * 104_729 + a) % 2**31, tag="vote"))
        replies = self.client.complete_many(requests)
        rankings, approvals, repaired, fallbacks = [], [], 0, 0
        for k, reply in enumerate(replies):
            by_money = [int(c) for c in torch.argsort(-keep[:, int(self.representatives[k])], stable=True)]
            stated = [letters.index(x) for x in (reply.data or {}).get("ranking", []) if x in letters] if reply.ok else []
            if not stated:
                fallbacks += 1
                rankings.append(by_money)
                approvals.append([c == by_money[0] for c in range(len(letters))])
                continue
            order = list(dict.fromkeys(stated))
            repaired += len(order) < len(letters)
            order += [c for c in by_money if c not in order]
            approved = {letters.index(x) for x in reply.data.get("approve", []) if x in letters}
            rankings.append(order)
            approvals.append([c in approved for c in range(len(letters))])
        ballots = Ballots(torch.tensor(rankings)[self.labels], torch.tensor(approvals, dtype=torch.bool)[self.labels])
        return ballots, {"vote_calls": float(len(replies)), "vote_repaired": float(repaired), "vote_fallbacks": float(fallbacks)}
