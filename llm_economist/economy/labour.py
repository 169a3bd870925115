"""Labour supply: the exact best response to a piecewise-linear schedule, and a logit response.

Exact: on bracket j the budget is linear in hours, c = a_j h + b_j with
    a_j = 52 w (1 - tau_j),   b_j = transfer - T(c_j) + tau_j c_j   (virtual income),
and hours run over [c_j, c_{j+1}] / (52 w) intersected with [0, max_hours]. The optimum on a
segment solves a_j u'(a_j h + b_j) = psi h^(1/eps) (closed form when eta = 0, bisection
otherwise) or sits at an end of the segment; the best of the K segment optima is the global
optimum, kinks and corners included, for any schedule (also non-convex budget sets).

Logit (bounded rationality): P(h_b) proportional to exp(u(h_b) / (temperature * scale)), over a
grid of hour bins, with scale the utility of full-time earnings; expected hours are smooth in
the rates, which is what gradient planners and the surrogate need.

Hour bins: the choices a worker who does not optimise exactly picks from. Bounded-rational workers
use an evenly spaced grid (``hour_bins``); language-model workers state 10-hour bins
(``llm_hour_bins``). ``jensen_shannon`` says how far apart two distributions over the same bins are.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import numpy as np
import torch
from scipy.optimize import brentq

from . import tax
from .tax import TaxSchedule
from .utility import (
    MIN_CONSUMPTION,
    WEEKS_PER_YEAR,
    Preferences,
    annual_income,
    marginal_consumption_utility,
    utility,
    utility_scale,
)

Tensor = torch.Tensor
_BISECTION_STEPS = 60
CALIBRATION_XTOL = 1e-12  # log psi


def _transfer_per_choice(transfer, like: Tensor) -> Tensor:
    """A scalar or (..., 1) per-agent transfer, shaped (..., 1, 1) to broadcast over agents x choices."""
    t = torch.as_tensor(transfer, dtype=like.dtype, device=like.device)
    if t.ndim and t.shape[-1] != 1:
        raise ValueError(f"transfer must be a scalar or have shape (..., 1), got {tuple(t.shape)}")
    return t.unsqueeze(-1) if t.ndim else t


def _segment_optimum(a: Tensor, b: Tensor, lo: Tensor, hi: Tensor, prefs: Preferences) -> Tensor:
    """Hours maximising u(a h + b) - v(h) on [lo, hi]; the objective is strictly concave in h."""
    if prefs.eta == 0.0:
        return torch.minimum(torch.maximum((a / prefs.weight(-2)).pow(prefs.elasticity), lo), hi)
    inv_eps = 1.0 / prefs.elasticity

    def foc(h: Tensor) -> Tensor:  # decreasing in h
        return a * marginal_consumption_utility(a * h + b, prefs.eta) - prefs.weight(-2) * h.pow(inv_eps)

    left, right = lo.clone(), hi.clone()
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (left + right)
        up = foc(mid) > 0
        left = torch.where(up, mid, left)
        right = torch.where(up, right, mid)
    interior = 0.5 * (left + right)
    return torch.where(foc(lo) <= 0, lo, torch.where(foc(hi) >= 0, hi, interior))


def zero_tax_income(wage: Tensor, prefs: Preferences) -> Tensor:
    """(N,) what each worker earns untaxed when utility is quasi-linear, 52 w (52 w / (psi d))^eps:
    the convex best response's one power, fixed by who the workers are, so a population's
    workers keep it (`RationalWorkers`) instead of raising every wage to it each period."""
    per_hour = WEEKS_PER_YEAR * wage
    return per_hour * (per_hour / prefs.weight()).pow(prefs.elasticity)


def _quasi_linear_convex_hours(wage: Tensor, schedule: TaxSchedule, prefs: Preferences, untaxed: Tensor) -> Tensor:
    """Best response when eta = 0 and rates never fall: the budget set is convex, so

        z = min_j max(z*(tau_j), c_j),   z*(tau) = z*(0) (1 - tau)^eps,

    (desired income at each bracket's rate, pushed up to the bracket's floor: the first bracket
    whose floor binds is a kink where the worker bunches), then hours are capped. z*(0) is
    ``untaxed`` (`zero_tax_income`).
    """
    keep = (1.0 - schedule.agent_rates).clamp(min=0.0).pow(prefs.elasticity)  # (..., 1 or N, K)
    # Bracket by bracket over (..., N) rows: no (..., N, K) table to fill and reduce, and each row
    # is changed in place while it is still in the cache.
    z = untaxed * keep[..., 0]  # the first bracket starts at 0
    for j in range(1, schedule.n_brackets):
        z = z.clamp_(max=(untaxed * keep[..., j]).clamp_(min=schedule.cutoffs[..., j]))
    return z.div_(wage).div_(WEEKS_PER_YEAR).clamp_(max=prefs.max_hours)


def best_response_hours(wage: Tensor, schedule: TaxSchedule, transfer, prefs: Preferences, untaxed: Tensor | None = None) -> Tensor:
    """Utility-maximising weekly hours (..., N) for wages (N,) under rates (..., K); ``untaxed`` is
    `zero_tax_income(wage, prefs)` where the caller keeps it."""
    convex = bool((schedule.rates[..., 1:] >= schedule.rates[..., :-1]).all())
    if prefs.eta == 0.0 and convex and not prefs.has_fixed_cost:
        hours = _quasi_linear_convex_hours(wage, schedule, prefs, zero_tax_income(wage, prefs) if untaxed is None else untaxed)
        t = torch.as_tensor(transfer, dtype=wage.dtype, device=wage.device)
        return _or_idle(wage, schedule, t, prefs, hours) if bool((t < MIN_CONSUMPTION).any()) else hours
    return _best_of_segments(wage, schedule, transfer, prefs)


def _or_idle(wage: Tensor, schedule: TaxSchedule, transfer: Tensor, prefs: Preferences, hours: Tensor) -> Tensor:
    """`hours`, or 0 h where not working is better. Below the consumption floor utility stops
    falling with consumption, so when the transfer leaves a worker under the floor at 0 h (a
    negative transfer, or none), the unfloored optimum can be worse than not working: the floored
    utility is concave where consumption clears the floor and falls with hours below it."""
    z = annual_income(wage, hours)
    working = utility(z - schedule.tax(z) + transfer, hours, prefs)
    idle = utility(transfer.expand_as(z), torch.zeros_like(z), prefs)
    return torch.where(working >= idle, hours, torch.zeros_like(hours))


def _best_of_segments(wage: Tensor, schedule: TaxSchedule, transfer, prefs: Preferences) -> Tensor:
    """The general case: optimise on every bracket's linear segment, keep the best. A large
    population goes `tax.AGENT_CHUNK` agents at a time, grouped by how many brackets they can
    reach at the hours cap, each group weighing only those: its (..., agents, K + 1) candidates
    then stay in blocks the allocator reuses, and a low earner is not weighed in the twenty
    brackets of a high earner's chunk (2024 US taxes: 7.5 brackets an agent within reach, 18 a
    chunk of agents in population order)."""
    n = wage.shape[-1]
    if n <= tax.AGENT_CHUNK:
        return _best_of_segments_chunk(wage, schedule, transfer, prefs)
    ceiling = (WEEKS_PER_YEAR * prefs.max_hours * wage).unsqueeze(-1)  # (N, 1) the most anyone earns
    reach = (schedule.cutoffs.detach() < ceiling).sum(dim=-1)  # (..., N); cutoffs rise, so brackets 0..reach-1
    reach = reach.reshape(-1, n).amax(dim=0)  # (N,) the most over a batch of schedules
    parts, positions = [], []
    for brackets in reach.unique().tolist():
        within_reach = TaxSchedule.derived(schedule.cutoffs[..., :brackets], schedule.rates[..., :brackets])
        group = (reach == brackets).nonzero().squeeze(-1)
        for at in group.split(tax.AGENT_CHUNK):
            parts.append(_best_of_segments_chunk(wage[at], within_reach.for_agent(at), transfer, prefs.for_agent(at)))
            positions.append(at)
    hours = torch.cat(parts, dim=-1)
    return hours.new_empty(hours.shape).index_copy(-1, torch.cat(positions), hours)


def _best_of_segments_chunk(wage: Tensor, schedule: TaxSchedule, transfer, prefs: Preferences) -> Tensor:
    income_per_hour = (WEEKS_PER_YEAR * wage).unsqueeze(-1)  # (N, 1)
    cut = schedule.cutoffs  # (K,) or (N, K)
    upper = cut + schedule.widths
    lo_full = cut / income_per_hour  # (N, K)
    lo = lo_full.clamp(max=prefs.max_hours)
    hi = (upper / income_per_hour).clamp(max=prefs.max_hours)
    reachable = lo_full < prefs.max_hours  # bracket 0 always reachable (lo = 0)

    rates = schedule.agent_rates  # (..., 1 or N, K)
    owed = schedule.tax_at_cutoffs() if schedule.per_agent else schedule.tax_at_cutoffs().unsqueeze(-2)
    a = income_per_hour * (1.0 - rates)  # (..., N, K)
    b = _transfer_per_choice(transfer, rates) - owed + rates * cut  # (..., 1 or N, K)
    a, b, lo, hi = torch.broadcast_tensors(a, b, lo, hi)
    h = _segment_optimum(a, b - prefs.cost(-2), lo, hi, prefs)  # (..., N, K) each segment's optimum
    u = utility(a * h + b, h, prefs, agent_axis=-2)
    # Below the consumption floor utility no longer rises with income, so a segment's objective
    # is concave only where consumption clears the floor. Consumption rises with hours on every
    # segment (rates are at most 1), so where the floor binds at a segment's lower end, that end
    # may beat the segment's optimum: it is weighed there, for those few (agent, segment) pairs.
    binds = (a * lo + b - prefs.cost(-2) < MIN_CONSUMPTION) & reachable
    binds[..., 0] = False  # bracket 0's lower end is 0 h, a candidate of its own
    if bool(binds.any()):
        pair = binds.nonzero(as_tuple=True)
        h_end, agent = lo[pair], pair[-2]
        u_end = utility(a[pair] * h_end + b[pair], h_end, prefs.for_agent(agent))
        better = u_end > u[pair]
        h, u = h.index_put(pair, torch.where(better, h_end, h[pair])), u.index_put(pair, torch.where(better, u_end, u[pair]))
    # 0 h pays no fixed cost of working: it is a candidate apart from bracket 0's optimum.
    idle = utility(b[..., :1], torch.zeros_like(b[..., :1]), prefs, agent_axis=-2)
    h = torch.cat([h, torch.zeros_like(h[..., :1])], dim=-1)  # (..., N, K + 1)
    u = torch.cat([u.masked_fill(~reachable, float("-inf")), idle], dim=-1)
    best = u.argmax(dim=-1, keepdim=True)
    return torch.gather(h, -1, best).squeeze(-1)


def reservation_cost(wage: Tensor, schedule: TaxSchedule, transfer, prefs: Preferences) -> Tensor:
    """(N,) the largest fixed cost of working at which each worker still works: what working is
    worth to it in $ of consumption under this schedule (0 where it is worth nothing).

    Quasi-linear: the utility gain of the best positive hours over 0 h. Otherwise the cost moves
    the hours chosen (income effects), so bisection on the cost finds where working stops paying.
    """
    free = replace(prefs, fixed_cost=0.0)
    hours = best_response_hours(wage, schedule, transfer, free)
    z = annual_income(wage, hours)
    transfer = torch.as_tensor(transfer, dtype=wage.dtype)
    gain = (utility(z - schedule.tax(z) + transfer, hours, free) - utility(transfer.expand_as(z), torch.zeros_like(z), free)).clamp(min=0.0)
    if prefs.eta == 0.0:
        return gain
    # Working never pays more than twice what the cap's hours earn (rates lie in [0, 1]).
    low, high = torch.zeros_like(z), 2.0 * annual_income(wage, torch.full_like(z, prefs.max_hours)) + 1.0
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (low + high)
        works = best_response_hours(wage, schedule, transfer, replace(prefs, fixed_cost=mid)) > 0
        low, high = torch.where(works, mid, low), torch.where(works, high, mid)
    return torch.where(hours > 0, 0.5 * (low + high), torch.zeros_like(z))


def hour_bins(max_hours: float, n_bins: int, dtype=torch.float64) -> Tensor:
    """Evenly spaced hour choices 0, ..., max_hours: the bounded-rational workers' logit grid, as
    fine as asked (``workers.hour_bins``), since they weigh every choice's utility exactly."""
    if n_bins < 2:
        raise ValueError(f"hour bins: n_bins must be at least 2, got {n_bins}")
    return torch.linspace(0.0, max_hours, n_bins, dtype=dtype)


def nearest_bin(hours: Tensor, bins: Tensor) -> Tensor:
    """(..., B) each hours value as a one-hot row on its nearest bin: a choice stated exactly, as a
    distribution over the bins."""
    nearest = (hours.unsqueeze(-1) - bins.to(hours.dtype)).abs().argmin(dim=-1)
    return torch.nn.functional.one_hot(nearest, len(bins)).to(hours.dtype)


# Language-model workers answer in whole tens of hours.
LLM_HOURS_PER_BIN = 10
LLM_MAX_BIN = 90  # the last multiple of 10 whose first digit is its own


def llm_hour_bins(max_hours: float) -> tuple[int, ...]:
    """The language-model workers' choices 0, 10, 20, ... up to max_hours (at most 90).

    Coarse bins are what a model states reliably, and below 100 the first digit of the hours
    value names the bin, so the alternatives for that one token give the whole distribution
    (``workers.llm.hour_distribution``); the distilled surrogate predicts over the same bins.
    """
    if max_hours < LLM_HOURS_PER_BIN:
        raise ValueError(f"llm workers: max_hours must be at least {LLM_HOURS_PER_BIN}, got {max_hours}")
    return tuple(range(0, int(min(max_hours, LLM_MAX_BIN)) + 1, LLM_HOURS_PER_BIN))


def jensen_shannon(p, q) -> np.ndarray | float:
    """Jensen-Shannon divergence of hour distributions along the last axis, in bits: 0 when they are
    identical, 1 when they share no bin. A float for two distributions, an array for batches.

    scipy gives the Jensen-Shannon distance, the square root of the divergence; where rounding
    puts a near-zero divergence below zero it has no square root and returns NaN, which is 0 here.
    """
    from scipy.spatial.distance import jensenshannon  # imported on first use: it adds 0.3 s to importing the package

    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        distance = jensenshannon(p, q, base=2.0, axis=-1)
    rounded_below_zero = np.isnan(distance) & np.isfinite(p).all(-1) & np.isfinite(q).all(-1)
    divergence = np.where(rounded_below_zero, 0.0, distance) ** 2
    return float(divergence) if divergence.ndim == 0 else divergence


def logit_hour_probabilities(
    wage: Tensor, schedule: TaxSchedule, transfer, prefs: Preferences, bins: Tensor, temperature: float
) -> Tensor:
    """(..., N, B) choice probabilities over hour bins: softmax of u(h_b) / (temperature * scale)."""
    if not temperature > 0:
        raise ValueError(f"logit response: temperature must be positive, got {temperature}")
    z = WEEKS_PER_YEAR * wage.unsqueeze(-1) * bins  # (N, B)
    taxes = schedule.tax_of_choices(z)  # (..., N, B)
    u = utility(z - taxes + _transfer_per_choice(transfer, z), bins, prefs, agent_axis=-2)  # (..., N, B)
    scale = utility_scale(wage, prefs.eta).unsqueeze(-1)  # (N, 1)
    return torch.softmax(u / (temperature * scale), dim=-1)


def calibrate_psi(
    wage: Tensor, schedule: TaxSchedule, prefs: Preferences, target_median_hours: float = 40.0, transfer: float = 0.0,
    near: float | None = None,
) -> Preferences:
    """Preferences whose psi makes the median worker's best response `target_median_hours`, the
    median over those who work (all of them without a fixed cost of working).

    Median hours fall monotonically as psi rises (as psi^-elasticity between kinks), so Brent's
    method on log psi finds it in a few best responses, falling back on bisection where the median
    jumps across a kink: over [-40, 40], or within 1 of log `near` (a psi found for nearly the same
    question) when the answer lies there.
    """
    if not 0 < target_median_hours < prefs.max_hours:
        raise ValueError(f"calibration: target median hours must lie in (0, {prefs.max_hours}), got {target_median_hours}")

    @lru_cache(maxsize=None)  # Brent evaluates the bracket's ends again
    def excess_hours(log_psi: float) -> float:
        hours = best_response_hours(wage, schedule, transfer, prefs.with_psi(math.exp(log_psi)))
        working = hours[hours > 0]
        return float(working.median()) - target_median_hours if working.numel() else -target_median_hours

    lo, hi = -40.0, 40.0
    if near is not None:
        below, above = excess_hours(math.log(near) - 1.0), excess_hours(math.log(near) + 1.0)
        if below > 0 >= above:
            lo, hi = math.log(near) - 1.0, math.log(near) + 1.0
    return prefs.with_psi(math.exp(brentq(excess_hours, lo, hi, xtol=CALIBRATION_XTOL)))
