"""The decision prompts of language-model workers: the one builder the run and tuning both use.

A worker's request is built here from what it observes: the narrative format (the rules in words,
its last outcome, a short memory, what contacts did and said) or the budget menu (what each hour
choice leaves it to spend). `llm-economist tune` builds its training prompts with the same
`DecisionPrompts`, so a tuned adapter is fitted on exactly the text workers are shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..economy.labour import llm_hour_bins
from ..economy.policy import Policy
from ..economy.tax import NEVER_REACHED_INCOME
from ..economy.utility import Preferences, annual_income, utility
from ..llm import ChatRequest
from ..personas import EDGE_TYPES, Population, SocialGraph, persona_texts
from .base import Observation

Tensor = torch.Tensor

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


HOURS_PREFIX = '{"hours": '  # the reply's fixed opening: the next token is the digit that names the hour bin


def menu_grammar(bins: Sequence[int]) -> str:
    """The budget menu's reply after `HOURS_PREFIX`, exactly (GBNF, no optional whitespace). A
    llama.cpp server is handed the prefix as the start of its answer, so the first token it chooses
    is the hour digit, after the prompt tokenised as a whole, as tuning reads it."""
    options = " | ".join(f'"{b}"' for b in bins)
    channels = "".join(f' ", \\"{c}\\": " [1-5]' for c in CHANNELS)
    return f'root ::= bin{channels} "}}"\nbin ::= {options}'


def short_money(x: float) -> str:
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
        (f"{short_money(cut[j])}-{short_money(cut[j + 1])}" if j + 1 < len(cut) else f"over {short_money(cut[j])}") + f": {100 * rate:.0f}%"
        for j, rate in enumerate(rates)
    ]
    payment = (
        f"Everyone also receives an equal payment, {short_money(expected_transfer)} a year last week."
        if expected_transfer
        else "Tax revenue is paid back to everyone in equal shares."
    )
    return "Income tax on yearly income: " + ", ".join(parts) + ". " + payment


class DecisionPrompts:
    """Builds each worker's decision request from its observation, in one decision format."""

    def __init__(self, population: Population, graph: SocialGraph, prefs: Preferences, seed: int = 0, memory: int = 3,
                 neighbours: int = 3, scored: bool = True, decision_format: str = "narrative", satisfaction: bool = False) -> None:
        if decision_format not in DECISION_FORMATS:
            raise ValueError(f"llm workers: decision_format must be one of {DECISION_FORMATS}, got {decision_format!r}")
        self.graph = graph
        self.prefs = prefs
        self.seed = seed
        self.memory = memory
        self.neighbours = neighbours
        self.scored = scored
        self.decision_format = decision_format
        self.satisfaction = satisfaction
        self.bins = llm_hour_bins(prefs.max_hours)
        self.personas = persona_texts(population, wage=False)  # the prompt states the wage in force itself

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
                f"Last week you worked {float(last.hours[agent]):.0f} h: yearly pace {short_money(z)} earned, "
                f"{short_money(tax)} tax, {short_money(transfer)} rebate, {short_money(z - tax + transfer)} to spend; "
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
                 f"the equal payment of {short_money(transfer)} included, for each choice:"]
        lines += [f"{h} h: {short_money(c)}" for h, c in zip(order, spend.tolist())]
        if obs.recent:
            score = self._satisfaction(agent, hours, spend) if self.satisfaction else None
            past = []
            for o in obs.recent[-self.memory:]:
                h, c = o.hours[agent], o.consumption[agent]
                past.append(f"{float(h):.0f} h left you {short_money(float(c))}" + (f" (satisfaction {score(h, c)}/10)" if score else ""))
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
            return ChatRequest(messages, menu_schema(order), "work_decision", grammar=menu_grammar(order), answer_prefix=HOURS_PREFIX,
                               logprobs=self.scored, max_tokens=MENU_MAX_TOKENS, seed=seed, adapter=True, tag="worker")
        rules = schedule_line(obs.policy.for_agent(agent), float(obs.expected_transfer.reshape(-1)[0]))
        system = WORK_PROMPT.format(rules=rules, bins=", ".join(str(b) for b in order))
        messages = (("system", system), ("user", self.situation(agent, obs)))
        return ChatRequest(messages, decision_schema(order), "work_decision", logprobs=self.scored, seed=seed, adapter=True, tag="worker")
