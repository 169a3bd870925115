"""A language-model planner doing in-context reinforcement learning over any mechanism.

Each year the prompt carries the mechanism's description and parameter schema, a fixed-length
window of past years (parameters and outcomes; its length does not grow with the number of
workers or years), the best parameters so far over the whole run, and what the last change did.
Exploration and exploitation cues can be switched off for ablations. The reply is JSON with
one bounded number per parameter; an unusable reply keeps the current parameters and is
counted.
"""

from __future__ import annotations

import torch

from ..llm import ChatRequest, LLMClient
from ..mechanisms.base import Mechanism
from ..population_model import PopulationModel
from .base import Planner, YearRecord

Tensor = torch.Tensor

SYSTEM_PROMPT = (
    "You are an economic policy planner. Each year you set the parameters of a tax mechanism to make "
    "social welfare as high as possible, learning from what happened in earlier years. Answer only with JSON."
)
EXPLORE_CUE = "If welfare has stopped improving, try parameter values you have not tried yet."
EXPLOIT_CUE = "If your last change made welfare worse, move back towards the best parameters so far."


def _values(mechanism: Mechanism, theta: Tensor) -> str:
    return ", ".join(f"{name}={value:.3g}" for name, value in mechanism.as_dict(theta).items())


def _outcome(record: YearRecord) -> str:
    m = record.metrics
    return (
        f"welfare {record.welfare:,.1f}; mean hours {m['mean_hours']:.1f}; revenue ${m['revenue']:,.0f}; "
        f"Gini of consumption {m['gini_consumption']:.3f}"
    )


class LLMPlanner(Planner):
    kind = "llm"

    def __init__(
        self, mechanism: Mechanism, client: LLMClient | None, history_window: int = 8, explore_cue: bool = True,
        exploit_cue: bool = True, seed: int = 0,
    ) -> None:
        if history_window < 1:
            raise ValueError(f"llm planner: history_window must be at least 1, got {history_window}")
        super().__init__(mechanism)
        self.client = client
        self.history_window = history_window
        self.explore_cue, self.exploit_cue = explore_cue, exploit_cue
        self.seed = seed

    def schema(self) -> dict:
        properties = {p.name: {"type": "number", "minimum": p.low, "maximum": p.high} for p in self.mechanism.parameters}
        properties["reason"] = {"type": "string", "maxLength": 160}
        return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}

    def prompt(self, year: int, history: list[YearRecord], welfare_name: str) -> str:
        m = self.mechanism
        lines = [f"Mechanism: {m.describe()}", "Parameters (name: range, unit, meaning):"]
        lines += [f"- {p.name}: {p.low:g} to {p.high:g} {p.unit}, {p.description}" for p in m.parameters]
        lines.append(f"Welfare is the {welfare_name.replace('_', ' ')} social welfare of all workers; higher is better.")
        if not history:
            lines.append(f"No year has been played yet. The starting parameters are {_values(m, m.initial())}.")
        else:
            lines.append("Recent years (oldest first):")
            lines += [f"year {r.year}: {_values(m, r.theta)} -> {_outcome(r)}" for r in history[-self.history_window :]]
            best = max(history, key=lambda r: r.welfare)
            lines.append(f"Best so far: year {best.year} with {_values(m, best.theta)} -> welfare {best.welfare:,.1f}.")
            if len(history) >= 2:
                before, after = history[-2], history[-1]
                moved = [
                    f"{name} {after_v - before_v:+.3g}"
                    for (name, before_v), after_v in zip(m.as_dict(before.theta).items(), m.as_dict(after.theta).values())
                    if abs(after_v - before_v) > 1e-9
                ]
                change = ", ".join(moved) if moved else "no parameter changed"
                lines.append(f"Last change: {change} -> welfare {after.welfare - before.welfare:+,.1f}.")
        if self.explore_cue:
            lines.append(EXPLORE_CUE)
        if self.exploit_cue:
            lines.append(EXPLOIT_CUE)
        lines.append(f"Propose the parameters for year {year}: every parameter, and a one-line reason.")
        return "\n".join(lines)

    def propose(self, year: int, history: list[YearRecord], population_model: PopulationModel) -> Tensor:
        if self.client is None:
            raise ValueError("llm planner: the run has no language-model client (configure the `llm` section)")
        current = history[-1].theta if history else self.mechanism.initial()
        request = ChatRequest(
            (("system", SYSTEM_PROMPT), ("user", self.prompt(year, history, population_model.welfare_name))),
            self.schema(), "mechanism_parameters", seed=(self.seed * 7919 + year) % 2**31, tag="planner",
        )
        reply = self.client.complete(request)
        theta, failure, error = current.clone(), reply.failure, reply.error or ""
        if reply.ok:
            values = [reply.data.get(p.name) for p in self.mechanism.parameters]
            proposal = torch.tensor([float(v) for v in values], dtype=torch.float64)  # numbers within bounds: the schema says so
            theta = self.mechanism.clip(proposal)
        self.log.append({
            "year": year, "fallback": failure is not None, "failure": failure,
            "reason": (reply.data or {}).get("reason", "") if reply.ok else "",
            "error": error, "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "prompt_hash": reply.key,
        })
        return theta
