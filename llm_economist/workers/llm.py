"""Language-model workers: each persona reads its situation in plain words and chooses hours.

The prompt is compact (a few hundred tokens): who the worker is, the tax rules in one line, its
own last outcome, a short memory of earlier periods, and what a few social-graph neighbours did
and said. The reply is structured (JSON schema): hours from a set of 10-hour bins, three
readable reasoning channels on a 1-5 scale, a one-line reason and a short public message that
the neighbours read next period.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..economy.labour import LLM_HOURS_PER_BIN, jensen_shannon, llm_hour_bins
from ..economy.outcome import Outcome
from ..economy.policy import Policy
from ..economy.tax import NEVER_REACHED_INCOME
from ..economy.utility import Preferences, annual_income, utility
from ..llm import ChatReply, ChatRequest, LLMClient, TokenLogprob
from ..mechanisms.base import Mechanism
from ..governance import Ballots, Platform
from ..personas import EDGE_TYPES, Population, SocialGraph, persona_texts
from .archetypes import assign_archetypes
from .base import Decisions, Observation, Workers
from .rational import RationalWorkers

if TYPE_CHECKING:
    from ..population_model import PopulationModel

Tensor = torch.Tensor

FALLBACK_HOURS = 40.0
CHANNELS = ("fairness", "trust", "stress")
# Everything shared by all workers in a period comes first, so the server's prompt cache reuses it
# up to the worker's shuffled hour options; only those, the persona and the worker's own situation
# are new tokens for each call. (Listed last in the worker's own message instead, the options lead
# the embedded model to take the first one shown: position bias 0.59 bits against 0.01 here.)
WORK_PROMPT = (
    "You are a worker in an economy. Each week you decide how many hours to work: more hours mean more "
    "income but less free time. {rules}\nAnswer only with JSON: hours (one of {bins}); fairness of the "
    "taxes, trust in the government and your financial stress, each from 1 (low) to 5 (high); a one-line "
    "reason; a short message to your contacts."
)
# The budget menu: what each hour choice leaves the worker to spend, so a model that cannot do
# the tax arithmetic can still weigh money against free time. The reply is hours first.
MENU_PROMPT = (
    "You are a worker deciding how many hours a week to work this year. More hours leave you more to spend "
    "but less free time. Answer only with JSON: hours (one of your options), then the fairness of the taxes, "
    "your trust in the government and your financial stress, each from 1 (low) to 5 (high)."
)
MENU_MAX_TOKENS = 40  # {"hours": 40, "fairness": 3, "trust": 3, "stress": 3} and room to spare
DECISION_FORMATS = ("narrative", "budget_menu")
VOTE_PROMPT = (
    "You are a voter in an economy. An election decides next year's taxes. Answer only with JSON: your "
    "ranking of all platforms from best to worst for you (letters), the platforms you approve of, and a "
    "one-line reason."
)


def decision_schema(bins: Sequence[int]) -> dict:
    channel = {"type": "integer", "minimum": 1, "maximum": 5}
    return {
        "type": "object",
        "properties": {
            "hours": {"type": "integer", "enum": list(bins)},
            "fairness": channel,
            "trust": channel,
            "stress": channel,
            "reason": {"type": "string", "maxLength": 60},
            "message": {"type": "string", "maxLength": 48},
        },
        "required": ["hours", "fairness", "trust", "stress", "reason", "message"],
        "additionalProperties": False,
    }


def menu_schema(bins: Sequence[int]) -> dict:
    channel = {"type": "integer", "minimum": 1, "maximum": 5}
    return {
        "type": "object",
        "properties": {"hours": {"type": "integer", "enum": list(bins)}, **{c: channel for c in CHANNELS}},
        "required": ["hours", *CHANNELS],
        "additionalProperties": False,
    }


def menu_grammar(bins: Sequence[int]) -> str:
    """The budget menu's reply exactly (GBNF): no optional whitespace, so the first token the model
    chooses after the fixed prefix `{"hours": ` is the digit that names its hour bin."""
    options = " | ".join(f'"{b}"' for b in bins)
    channels = "".join(f' ", \\"{c}\\": " [1-5]' for c in CHANNELS)
    return f'root ::= "{{\\"hours\\": " bin{channels} "}}"\nbin ::= {options}'


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
        if '"hours"' not in before or not _lead(token.token).isdigit():
            continue
        mass = dict.fromkeys(bins, 0.0)
        alternatives = token.top or ((token.token, token.logprob),)
        top = max(logprob for _, logprob in alternatives)
        for alternative, logprob in alternatives:
            head = _lead(alternative)
            if head.isdigit() and int(head) * LLM_HOURS_PER_BIN in mass:
                # Relative to the top alternative, so a small temperature cannot underflow every weight.
                mass[int(head) * LLM_HOURS_PER_BIN] += math.exp((logprob - top) / temperature) if temperature > 0 else float(logprob == top)
        total = sum(mass.values())
        return [mass[b] / total for b in bins] if total > 0 else None
    return None


def _lead(token: str) -> str:
    """A token's first character past the JSON punctuation a tokenizer may glue to a value (`: 4`)."""
    return token.lstrip(' \t\n:"')[:1]


def _money(x: float) -> str:
    """$950, $12.5k, $50k, -$1.2k: short enough for a prompt, exact enough for a decision."""
    sign, x = ("-" if x < 0 else ""), abs(x)
    if x < 1000:
        return f"{sign}${x:,.0f}"
    return f"{sign}${x / 1000:,.1f}".removesuffix(".0") + "k"


def schedule_line(policy: Policy, expected_transfer: float) -> str:
    """Brackets and rates in one line, then the equal payment everyone receives."""
    cut = [c for c in policy.schedule.cutoffs.tolist() if c < NEVER_REACHED_INCOME]
    rates = policy.schedule.rates.detach().reshape(-1, policy.schedule.n_brackets)[0].tolist()[: len(cut)]
    parts = [
        (f"{_money(cut[j])}-{_money(cut[j + 1])}" if j + 1 < len(cut) else f"over {_money(cut[j])}") + f": {100 * rate:.0f}%"
        for j, rate in enumerate(rates)
    ]
    payment = (
        f"Everyone also receives an equal payment, {_money(expected_transfer)} a year last week."
        if expected_transfer
        else "Tax revenue is paid back to everyone in equal shares."
    )
    return "Income tax on yearly income: " + ", ".join(parts) + ". " + payment


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
        if decision_format not in DECISION_FORMATS:
            raise ValueError(f"llm workers: decision_format must be one of {DECISION_FORMATS}, got {decision_format!r}")
        self.decision_format = decision_format
        self.satisfaction = satisfaction
        self.client = client
        self.graph = graph
        self.prefs = prefs
        self.seed = seed
        self.memory = memory
        self.neighbours = neighbours
        self.raw_text = raw_text
        self.scored = scored
        self.bins = llm_hour_bins(prefs.max_hours)
        self.personas = persona_texts(population, wage=False)  # the prompt states the wage in force itself
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

    # -- prompts ----------------------------------------------------------------------------
    def situation(self, agent: int, obs: Observation) -> str:
        """The worker's own part of the narrative prompt: persona, wage, last outcome, memory, contacts."""
        persona = self.personas[agent]
        lines = [f"You are {persona[:1].lower()}{persona[1:]}", f"You earn ${float(obs.wage[agent]):,.2f} an hour."]
        last = obs.last
        if last is None:
            lines.append("This is your first week under these rules.")
        else:
            z, tax, transfer = (float(last.income[agent]), float(last.tax[agent]), float(last.transfer.reshape(-1)[0]))
            rate = float(obs.policy.for_agent(agent).schedule.marginal_rate(last.income[agent : agent + 1])[0])
            lines.append(
                f"Last week you worked {float(last.hours[agent]):.0f} h: yearly pace {_money(z)} earned, "
                f"{_money(tax)} tax, {_money(transfer)} rebate, {_money(z - tax + transfer)} to spend; "
                f"each extra dollar is taxed {100 * rate:.0f}%."
            )
            earlier = [f"{float(o.hours[agent]):.0f} h" for o in obs.recent[:-1]]
            if earlier:
                lines.append("Before that: " + ", ".join(earlier) + ".")
        said = obs.last_decisions.columns.get("message") if obs.last_decisions is not None else None
        if self.neighbours and last is not None:
            row = self.graph.neighbours[agent].tolist()
            kinds = self.graph.edge_type[agent].tolist()
            heard = []
            for j, kind in zip(row, kinds):
                if j < 0 or len(heard) >= self.neighbours:
                    continue
                quote = f' and said "{said[j]}"' if said is not None and said[j] else ""
                heard.append(f"a {EDGE_TYPES[kind].replace('_', ' ')} worked {float(last.hours[j]):.0f} h{quote}")
            if heard:
                lines.append("Your contacts: " + "; ".join(heard) + ".")
        lines.append("Choose your hours for this week.")
        return "\n".join(lines)

    def options(self, agent: int, obs: Observation) -> tuple[int, ...]:
        """The hour options in the order this agent is shown them: shuffled once per agent and seed
        (the traces record it), reversed for the probe's test of position bias."""
        order = tuple(int(b) for b in np.random.default_rng([self.seed, agent]).permutation(self.bins))
        return order[::-1] if obs.reverse_options else order

    def menu(self, agent: int, obs: Observation, order: Sequence[int]) -> str:
        """The budget menu's user message: persona, wage, what each option leaves to spend, the
        worker's own recent choices with what they left it (and how satisfying they were), contacts."""
        persona, wage = self.personas[agent], obs.wage[agent]
        transfer = float(obs.expected_transfer.reshape(-1)[0])
        schedule = obs.policy.for_agent(agent).schedule
        hours = torch.tensor(order, dtype=obs.wage.dtype)
        spend = annual_income(wage, hours) - schedule.tax(annual_income(wage, hours)) + transfer
        lines = [f"You are {persona[:1].lower()}{persona[1:]}",
                 f"You earn ${float(wage):,.2f} an hour. What you would have to spend in the year after taxes, "
                 f"the equal payment of {_money(transfer)} included, for each choice:"]
        lines += [f"{h} h: {_money(c)}" for h, c in zip(order, spend.tolist())]
        if obs.recent:
            score = self._satisfaction(agent, hours, spend) if self.satisfaction else None
            past = []
            for o in obs.recent[-self.memory:]:
                h, c = o.hours[agent], o.consumption[agent]
                past.append(f"{float(h):.0f} h left you {_money(float(c))}" + (f" (satisfaction {score(h, c)}/10)" if score else ""))
            lines.append("Your recent weeks, most recent last: " + "; ".join(past) + ".")
            contacts = [j for j in self.graph.neighbours[agent].tolist() if j >= 0][: self.neighbours]
            if contacts:
                lines.append("Your contacts worked " + ", ".join(f"{float(obs.last.hours[j]):.0f} h" for j in contacts) + " last week.")
        lines.append("Choose your hours.")
        return "\n".join(lines)

    def _satisfaction(self, agent: int, hours: Tensor, spend: Tensor) -> Callable[[Tensor, Tensor], int]:
        """A 0-10 score of an (hours, spending) pair by the stated utility, from the worst to the best option now."""
        prefs = self.prefs.for_agent(agent)
        on_menu = utility(spend, hours, prefs)
        low, high = float(on_menu.min()), float(on_menu.max())

        def score(h: Tensor, c: Tensor) -> int:
            u = float(utility(c.reshape(1), h.reshape(1), prefs)[0])
            return int(round(10 * min(max((u - low) / (high - low), 0.0), 1.0))) if high > low else 10

        return score

    def request(self, agent: int, obs: Observation) -> ChatRequest:
        order = self.options(agent, obs)
        seed = (self.seed * 1_000_003 + obs.step * 100_003 + agent) % 2**31
        if self.decision_format == "budget_menu":
            messages = (("system", MENU_PROMPT), ("user", self.menu(agent, obs, order)))
            return ChatRequest(messages, menu_schema(order), "work_decision", grammar=menu_grammar(order), logprobs=self.scored,
                               max_tokens=MENU_MAX_TOKENS, seed=seed, tag="worker")
        rules = schedule_line(obs.policy.for_agent(agent), float(obs.expected_transfer.reshape(-1)[0]))
        system = WORK_PROMPT.format(rules=rules, bins=", ".join(str(b) for b in order))
        messages = (("system", system), ("user", self.situation(agent, obs)))
        return ChatRequest(messages, decision_schema(order), "work_decision", logprobs=self.scored, seed=seed, tag="worker")

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
                f"{letter} ({p.name}): {schedule_line(pol.for_agent(a), t)} For you at {_money(z)} a year: tax {_money(float(pol.schedule.tax(income[a : a + 1])[0]))}, "
                f"rebate {_money(t)}, you keep {_money(float(keep[c, a]))}."
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
