"""The behavioural probe: does a worker population respond to a mechanism, and how does its
response compare with the evidence on real workers?

Each sampled agent decides once under the configured mechanism (the baseline, at the budget's
fixed point) and once under each controlled variation of it, everything else held fixed: its
persona, a fresh start (no history), the transfer it expects and the random numbers it draws
(every decision set draws from a generator with the same seed; language-model requests keep their
seeds). The variations, each moving one thing:

- `net_up` / `net_down`: the net-of-tax rate 1 - t at the agent's own bracket (the bracket of its
  baseline income) times 1 +- `step`;
- `wage_up` / `wage_down`: the hourly wage times 1 +- `step`. `wage_down` leaves the same marginal
  net pay as `net_down`, so the two compare a tax rise with a wage cut (salience);
- `transfer_up`: the equal payment raised by `TRANSFER_STEP`;
- `reversed`: the baseline with the hour options presented in reverse order;
- `rate_grid`: the own-bracket rate set to each of `RATE_GRID`: the response to large changes (hours
  at 70% against 10%, the slope of hours on the rate, the global elasticity), read against the
  local one (`coherence`);
- a short panel: every agent's last hours, and so its contacts', drawn at random and shown to it;
  the regression of its hours on its own and its contacts' last hours gives persistence and social
  pull (the draws are independent, so the regression needs no controls).

Figures are income- or hours-weighted arc elasticities, ln(sum x+ / sum x-) / ln((1+step)/(1-step)),
for the population, for agents not at a corner (neither 0 h nor the cap, not bunching at a kink,
and in the same bracket under both variations: the response at the margin), and by income group;
intervals are percentile bootstraps over agents (scipy). Every population kind answers through the
same interface, `Workers.act`; `expected` hours are the mean of each decision's distribution
where the workers state one (logit, surrogate, scored language model).
"""

from __future__ import annotations

import hashlib
import json
import os
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..config import PlannerConfig, RunConfig
from ..economy.labour import hour_bins, jensen_shannon
from ..economy.outcome import settle
from ..economy.policy import Policy
from ..economy.tax import TaxSchedule
from ..economy.utility import annual_income
from ..factory import Setup, build_setup, make_config_mechanism
from ..personas import population_graph
from ..reporting.summary import bracketed, interval
from ..workers.base import Decisions, Observation

STEP = 0.05  # net-of-tax rate and wage moved by +-5%
TRANSFER_STEP = 5_000.0  # $/year added to the equal payment
RATE_GRID = (0.1, 0.3, 0.5, 0.7)  # own-bracket marginal rates: the large-change response
GRID_LOG_NET = math.log((1 - RATE_GRID[-1]) / (1 - RATE_GRID[0]))  # ln(0.3 / 0.9), the net-of-tax change across the grid
PANEL_ROUNDS = 2  # decisions per agent with randomised last hours
PANEL_HOURS = 9  # the randomised last hours take this many values from 0 to the cap
INCOME_GROUPS = {"under_20k": (0.0, 20_000.0), "20k_50k": (20_000.0, 50_000.0), "50k_100k": (50_000.0, 100_000.0), "over_100k": (100_000.0, math.inf)}
KINK_DOLLARS = 1.0  # a baseline income this close to a cutoff is bunching at the kink
CORNER_HOURS = 0.5  # expected hours this close to 0 or the cap are a corner
BOOTSTRAP_RESAMPLES = 999
COMPARISON_AGENTS = 200  # agents a comparison probes for its report
CHANNELS = ("fairness", "trust", "stress")

# The evidence on real workers each figure is read against: (low, high) bands and the sources.
EVIDENCE = {
    "eti": {"band": (0.12, 0.40), "source": "elasticity of taxable income 0.12-0.40 (Saez, Slemrod and Giertz 2012); "
            "about 0.4 overall (Gruber and Saez 2002)"},
    "eti_over_100k": {"band": (0.57, 0.57), "source": "0.57 above $100k (Gruber and Saez 2002)"},
    "hours_elasticity": {"band": (0.33, 0.33), "source": "Hicksian hours elasticity 0.33 on the intensive margin (Chetty 2012)"},
    "participation_elasticity": {"band": (0.25, 0.25), "source": "0.25 on the extensive margin (Chetty 2012)"},
}


@dataclass(frozen=True)
class Choices:
    """What every sampled agent chose in one decision set."""

    hours: np.ndarray  # (N,) expected hours
    working: np.ndarray  # (N,) probability of working at all
    distribution: np.ndarray | None  # (N, B) over the workers' hour bins, where they state one
    channels: dict[str, np.ndarray]  # reasoning channel -> (N,) where the workers report them
    prompt_tokens: np.ndarray | None = None  # (N,) for language-model decisions


def choices(decisions: Decisions, bins) -> Choices:
    """Expected hours, the chance of working and the distributions of one decision set."""
    hours = decisions.hours.detach().double().numpy()
    stated = decisions.columns.get("hour_distribution")
    channels = {c: np.array([np.nan if v is None else float(v) for v in decisions.columns[c]]) for c in CHANNELS
                if c in decisions.columns}
    tokens = np.asarray(decisions.columns["prompt_tokens"], dtype=float) if "prompt_tokens" in decisions.columns else None
    if stated is None or bins is None:
        return Choices(hours, (hours > CORNER_HOURS).astype(float), None, channels, tokens)
    grid = np.asarray(bins, dtype=float)
    if isinstance(stated, torch.Tensor):
        distribution = stated.detach().double().numpy()
    else:  # language-model replies: a row per agent, None where the reply had no scores (its stated hours then)
        nearest = np.abs(hours[:, None] - grid).argmin(axis=1)
        distribution = np.stack([np.eye(len(grid))[k] if row is None else np.asarray(row, dtype=float)
                                 for row, k in zip(stated, nearest)])
    distribution = distribution / distribution.sum(axis=1, keepdims=True)
    return Choices(distribution @ grid, 1.0 - distribution[:, 0], distribution, channels, tokens)


def _per_agent(schedule: TaxSchedule, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) cutoffs and rates: every agent's own schedule."""
    if schedule.per_agent:
        return schedule.cutoffs, schedule.rates.detach().clone()
    return schedule.cutoffs.expand(n, -1), schedule.rates.detach().expand(n, -1).clone()


def sample(setup: Setup, step: float = STEP, seed: int = 0) -> dict[str, np.ndarray]:
    """Every per-agent figure the probe reads, for one sampled population."""
    model, config = setup.model, setup.config
    workers, wage = model.workers, model.wage
    bins = getattr(workers, "bins", None)
    mechanism = make_config_mechanism(config)
    policy = mechanism.compile(mechanism.initial())
    settled = model.respond(policy)
    resolved = model.resolve(policy, settled)
    faced, transfer = resolved.faced(resolved.expectation(settled))
    cutoffs, rates = _per_agent(faced.schedule, len(wage))

    def shown(rates_: torch.Tensor = rates) -> Policy:
        """The policy as each agent sees it: its own schedule, with any variation of its rates."""
        return replace(faced, schedule=TaxSchedule(cutoffs, rates_), by_filing=False)

    def act(wage_=wage, rates_=rates, transfer_=transfer, recent=(), previous=None, reverse=False) -> Decisions:
        obs = Observation(wage_, shown(rates_), torch.as_tensor(transfer_, dtype=wage.dtype).reshape(1), recent, previous, 0, 0,
                          reverse_options=reverse)
        return workers.act(obs, torch.Generator().manual_seed(seed))

    def decide(**variation) -> Choices:
        return choices(act(**variation), bins)

    first = act()
    base = choices(first, bins)
    z0 = annual_income(wage, torch.as_tensor(base.hours, dtype=wage.dtype))
    schedule = TaxSchedule(cutoffs, rates)
    bracket = schedule.bracket_index(z0)
    own = torch.nn.functional.one_hot(bracket, rates.shape[-1]).bool()
    tau = schedule.marginal_rate(z0)

    def own_rate(new_rate: torch.Tensor) -> torch.Tensor:
        return torch.where(own, new_rate.unsqueeze(-1), rates).clamp(-1.0, 1.0)

    net_up, net_down = (own_rate(1 - (1 - tau) * (1 + s)) for s in (step, -step))
    varied = {
        "net_up": decide(rates_=net_up), "net_down": decide(rates_=net_down),
        "wage_up": decide(wage_=wage * (1 + step)), "wage_down": decide(wage_=wage * (1 - step)),
        "transfer_up": decide(transfer_=transfer + TRANSFER_STEP), "reversed": decide(reverse=True),
    }
    grid = [decide(rates_=own_rate(torch.full_like(tau, r))).hours for r in RATE_GRID]

    moved = {"net_up": 1.0, "net_down": 1.0, "wage_up": 1 + step, "wage_down": 1 - step}  # wage factor of each
    z = {m: annual_income(wage * f, torch.as_tensor(varied[m].hours, dtype=wage.dtype)) for m, f in moved.items()}
    z_grid = [annual_income(wage, torch.as_tensor(h, dtype=wage.dtype)) for h in grid]

    def at_corner(hours: np.ndarray) -> np.ndarray:
        return (hours < CORNER_HOURS) | (hours > model.prefs.max_hours - CORNER_HOURS)

    def at_margin(hours: list[np.ndarray], incomes: list[torch.Tensor]) -> np.ndarray:
        """Agents at no corner, at no kink and in their baseline bracket in every one of these decision sets."""
        kink = [((income.unsqueeze(-1) - cutoffs).abs() < KINK_DOLLARS).any(dim=-1).numpy() for income in incomes]
        same_bracket = [(schedule.bracket_index(income) == bracket).numpy() for income in incomes]
        return ~np.any([at_corner(h) for h in hours], axis=0) & ~np.any(kink, axis=0) & np.all(same_bracket, axis=0)

    corner = at_corner(base.hours)
    interior = at_margin([base.hours, *(varied[m].hours for m in moved)], [z0, *z.values()])

    data = {
        "wage": wage.double().numpy(), "income": z0.double().numpy(), "tau": tau.double().numpy(),
        "interior": interior, "interior_everywhere": interior & at_margin(grid, z_grid), "corner": corner,
        "h0": base.hours, "p0": base.working,
        **{f"h_{name}": c.hours for name, c in varied.items()},
        **{f"p_{name}": c.working for name, c in varied.items()},
        "rate_grid_hours": np.stack(grid, axis=1),
        "net_up_rate": net_up[own].double().numpy(), "net_down_rate": net_down[own].double().numpy(),
    }
    if base.distribution is not None:
        data["js_reversed"] = np.asarray(jensen_shannon(base.distribution, varied["reversed"].distribution))
        data["top_bin"] = base.distribution.max(axis=1)
    else:  # point choices: the presentation moved them or it did not
        data["js_reversed"] = (np.abs(varied["reversed"].hours - base.hours) > 1e-9).astype(float)
    if base.prompt_tokens is not None:
        data["prompt_tokens"] = np.mean([c.prompt_tokens for c in (base, *varied.values())], axis=0)
    for c in CHANNELS:
        if c in varied["net_up"].channels:
            data[f"{c}_net_up"], data[f"{c}_net_down"] = varied["net_up"].channels[c], varied["net_down"].channels[c]
    data.update(_panel(setup, shown(), first, decide, seed))
    return data


def _panel(setup: Setup, shown: Policy, first: Decisions, decide: Callable, seed: int) -> dict[str, np.ndarray]:
    """(N, R) hours chosen after randomised last hours, with the agent's own and its contacts' mean last hours.

    The period before is the baseline decision `first` with its hours replaced: workers with a
    recurrent state (the surrogate) carry the state that decision left, what their contacts said
    included, so only the hours are off their own path."""
    model = setup.model
    graph = setup.graph if setup.graph is not None else population_graph(setup.population, setup.config.seed)
    values = hour_bins(model.prefs.max_hours, PANEL_HOURS, model.wage.dtype)
    generator = torch.Generator().manual_seed(seed + 1)
    own_last, contacts_last, chosen = [], [], []
    for _ in range(PANEL_ROUNDS):
        last = values[torch.randint(len(values), (len(model.wage),), generator=generator)]
        outcome = settle(model.wage, last, shown, model.prefs)
        contacts = torch.where(graph.degree > 0, graph.neighbour_mean(last), float("nan"))
        own_last.append(last.numpy())
        contacts_last.append(contacts.numpy())
        chosen.append(decide(recent=(outcome,), previous=first).hours)
    return {"panel_own_last": np.stack(own_last, 1), "panel_contacts_last": np.stack(contacts_last, 1),
            "panel_hours": np.stack(chosen, 1)}


# -- figures: each a function of the pooled per-agent data and an index of agents -------------------

def _log_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """ln(sum a / sum b); NaN where a side sums to 0."""
    a_, b_ = float(np.sum(a)), float(np.sum(b))
    return math.log(a_ / b_) if a_ > 0 and b_ > 0 else math.nan


def _arc(up: np.ndarray, down: np.ndarray, step: float) -> float:
    """ln(sum up / sum down) / ln((1 + step) / (1 - step)); NaN where a side sums to 0."""
    return _log_ratio(up, down) / math.log((1 + step) / (1 - step))


def _figures(step: float, has_distributions: bool, has_channels: bool, extensive: bool) -> dict[str, Callable]:
    """Figure name -> statistic(data, idx) for the bootstrap."""

    def income(d, i, key):
        return 52.0 * d["wage"][i] * d[key][i]

    def eti(d, i):
        return _arc(income(d, i, "h_net_up"), income(d, i, "h_net_down"), step)

    def hours_elasticity(d, i):
        return _arc(d["h_net_up"][i], d["h_net_down"][i], step)

    def grid_log_ratio(d, i):  # ln(hours at 70% / hours at 10%)
        return _log_ratio(d["rate_grid_hours"][i, -1], d["rate_grid_hours"][i, 0])

    def grid_slope(d, i):  # least squares of mean hours on the rate, per 10 points
        return 0.1 * float(np.polyfit(RATE_GRID, d["rate_grid_hours"][i].mean(axis=0), 1)[0]) if len(i) else math.nan

    def within(mask_of):
        return lambda stat: (lambda d, i: stat(d, i[mask_of(d)[i]]))

    interior = within(lambda d: d["interior"])
    everywhere = within(lambda d: d["interior_everywhere"])
    figures = {
        "mean_hours": lambda d, i: float(np.mean(d["h0"][i])),
        "eti": eti,
        "eti_interior": interior(eti),
        **{f"eti_{g}": within(lambda d, lo=lo, hi=hi: (d["income"] >= lo) & (d["income"] < hi))(eti)
           for g, (lo, hi) in INCOME_GROUPS.items()},
        "hours_elasticity": hours_elasticity,
        "hours_elasticity_interior": interior(hours_elasticity),
        "hours_ratio_70_10": lambda d, i: math.exp(grid_log_ratio(d, i)),
        "rate_grid_slope_h_per_10pt": grid_slope,
        "hours_elasticity_global": lambda d, i: grid_log_ratio(d, i) / GRID_LOG_NET,
        "hours_elasticity_global_interior": everywhere(lambda d, i: grid_log_ratio(d, i) / GRID_LOG_NET),
        "log_hours_ratio_observed": everywhere(grid_log_ratio),
        "log_hours_ratio_predicted": everywhere(lambda d, i: hours_elasticity(d, i) * GRID_LOG_NET),
        "wage_elasticity": lambda d, i: _arc(d["h_wage_up"][i], d["h_wage_down"][i], step),
        "income_effect_hours_per_10k": lambda d, i: float(np.mean(d["h_transfer_up"][i] - d["h0"][i])) * 10_000 / TRANSFER_STEP,
        "share_correct_sign": interior(lambda d, i: float(np.mean(d["h_net_up"][i] > d["h_net_down"][i])) if len(i) else math.nan),
        "response_sd": interior(lambda d, i: float(np.std(_individual(d, i, step), ddof=1)) if len(i) > 1 else math.nan),
        "salience_ratio": interior(lambda d, i: _ratio(d["h_net_down"][i] - d["h0"][i], d["h_wage_down"][i] - d["h0"][i])),
        "position_bias_js": lambda d, i: float(np.mean(d["js_reversed"][i])),
        "persistence": lambda d, i: _pull(d, i)[0],
        "social_pull": lambda d, i: _pull(d, i)[1],
    }
    if extensive:
        figures["participation_elasticity"] = lambda d, i: _arc(d["p_wage_up"][i], d["p_wage_down"][i], step)
    if has_distributions:
        figures["top_bin_probability"] = lambda d, i: float(np.mean(d["top_bin"][i]))
    if has_channels:
        for c in CHANNELS:  # change per +10 points of the own-bracket marginal rate
            figures[f"{c}_per_10_points"] = lambda d, i, c=c: float(np.mean(
                (d[f"{c}_net_down"][i] - d[f"{c}_net_up"][i]) / (d["net_down_rate"][i] - d["net_up_rate"][i]))) * 0.1
    return figures


def _individual(d, i, step: float) -> np.ndarray:
    """Each agent's own hours elasticity."""
    up, down = d["h_net_up"][i], d["h_net_down"][i]
    ok = (up > 0) & (down > 0)
    return np.log(up[ok] / down[ok]) / math.log((1 + step) / (1 - step))


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    den = float(np.sum(b))
    return float(np.sum(a)) / den if abs(den) > 1e-9 * max(1.0, float(np.sum(np.abs(b)))) else math.nan


def _pull(d, i) -> tuple[float, float]:
    """OLS weights of hours on the agent's own and its contacts' randomised last hours, controlling
    for its fresh-start choice (which absorbs everything about the agent that history does not
    move, so a worker that mixes habit, imitation and its own choice is recovered exactly)."""
    own, contacts = d["panel_own_last"][i].reshape(-1), d["panel_contacts_last"][i].reshape(-1)
    fresh = np.repeat(d["h0"][i], d["panel_hours"].shape[1])  # the agent's choice without a history
    ok = np.isfinite(contacts)
    x = np.column_stack([np.ones(ok.sum()), own[ok], contacts[ok], fresh[ok]])
    coef, *_ = np.linalg.lstsq(x, d["panel_hours"][i].reshape(-1)[ok], rcond=None)
    return float(coef[1]), float(coef[2])


def estimate(data: dict[str, np.ndarray], step: float, seed: int = 0) -> dict:
    """Point estimates and 95% bootstrap intervals of every figure, as one flat dict."""
    from scipy import stats

    n = len(data["h0"])
    extensive = bool((data["p0"] < 1 - 1e-9).any() or (data["p_wage_down"] < 1 - 1e-9).any())
    figures = _figures(step, "top_bin" in data, "fairness_net_up" in data, extensive)
    out: dict = {}
    everyone = np.arange(n)
    for name, stat in figures.items():
        value = stat(data, everyone)
        out[name] = None if not math.isfinite(value) else value
        out[f"{name}_ci95"] = None
        if out[name] is None or n < 2:
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # no spread: the interval is the point
            result = stats.bootstrap((everyone,), lambda i: stat(data, i.astype(int)), vectorized=False, method="percentile",
                                     n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(seed))
        low, high = result.confidence_interval
        out[f"{name}_ci95"] = [float(low), float(high)] if math.isfinite(low) and math.isfinite(high) else None
    for key in ("participation_elasticity", "top_bin_probability"):
        out.setdefault(key, None)
        out.setdefault(f"{key}_ci95", None)
    return out


# -- running it --------------------------------------------------------------------------------

def analytic(config: RunConfig) -> dict[str, float]:
    """The figures theory gives for this population, where it gives them: rational workers with
    quasi-linear utility have the configured elasticity at the margin and no income effect."""
    e = config.economy
    if config.workers.kind != "rational" or e.eta != 0:
        return {}
    return {"eti_interior": e.elasticity, "hours_elasticity_interior": e.elasticity, "income_effect_hours_per_10k": 0.0,
            "salience_ratio": 1.0, "persistence": 0.0, "social_pull": 0.0, "position_bias_js": 0.0,
            "hours_elasticity_global_interior": e.elasticity, "log_hours_ratio_observed": e.elasticity * GRID_LOG_NET,
            "log_hours_ratio_predicted": e.elasticity * GRID_LOG_NET}


def coherence(result: dict) -> tuple[bool | None, str]:
    """Whether the local response predicts the large-change one, and why (None: it cannot be told).

    Both are read on the agents at no corner (0 h or the cap), at no kink and in their baseline
    bracket under every variation and at every grid rate, so a cap or zero hours that bind at one
    rate and not another are not counted as disagreement. The local hours elasticity predicts the
    log hours ratio from 10% to 70% of the own rate, P = e x ln(0.3 / 0.9); the grid observes
    O = ln(h70 / h10). With 95% intervals, they disagree when
    (a) O's interval holds 0 and P's does not: the local response vanishes under large changes,
        so it is not a response to taxes; or
    (b) the intervals are disjoint and O / P lies outside [1/2, 2] (opposite signs included).
    """
    o, p = result.get("log_hours_ratio_observed"), result.get("log_hours_ratio_predicted")
    o_ci, p_ci = result.get("log_hours_ratio_observed_ci95"), result.get("log_hours_ratio_predicted_ci95")
    if o_ci is None or p_ci is None:
        return None, "no interval for agents at no corner at every rate probed"
    observed = f"log hours ratio {_estimate(o, o_ci)} from {RATE_GRID[0]:.0%} to {RATE_GRID[-1]:.0%} of the own rate"
    predicted = f"{_estimate(p, p_ci)} predicted by the local elasticity"
    if o_ci[0] <= 0 <= o_ci[1] and not p_ci[0] <= 0 <= p_ci[1]:
        return False, (f"{observed} is indistinguishable from zero against {predicted}, "
                       "so the local elasticity is not a response to taxes")
    if (o_ci[1] < p_ci[0] or p_ci[1] < o_ci[0]) and not (o * p > 0 and 0.5 <= o / p <= 2):
        return False, f"{observed} against {predicted}, so the local elasticity does not describe larger tax changes"
    return True, f"{observed} against {predicted}"


def probe(config: RunConfig, agents: int, seeds: int = 1, step: float = STEP, progress: Callable[[str], None] | None = None,
          cache_path: str | None = None) -> dict:
    """Probe `agents` agents on each of `seeds` populations (seed, seed + 1, ...); the flat result.
    Language-model replies are cached at `cache_path` (unless the config names a cache)."""
    if not 0 < step < 0.5:
        raise ValueError(f"behaviour: step must lie in (0, 0.5), got {step}")
    started = time.perf_counter()
    pooled: dict[str, list[np.ndarray]] = {}
    decisions = 0
    for k in range(seeds):
        # No planner plays in the probe: only language-model workers need a client.
        run = config.model_copy(update={"seed": config.seed + k, "planners": [PlannerConfig(kind="fixed")],
                                        "population": config.population.model_copy(update={"n_agents": agents})})
        setup = build_setup(run, cache_path=cache_path)
        try:
            data = sample(setup, step, seed=run.seed)
        finally:
            setup.close()
        decisions += agents * (7 + len(RATE_GRID) + PANEL_ROUNDS)
        for key, value in data.items():
            pooled.setdefault(key, []).append(value)
        if progress:
            progress(f"population {k + 1}/{seeds} probed ({time.perf_counter() - started:.0f} s)")
    data = {key: np.concatenate(values) for key, values in pooled.items()}
    result = {"workers": config.workers.kind, "step": step, "n_agents": agents * seeds, "n_decisions": decisions,
              **estimate(data, step, config.seed)}
    result["response_coherent"], result["response_coherence_reason"] = coherence(result)
    result["mean_prompt_tokens"] = float(np.mean(data["prompt_tokens"])) if "prompt_tokens" in data else None
    result["share_interior"] = float(np.mean(data["interior"]))
    result["share_interior_everywhere"] = float(np.mean(data["interior_everywhere"]))
    result["hours_sd"] = float(np.std(data["h0"], ddof=1)) if len(data["h0"]) > 1 else None
    result.update({f"analytic_{name}": value for name, value in analytic(config).items()})
    result["rate_grid"] = list(RATE_GRID)
    for g, (lo, hi) in {"all": (0.0, math.inf), **INCOME_GROUPS}.items():
        found = [interval(column) for column in data["rate_grid_hours"][(data["income"] >= lo) & (data["income"] < hi)].T]
        result[f"rate_grid_hours_{g}"] = [f.mean if f else None for f in found] or None
        result[f"rate_grid_hours_{g}_ci95"] = [[f.low, f.high] if f and f.low is not None else None for f in found] or None
    result["individual_elasticities"] = _individual(data, np.flatnonzero(data["interior"]), step).tolist()
    result["wall_s"] = time.perf_counter() - started
    return result


def population_key(config: RunConfig) -> str:
    """Hash of what decides how the population responds: the economy, the mechanism, the workers
    and the language model's name and sampling (not how it is reached)."""
    data = config.model_dump(mode="json", include={"economy", "mechanism", "workers", "population"})
    data["population"].pop("n_agents")
    data["llm"] = config.llm.model_dump(mode="json", include={"model", "backend", "transformers_model", "temperature"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def run_probe(config: RunConfig, out: Path, agents: int, seeds: int = 1, progress: Callable[[str], None] | None = None) -> dict:
    """Probe the population of `config` and write the result into `out` (with the response cache)."""
    out.mkdir(parents=True, exist_ok=True)
    result = {"population_key": population_key(config), "llm_model": config.llm.model if config.workers.kind == "llm" else None,
              **probe(config, agents, seeds, progress=progress, cache_path=str(out / "llm_cache.sqlite"))}
    write_behaviour(result, out)
    return result


def read_probe(config: RunConfig, measured: Path) -> dict:
    """An earlier probe (its directory) of the language-model population `config` describes."""
    if config.workers.kind != "llm":
        raise ValueError("--behaviour: only for language-model workers; a comparison probes other populations itself")
    path = Path(measured) / "behaviour.json"
    if not path.is_file():
        raise ValueError(f"--behaviour {measured}: no behaviour.json there; run `llm-economist behaviour` first")
    result = json.loads(path.read_text())
    if result.get("population_key") != population_key(config):
        raise ValueError(f"--behaviour {measured}: probed a different population (economy, mechanism, workers or model); "
                         "probe this config")
    return {**result, "source": str(measured)}


def population_response(config: RunConfig, out: Path, measured: dict | None = None) -> dict:
    """The headline response of the population a comparison ran on, for its report: probed here
    (seconds) for workers without a language model, an earlier probe of the same population
    (`read_probe`) for language models, else said to be unmeasured."""
    if config.workers.kind != "llm":
        try:
            result = {**run_probe(config, out, min(config.population.n_agents, COMPARISON_AGENTS)), "source": out.name}
        except Exception as err:  # the comparison's finished results must still be written
            return {"measured": False, "line": f"The probe of this population failed ({type(err).__name__}: {err}); "
                    "rerun it with `llm-economist behaviour CONFIG`"}
    elif measured is not None:  # the report links the probe from the run directory, whatever the working directory
        result = {**measured, "source": os.path.relpath(Path(measured["source"]).resolve(), out.parent.resolve())}
    else:
        return {"measured": False, "line": "The response of the language-model population is unmeasured: measure it with "
                "`llm-economist behaviour CONFIG --out DIR`, then pass `--behaviour DIR` to compare"}
    keys = ("hours_ratio_70_10", "hours_elasticity_global", "log_hours_ratio_observed", "log_hours_ratio_predicted", "eti",
            "eti_interior", "hours_elasticity", "wage_elasticity", "participation_elasticity", "n_agents")
    figures = ({k: result.get(k) for k in keys} | {f"{k}_ci95": result.get(f"{k}_ci95") for k in keys}
               | {k: result.get(k) for k in ("response_coherent", "response_coherence_reason")})
    return {"measured": True, "source": result["source"], "line": headline(result), **figures}


def write_behaviour(result: dict, out: Path) -> list[Path]:
    """behaviour.json (one flat object), behaviour.md and the plots."""
    from ..reporting.plots import plot_hours_against_rate, plot_individual_responses

    out.mkdir(parents=True, exist_ok=True)
    (out / "behaviour.json").write_text(json.dumps(result, indent=2))
    plots = [out / "hours_against_rate.png", out / "individual_responses.png"]
    plot_hours_against_rate(result, plots[0], list(INCOME_GROUPS), EVIDENCE["eti"]["band"])
    plot_individual_responses(result, plots[1], EVIDENCE["eti"]["band"])
    (out / "behaviour.md").write_text(behaviour_markdown(result, [p.name for p in plots]))
    return [out / "behaviour.json", out / "behaviour.md", *plots]


ROWS = (  # figure, what it is
    ("mean_hours", "mean hours a week under the configured mechanism"),
    ("hours_ratio_70_10", "hours at a 70% own-bracket rate / at 10%"),
    ("rate_grid_slope_h_per_10pt", "hours a week per +10 points of own-bracket rate (least squares, 10%-70%)"),
    ("hours_elasticity_global", "global hours elasticity w.r.t. the net-of-tax rate, 10%-70%"),
    ("hours_elasticity_global_interior", "global hours elasticity, agents at no corner at any rate probed"),
    ("log_hours_ratio_observed", "log hours ratio 70% / 10%, agents at no corner at any rate probed"),
    ("log_hours_ratio_predicted", "the same predicted by their local hours elasticity"),
    ("eti", "elasticity of taxable income, all agents"),
    ("eti_interior", "elasticity of taxable income, agents not at a corner"),
    ("eti_under_20k", "elasticity of taxable income, income under $20k (where the EITC phases in and out)"),
    ("eti_20k_50k", "elasticity of taxable income, $20k-$50k"),
    ("eti_50k_100k", "elasticity of taxable income, $50k-$100k"),
    ("eti_over_100k", "elasticity of taxable income, over $100k"),
    ("hours_elasticity", "hours elasticity w.r.t. the net-of-tax rate"),
    ("hours_elasticity_interior", "hours elasticity, agents not at a corner"),
    ("wage_elasticity", "uncompensated wage elasticity of hours"),
    ("participation_elasticity", "participation elasticity w.r.t. the wage"),
    ("income_effect_hours_per_10k", "hours per $10k more transfer (income effect)"),
    ("share_correct_sign", "share of agents not at a corner who work more when they keep more"),
    ("response_sd", "spread (SD) of individual hours elasticities"),
    ("salience_ratio", "response to a tax rise / to a wage cut of equal net pay (agents not at a corner)"),
    ("position_bias_js", "position bias: JS divergence, options forward vs reversed (bits)"),
    ("top_bin_probability", "mean probability of the most likely hour bin"),
    ("persistence", "weight on own last hours"),
    ("social_pull", "weight on contacts' last hours"),
    ("fairness_per_10_points", "fairness channel per +10 points of marginal rate"),
    ("trust_per_10_points", "trust channel per +10 points of marginal rate"),
    ("stress_per_10_points", "stress channel per +10 points of marginal rate"),
)


NOISE = 1e-9  # figures this close to 0 are 0 up to floating-point rounding (an exact response of 0 computed in floats)


def _zeroed(x):
    """x, with floating-point rounding of an exact 0 made 0 again."""
    return 0.0 if x is not None and abs(x) < NOISE else x


def _number(x) -> str:
    x = _zeroed(x)
    return "n/a" if x is None else f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"


def _spec(x: float, ci) -> str:
    """A format for x with two significant digits of its 95% interval's width (three of x without one)."""
    width = ci[1] - ci[0] if ci else 0.0
    return f".{max(0, 1 - math.floor(math.log10(width)))}f" if width > NOISE * max(1.0, abs(x)) else ".3g"


def _rounded(x, ci) -> str:
    """x at the precision its 95% interval supports; 'n/a' without x."""
    return "n/a" if x is None else f"{x:{_spec(x, ci)}}"


def _estimate(x, ci) -> str:
    """'x [lo, hi]' at the precision the interval supports, rounding noise shown as 0; 'n/a' without x."""
    x, ci = _zeroed(x), ci and [_zeroed(c) for c in ci]
    return bracketed(x, ci, "" if x is None else _spec(x, ci))


def headline(result: dict) -> str:
    """One line: hours at a 70% against a 10% own-bracket rate (the response to a large change), the
    local elasticity of taxable income, a warning where the two disagree, and the evidence."""
    means = result.get("rate_grid_hours_all") or [None] * len(RATE_GRID)
    bands = result.get("rate_grid_hours_all_ci95") or [None] * len(RATE_GRID)
    parts = [f"hours at a {RATE_GRID[-1]:.0%} own-bracket rate {_rounded(means[-1], bands[-1])} h against "
             f"{_rounded(means[0], bands[0])} h at {RATE_GRID[0]:.0%}, ratio "
             f"{_estimate(result.get('hours_ratio_70_10'), result.get('hours_ratio_70_10_ci95'))}",
             f"local elasticity of taxable income {_estimate(result.get('eti'), result.get('eti_ci95'))}"]
    if result.get("response_coherent") is False:
        parts.append(f"local and large-change responses disagree: {result['response_coherence_reason']}")
    return "; ".join([*parts, f"evidence {EVIDENCE['eti']['source']}"])


def behaviour_markdown(result: dict, plots: list[str]) -> str:
    rates = ", ".join(f"{r:.0%}" for r in RATE_GRID)
    verdict = {True: "agree", False: "disagree", None: "cannot be compared"}[result["response_coherent"]]
    lines = [
        f"# Behavioural probe: {result['workers']} workers",
        "",
        headline(result) + ".",
        "",
        f"{result['n_agents']} agents, {result['n_decisions']} decisions, {result['wall_s']:.0f} s. Each agent decided under "
        f"the configured mechanism and under controlled variations of it (net-of-tax rate and wage moved by "
        f"+-{100 * result['step']:.0f}%, transfer +${TRANSFER_STEP:,.0f}, options reversed, own-bracket rate set to each of "
        f"{rates}), from a fresh start with the same random numbers; intervals are 95% bootstrap intervals over agents. "
        f"Agents not at a corner: {100 * result['share_interior']:.0f}%; at no corner at any rate probed: "
        f"{100 * result['share_interior_everywhere']:.0f}%.",
        "",
        f"Large changes against small ones: the global elasticity is of hours (the wage is fixed, so it is also that of "
        f"income), ln(h70 / h10) / ln(0.3 / 0.9). The local and large-change responses {verdict}: "
        f"{result['response_coherence_reason']} (the rule: `llm_economist.studies.behaviour.coherence`).",
        "",
        "| figure | estimate [95% CI] | evidence | theory |",
        "|---|---|---|---|",
    ]
    for key, label in ROWS:
        if key not in result:
            continue
        evidence = EVIDENCE.get(key, {}).get("source", "")
        theory = result.get(f"analytic_{key}")
        lines.append(f"| {label} | {_estimate(result[key], result.get(f'{key}_ci95'))} | {evidence} | "
                     f"{'' if theory is None else _number(theory)} |")
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(lines)
