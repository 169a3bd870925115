"""Surrogate workers: the distilled transformer plays every agent at once, on CPU or GPU.

Each period the model reads every agent's persona, its context under the mechanism in force
(see ``surrogate.features``), its own memory and its neighbours' expressions from the last
period, and returns an hour distribution and reasoning channels per agent; hours are drawn
from the distribution. Memory and expressions travel in ``Decisions.recurrent``, so they belong to
the run (and its checkpoints), never to this object, and planners compared in one run do not
share them.

A language model's choice also moves with the wording of its prompt: change one number it is
shown and each worker's hours move by a different amount, at random. A smooth network of what
each agent is told cannot do that, so with ``wording_sd`` > 0 each decision's distribution is
tilted towards longer or shorter hours by ``wording_sd * z * hours / max hours``, where z is a
standard normal draw fixed by the agent and everything it is shown (`wording_noise`): the same
agent shown the same numbers gets the same draw, any change gives a fresh one. `distill
calibrate` fits the scale to the spread of individual responses a probe of the language model
measured, and stores it in the model file.

Planners that query the population model get the surrogate itself: ``expected_hours`` rolls
the model forward ``horizon`` periods under the candidate policy from a fresh start, feeding
back its own expected hours and the transfer they imply, without the wording noise (a planner
reads the mean over wordings, and the noise averages out over a population). Everything in that roll is
differentiable, so gradient planners and ``sensitivity`` work through it.
"""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path

import torch

from ..economy.policy import Policy
from ..economy.tax import TaxSchedule
from ..economy.utility import annual_income
from ..personas import Population, SocialGraph
from ..surrogate.features import context_features, persona_features, wage_feature
from ..surrogate.model import PreparedPopulation, SurrogatePopulation
from .base import Decisions, Observation, Workers

Tensor = torch.Tensor

SHIPPED_MODEL = "embedded_smollm2"  # the default surrogate: distilled from the embedded model's workers


def shipped_model_path(name: str = SHIPPED_MODEL) -> Path:
    """Weights shipped with the package (`embedded_smollm2`, or `bounded_social`: distilled from
    bounded-rational workers with habit and imitation, whose truth is known)."""
    return Path(str(files("llm_economist.surrogate") / "weights" / f"{name}.pt"))


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("workers.device: CUDA was asked for but torch sees no GPU; use cpu or auto")
    return torch.device(device)


class SurrogateWorkers(Workers):
    name = "surrogate"

    def __init__(
        self,
        model: SurrogatePopulation,
        population: Population,
        graph: SocialGraph,
        device: str = "cpu",
        horizon: int = 3,
        wording_sd: float = 0.0,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"surrogate workers: horizon must be >= 1, got {horizon}")
        if not 0.0 <= wording_sd < math.inf:
            raise ValueError(f"workers.wording_sd: must be a finite number >= 0, got {wording_sd}")
        spec = model.meta
        if not spec or "bins" not in spec:
            raise ValueError("surrogate workers: the model file carries no feature spec; train it with `distill train`")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)  # gradients flow to the mechanism only
        self.dtype = next(self.model.parameters()).dtype
        self.bins = torch.tensor(spec["bins"], dtype=torch.float64)
        self.channels = list(spec["channels"])
        self.horizon = horizon
        self.wording_sd = float(wording_sd)
        numeric, codes = persona_features(population.table, spec["levels"])
        self.persona_num, self.persona_cat = numeric.to(self.device, self.dtype), codes.to(self.device)
        self.graph = graph.to(self.device)
        self.n = population.n
        self._populations: dict[bool, PreparedPopulation] = {}

    def _prepared(self, whole: bool) -> PreparedPopulation:
        """The population as the model steps it, built once: in chunks, or as one chunk when
        autograd records (a planner's gradient through the population)."""
        if whole not in self._populations:
            with torch.no_grad():
                self._populations[whole] = self.model.prepare(self.persona_num, self.persona_cat, self.graph, self.n if whole else None)
        return self._populations[whole]

    def _step(self, wage: Tensor, context: Tensor, carry: tuple[Tensor, Tensor] | None):
        """One period with the wage in force, not the census one, as the first persona feature."""
        n = self.n
        memory, expression = carry if carry is not None else (self.model.init_memory(n, self.device), self.model.init_expression(n, self.device))
        context = context.to(self.device, self.dtype)
        population = self._prepared(whole=torch.is_grad_enabled() and context.requires_grad)
        return self.model.step(population, context, expression.to(self.dtype), memory.to(self.dtype),
                               wage_feature(wage.detach()).to(self.device, self.dtype))

    def act(self, obs: Observation, generator: torch.Generator) -> Decisions:
        last = obs.last
        context = context_features(
            obs.wage, obs.policy, obs.expected_transfer,
            last.hours if last is not None else None, last.income if last is not None else None, self.bins,
        )
        carry = obs.last_decisions.recurrent if obs.last_decisions is not None else None
        with torch.inference_mode():
            out = self._step(obs.wage, context, carry)
            logits = out.hour_logits.double().cpu()
            if self.wording_sd:
                tilt = self.wording_sd * wording_noise(context.cpu())
                logits = logits + tilt.unsqueeze(-1) * (self.bins / self.bins[-1])
            probs = torch.softmax(logits, dim=-1)
        choice = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        hours = self.bins.to(obs.wage.dtype)[choice]
        columns: dict = {"hour_distribution": probs.float()}
        for c, name in enumerate(self.channels):
            columns[name] = out.channels[:, c].float().cpu()
        return Decisions(hours, columns, recurrent=(out.memory.clone(), out.expression.clone()))

    def expected_hours(self, wage: Tensor, policy: Policy, transfer) -> Tensor:
        """(..., N) expected hours after ``horizon`` periods under ``policy``, differentiable in it."""
        batch = policy.schedule.batch_shape
        if batch:
            members = [self.expected_hours(wage, member, t) for member, t in _members(policy, transfer)]
            return torch.stack(members).reshape(*batch, -1)
        bins = self.bins.to(wage.dtype)
        transfer = torch.as_tensor(transfer, dtype=wage.dtype).reshape(1)
        carry, hours, income = None, None, None
        for _ in range(self.horizon):
            context = context_features(wage, policy, transfer, hours, income, bins)
            out = self._step(wage, context, carry)
            carry = (out.memory, out.expression)
            hours = (torch.softmax(out.hour_logits, dim=-1).to(wage.dtype) @ bins.to(self.device)).to(wage.device)
            income = annual_income(wage, hours)
            transfer = policy.transfer(policy.schedule.tax(income)).reshape(1)
        return hours


_SPLITMIX = (-4658895280553007687, -7723592293110705685)  # 0xbf58476d1ce4e5b9, 0x94d049bb133111eb as int64


def _shift(z: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 values."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def _mix(z: Tensor) -> Tensor:
    """splitmix64's finaliser on int64 tensors (multiplication wraps), a bijection that scrambles every bit."""
    z = (z ^ _shift(z, 30)) * _SPLITMIX[0]
    z = (z ^ _shift(z, 27)) * _SPLITMIX[1]
    return z ^ _shift(z, 31)


def wording_noise(context: Tensor) -> Tensor:
    """(N,) standard normal draws, one per agent (its row) and what it is shown (the row's values,
    to 2^-20): equal rows at the same index give the same draw, rows that differ anywhere give
    independent ones."""
    shown = context.double().mul(2.0**20).round_().long()  # (N, C)
    keys = _mix(torch.arange(1, shown.shape[1] + 1, dtype=torch.int64)) | 1  # an odd multiplier per column
    h = _mix(shown @ keys + _mix(torch.arange(shown.shape[0], dtype=torch.int64)))  # products and sums wrap
    u1, u2 = ((_shift(_mix(h + k), 11).double() + 0.5) / 2.0**53 for k in (1, 2))
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)  # Box-Muller


def _members(policy: Policy, transfer):
    """Each member of a batched policy (rates (..., K)), in row-major order, with its own transfer."""
    s = policy.schedule
    rates = s.rates.reshape(-1, *s.rates.shape[len(s.batch_shape):])
    lump = torch.as_tensor(policy.lump_sum, dtype=rates.dtype).reshape(-1)
    transfer = torch.as_tensor(0.0 if transfer is None else transfer, dtype=rates.dtype).reshape(-1)
    for g in range(rates.shape[0]):
        schedule = TaxSchedule(policy.schedule.cutoffs, rates[g])
        yield Policy(schedule, lump[g % len(lump)], policy.rebate_share), transfer[g % len(transfer)]
