"""Build what a run needs from a validated config: the setup (population, social graph,
preferences, population model, client, calibration) and the mechanism. The planners are built
above, in `planner_factory`."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError, create_model

from .config import STRICT, ConfigError, EconomyConfig, RunConfig, WorkersConfig
from .economy.labour import best_response_hours, calibrate_psi, reservation_cost
from .economy.outcome import hours_shares
from .economy.policy import Policy, TaxUnits
from .economy.tax import US_2024_AGED, US_2024_CHILDLESS_EITC_AGES, TaxSchedule
from .economy.utility import Preferences, annual_income
from .llm import LLMClient, LLMSettings, open_client
from .llm.adapter import WorkerAdapter, load_worker_adapter
from .llm.server import EMBEDDED_GGUF
from .mechanisms.base import Mechanism
from .mechanisms.builtin import USTax2024, us_filing_groups
from .mechanisms.registry import available_mechanisms, make_mechanism
from .personas import Population, SocialGraph, household_sample, population_graph, sample_population, taste_groups
from .surrogate.model import SurrogatePopulation
from .planners.fixed import BASELINE
from .workers.base import Workers
from .workers.llm import LLMWorkers
from .workers.rational import BoundedRationalWorkers, RationalWorkers
from .workers.surrogate import SurrogateWorkers, shipped_model_path
from .population_model import PopulationModel

DTYPES = {"float64": torch.float64, "float32": torch.float32}
CALIBRATION_ROUNDS = 50
CALIBRATION_TOLERANCE = 1.0  # $/year of rebate, and of a spouse's earnings
PARTICIPATION_STEP = 0.05  # +-5% take-home pay from work measures the extensive-margin elasticity
MIN_COST_SPREAD, MAX_COST_SPREAD = 1e-3, 20.0  # log-sd of the fixed costs of working
TASTE_SEED_OFFSET = 7919  # the tastes' draws come from their own stream, apart from the fixed costs'


def calibration_policy(units: TaxUnits | None = None, dtype=torch.float64) -> Policy:
    """The 2024 US taxes on earnings (`USTax2024`: income tax above the standard deduction, payroll
    tax, EITC, by each worker's filing group and couples filing jointly, or as single filers
    without `units`), under which preferences are calibrated: the taxes today's hours are observed
    under. Resolve it for the workers with `for_agents`."""
    mechanism = USTax2024(filing="single" if units is None else "persona")
    return mechanism.compile(mechanism.initial().to(dtype))


def population_units(population: Population) -> TaxUnits:
    """Every worker's filing group for the 2024 US taxes (status, children, those under 17 for the
    child tax credit, other dependants, the childless EITC's age test, filers aged 65 or more),
    and its spouse where both are workers in the population (a spouse left out of a subset files
    as if it earned nothing)."""
    t = population.table
    partner = np.full(len(t), -1, dtype=np.int64)
    order = np.argsort(t["household_id"].to_numpy(), kind="stable")
    household = t["household_id"].to_numpy()[order]
    same = household[1:] == household[:-1]  # a household holds at most two workers
    first, second = order[:-1][same], order[1:][same]
    partner[first], partner[second] = second, first
    youngest, oldest = US_2024_CHILDLESS_EITC_AGES
    age = t["age"].to_numpy()
    of_age = (age >= youngest) & (age <= oldest)
    of_age |= (partner >= 0) & of_age[np.maximum(partner, 0)]  # either spouse on a joint return
    aged = (age >= US_2024_AGED).astype(np.int64)
    aged += (partner >= 0) & (aged[np.maximum(partner, 0)] > 0)  # a spouse not in the population counts as younger
    adults = np.where(t["marital_status"].to_numpy() == "married", 2, 1)
    others = np.maximum(t["household_size"].to_numpy() - adults - t["credit_children"].to_numpy(), 0)  # a child of 17, an adult dependant
    filing = us_filing_groups(t["filing_status"], t["children"], t["earners"], of_age, aged, t["credit_children"], others)
    return TaxUnits(filing, torch.from_numpy(partner))


def calibrated_preferences(economy: EconomyConfig, wage: torch.Tensor, seed: int = 0, units: TaxUnits | None = None,
                           groups: dict[str, np.ndarray] | None = None) -> tuple[Preferences, dict[str, float]]:
    """Preferences with psi set so the median worker works `target_median_hours` under the 2024 US
    taxes on earnings (`calibration_policy`, by filing group, couples on joint returns) with their
    revenue rebated equally, as every mechanism in a run rebates it; with an extensive margin
    (`share_not_working` > 0) also the fixed costs of working; and the resulting statistics. With
    income effects (eta > 0) the rebate moves hours, the fixed costs move who works, and spouses
    on one return face rates set by each other's earnings, so psi, the costs, the rebate and the
    spouses' earnings are solved together (a fixed point, one pass when utility is quasi-linear,
    there is no extensive margin and no couple files jointly). `groups`: the workers' observed
    groups (`taste_groups`), which tastes by schooling or age need."""
    e = economy
    base = Preferences(eta=e.eta, elasticity=e.elasticity, max_hours=e.max_hours, disutility=tastes(e, wage, seed, groups))
    policy = calibration_policy(units, wage.dtype)
    draws = torch.randn(wage.shape, generator=torch.Generator().manual_seed(seed), dtype=wage.dtype) if e.share_not_working else None
    rebate, costs, participation, earnings, hours, spouses_still, psi = 0.0, 0.0, {}, None, None, False, None
    earlier = None  # the earnings two rounds back: a worker indifferent between two hours can flip for ever
    for turn in range(CALIBRATION_ROUNDS):
        resolved = policy.for_agents(units, earnings)
        joint = resolved.joint is not None
        us = TaxSchedule.derived(resolved.schedule.cutoffs.to(wage.dtype), resolved.schedule.rates)
        prefs = calibrate_psi(wage, us, replace(base, fixed_cost=costs), e.target_median_hours, rebate, near=psi)
        psi = prefs.psi
        if draws is not None:
            costs, participation = participation_costs(wage, us, rebate, prefs, draws, e.share_not_working, e.extensive_elasticity)
            prefs = replace(prefs, fixed_cost=costs)
        chosen = best_response_hours(wage, us, rebate, prefs)
        hours = units.take_turn(turn, hours, chosen) if joint else chosen  # spouses take turns, as in `PopulationModel.respond`
        earned = annual_income(wage, hours)
        still = earnings is not None and float((earned - earnings).abs().max()) < CALIBRATION_TOLERANCE
        repeating = earlier is not None and float((earned - earlier).abs().max()) < CALIBRATION_TOLERANCE
        spouses_settled, spouses_still = not joint or (still and spouses_still), still
        previous_rebate, rebate, earlier, earnings = rebate, float(resolved.levy(earned)[0].mean()), earnings, earned
        if (abs(rebate - previous_rebate) < CALIBRATION_TOLERANCE and spouses_settled) or repeating:
            break
    shares = {f"{name}_us_2024": value for name, value in hours_shares(hours, e.max_hours).items()}
    working = hours[hours > 0]
    return prefs, {"psi": prefs.psi, "median_hours_us_2024": float(working.median()), "rebate_us_2024": rebate,
                   "calibration_rounds": turn + 1, "intensive_elasticity": e.elasticity, **participation, **shares}


def tastes(economy: EconomyConfig, wage: torch.Tensor, seed: int, groups: dict[str, np.ndarray] | None = None) -> torch.Tensor | float:
    """Each worker's taste for leisure, a multiple of psi: exp(slope (log w - mean log w) + spread x)
    with x standard normal, times each further type's multiple for its share of workers (drawn at
    random; `economy.disutility_types`, their shares set by age band where
    `economy.disutility_type_shares_by_age` names it) and the multiples of its schooling group and age band
    (`groups`, from `taste_groups`); drawn apart from the fixed costs' draws; 1 for all without a
    spread, slope, further type or group multiple."""
    e = economy
    shifters = {"disutility_by_schooling": "schooling", "disutility_by_age": "age_band"}  # config field: the group it reads
    if not (e.disutility_spread or e.disutility_wage_slope or e.disutility_types or any(getattr(e, f) for f in shifters)):
        return 1.0
    generator = torch.Generator().manual_seed(seed + TASTE_SEED_OFFSET)
    x = torch.randn(wage.shape, generator=generator, dtype=wage.dtype)
    log_wage = torch.log(wage)
    taste = torch.exp(e.disutility_wage_slope * (log_wage - log_wage.mean()) + e.disutility_spread * x)
    if e.disutility_types:
        u = torch.rand(wage.shape, generator=generator, dtype=wage.dtype)
        shares = torch.tensor([share for share, _ in e.disutility_types], dtype=wage.dtype).expand(*wage.shape, -1)
        if e.disutility_type_shares_by_age:
            band = _groups_for(groups, "age_band", "disutility_type_shares_by_age")
            shares = shares.clone()
            for name, by_band in e.disutility_type_shares_by_age.items():
                shares[torch.from_numpy(band == name)] = torch.tensor(by_band, dtype=wage.dtype)
        multiples = torch.tensor([multiple for _, multiple in e.disutility_types] + [1.0], dtype=wage.dtype)
        kind = (u.unsqueeze(-1) >= shares.cumsum(-1)).sum(-1)  # u past every bound: none of the further types
        taste = taste * multiples[kind]
    for field, trait in shifters.items():
        if multiples := getattr(e, field):
            by_group = np.vectorize(lambda group: multiples.get(group, 1.0), otypes=[float])(_groups_for(groups, trait, field))
            taste = taste * torch.as_tensor(by_group, dtype=wage.dtype)
    return taste


def _groups_for(groups: dict[str, np.ndarray] | None, trait: str, field: str) -> np.ndarray:
    """The workers' `trait` groups, which `economy.<field>` needs."""
    if groups is None or trait not in groups:
        raise ConfigError(f"economy.{field}: the workers' {trait.replace('_', ' ')} is not known here")
    return groups[trait]


def participation_costs(wage: torch.Tensor, schedule: TaxSchedule, transfer: float, prefs: Preferences, draws: torch.Tensor,
                        share: float, elasticity: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Fixed costs of working F_i = m exp(s x_i) (log-normal; x_i the standard-normal `draws`) that
    leave `share` of workers at 0 h and give the extensive-margin `elasticity`.

    A worker works when its reservation cost R_i (what working is worth to it) exceeds F_i, so
    for a given s the median m is the `share` quantile of R_i exp(-s x_i) exactly; the
    elasticity of participation with respect to the net-of-tax rate (all take-home pay from work
    scaled by 1 +- PARTICIPATION_STEP) falls as s spreads the costs, so bisection on log s finds
    it. Where even equal costs (s -> 0) respond less than asked, s stays at its floor and the
    elasticity reported is the one reached.
    """
    def reserve(scale: float) -> torch.Tensor:  # take-home pay from work scaled: wages and cutoffs together
        return reservation_cost(wage * scale, TaxSchedule(schedule.cutoffs * scale, schedule.rates), transfer, prefs)

    r0, up, down = reserve(1.0), reserve(1.0 + PARTICIPATION_STEP), reserve(1.0 - PARTICIPATION_STEP)

    def fit(log_spread: float) -> tuple[float, float]:
        tilt = torch.exp(-math.exp(log_spread) * draws)
        median = float(torch.quantile(r0 * tilt, share))
        works = [float((r * tilt > median).double().mean()) for r in (r0, up, down)]
        return median, (works[1] - works[2]) / (2 * PARTICIPATION_STEP * max(works[0], 1e-12))

    lo, hi = math.log(MIN_COST_SPREAD), math.log(MAX_COST_SPREAD)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if fit(mid)[1] > elasticity:
            lo = mid
        else:
            hi = mid
    spread = math.exp(0.5 * (lo + hi))
    median, reached = fit(0.5 * (lo + hi))
    costs = median * torch.exp(spread * draws)
    return costs, {"fixed_cost_median": median, "fixed_cost_log_sd": spread, "extensive_elasticity_us_2024": reached}


def llm_settings(config: RunConfig, cache_path: str | None) -> LLMSettings:
    c = config.llm  # the run's LLMOptions; the client's settings add the run's seed, cache and worker adapter
    options = c.model_dump(include=set(LLMSettings.model_fields))
    adapter = worker_adapter(config)
    return LLMSettings(**{**options, "cache_path": c.cache_path or cache_path, "seed": config.seed,
                          "adapter": str(adapter.path) if adapter else None})


def worker_adapter(config: RunConfig) -> WorkerAdapter | None:
    """The adapter `workers.llm_adapter` names, checked against the run: language-model workers,
    prompts built as it was tuned on, and (on the embedded server) the base model it was tuned from."""
    name, w = config.workers.llm_adapter, config.workers
    if name is None or w.kind != "llm":  # like every llm-only worker setting, unused by other kinds
        return None
    try:
        adapter = load_worker_adapter(name)
    except FileNotFoundError as err:
        raise ConfigError(f"workers.llm_adapter: {err}") from None
    for field, tuned in adapter.prompt.items():
        if getattr(w, field) != tuned:
            raise ConfigError(f"workers.{field}: the adapter {name} was tuned on prompts with {field} = {tuned!r}, this run has "
                              f"{getattr(w, field)!r}; set it so, or tune an adapter on these prompts")
    embedded = not config.llm.base_urls and config.llm.backend == "openai"
    if embedded and adapter.meta.get("base_model") != EMBEDDED_GGUF:
        raise ConfigError(f"workers.llm_adapter: {name} was tuned from {adapter.meta.get('base_model')}, not the embedded "
                          f"{EMBEDDED_GGUF}")
    return adapter


def embedded_slots(config: RunConfig) -> tuple[int, str | None] | None:
    """(slots, worker adapter file) of the embedded language-model server a run's tasks share,
    None when they need none."""
    embedded = config.needs_llm and not config.llm.base_urls and config.llm.backend == "openai"
    if not embedded:
        return None
    adapter = worker_adapter(config)
    return config.llm.concurrency, str(adapter.gguf) if adapter else None


def reads_contacts(workers: WorkersConfig) -> bool:
    """Whether these workers read their social-graph contacts (so the run builds the graph)."""
    return workers.kind in ("llm", "surrogate") or (workers.kind == "bounded" and workers.social_pull > 0)


def make_workers(config: RunConfig, prefs: Preferences, population: Population, graph: SocialGraph | None,
                 client: LLMClient | None) -> Workers:
    w = config.workers
    if w.kind == "rational":
        return RationalWorkers(prefs)
    if w.kind == "bounded":
        return BoundedRationalWorkers(prefs, w.temperature, w.hour_bins, w.persistence, w.social_pull, graph, w.horizon)
    if w.kind == "surrogate":
        return surrogate_workers(config, population, graph)
    if client is None:
        raise ValueError("workers.kind = llm needs a language-model client")
    return LLMWorkers(
        population, graph, client, prefs, seed=config.seed, memory=w.memory, neighbours=w.neighbours,
        archetypes=w.archetypes, archetype_check=w.archetype_check, raw_text=w.raw_text, scored=w.scored,
        decision_format=w.decision_format, satisfaction=w.satisfaction,
    )


def surrogate_workers(config: RunConfig, population: Population, graph) -> SurrogateWorkers:
    w = config.workers
    path = Path(w.surrogate_model) if w.surrogate_model else shipped_model_path()
    if not path.is_file():
        raise ValueError(f"workers.surrogate_model: no model file at {path}")
    model = SurrogatePopulation.load(path)
    top = max(model.meta.get("bins", [0.0]))
    if top > config.economy.max_hours:
        raise ValueError(f"workers.surrogate_model: its hour bins reach {top:g} h, above economy.max_hours = {config.economy.max_hours:g}")
    wording_sd = w.wording_sd if w.wording_sd is not None else model.meta.get("wording", {}).get("sd", 0.0)
    return SurrogateWorkers(model, population, graph, w.device, w.horizon, wording_sd)


@dataclass
class Setup:
    """Everything a run plays with, built once from its config."""

    config: RunConfig
    population: Population
    graph: SocialGraph | None  # the typed social graph, for workers that read their contacts
    model: PopulationModel  # the workers, their preferences and the welfare they are judged by
    planning_model: PopulationModel  # what model-based planners query: `model`, or a sample of its workers
    calibration: dict[str, float]
    client: LLMClient | None  # the language-model client of workers and planners that talk
    owns_client: bool = False

    def close(self) -> None:
        """Close a client the builder opened (also stops the embedded server)."""
        if self.owns_client and self.client is not None:
            self.client.close()
            self.client = None


def config_population(config: RunConfig) -> Population:
    """The workers a config samples: `population.n_agents` of its income model, drawn with its seed."""
    return sample_population(config.population.n_agents, config.seed, config.population.income_model)


def build_setup(config: RunConfig, client: LLMClient | None = None, cache_path: str | None = None) -> Setup:
    """Sample the population and graph, calibrate preferences, make the workers and, when the run
    talks to a language model and no client is handed in, open one (cached at `cache_path`)."""
    population = config_population(config)
    wage = population.wage(dtype=DTYPES[config.economy.dtype])
    graph = population_graph(population, config.seed) if reads_contacts(config.workers) else None
    owns = client is None and config.needs_llm
    if owns:
        client = open_client(llm_settings(config, cache_path))
    try:
        units = population_units(population)
        prefs, calibration = calibrated_preferences(config.economy, wage, config.seed, units, taste_groups(population))
        model = PopulationModel(wage, prefs, make_workers(config, prefs, population, graph, client), config.welfare.name,
                                config.welfare.params(), units=units)
        planning = planning_model(config, population, model, client)
    except BaseException:
        if owns:
            client.close()
        raise
    if planning is not model:
        calibration["planning_agents"] = int(planning.wage.shape[-1])
    return Setup(config, population, graph, model, planning, calibration, client, owns)


def planning_model(config: RunConfig, population: Population, model: PopulationModel, client: LLMClient | None) -> PopulationModel:
    """What planners query: `model`, or, with fewer `population.planning_agents` than workers, the
    workers of a `household_sample` of about that many, with the preferences calibrated on the
    whole population and a social graph of their own."""
    agents = config.population.planning_agents
    if agents is None or agents >= population.n:
        return model
    sampled = household_sample(population, agents, config.seed)
    sub = population.subset(sampled)
    at = torch.from_numpy(sampled)
    prefs = model.prefs.for_agent(at)
    graph = population_graph(sub, config.seed) if reads_contacts(config.workers) else None
    return PopulationModel(model.wage[at], prefs, make_workers(config, prefs, sub, graph, client), model.welfare_name,
                           model.welfare_params, units=population_units(sub))


# The registered name of the mechanism a planner kind sets: its own, else the config's.
OWN_MECHANISM_NAMES = {"us_federal": "us_tax_2024", "flat": "flat", BASELINE: "flat"}


def check_options(factory: Callable, options: dict, where: str, title: str, skip: int = 0) -> None:
    """Refuse names the factory does not take and values of the wrong type (strictly, as in the
    config: a boolean is not a number, NaN is no value), naming `where.<option>`."""
    params = list(inspect.signature(factory, eval_str=True).parameters.values())[skip:]
    names = sorted(p.name for p in params)
    for key in options:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown option for {title}; options are {', '.join(names)}")
    fields = {p.name: (p.annotation, ... if p.default is p.empty else p.default) for p in params}
    try:
        create_model(title, __config__=STRICT, **fields).model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        name, *inner = first["loc"]
        path = ".".join([where, str(name), *(str(i) for i in inner if isinstance(i, int))])  # list indices, not union members
        raise ConfigError(f"{path}: {first['msg']}") from None


@contextmanager
def options_at(options: dict, where: str, title: str) -> Iterator[None]:
    """A ValueError from building names the option its message mentions first, else the entry."""
    try:
        yield
    except ValueError as err:
        message = str(err)
        mentioned = [(m.start(), str(key)) for key in options if (m := re.search(rf"\b{re.escape(str(key))}\b", message))]
        place = f"{where}.{min(mentioned)[1]}" if mentioned else f"{where} ({title})"
        raise ConfigError(f"{place}: {message}") from None


def mechanism_name(kind: str, config: RunConfig) -> str:
    return OWN_MECHANISM_NAMES.get(kind, config.mechanism.name)


def make_config_mechanism(config: RunConfig) -> Mechanism:
    """The config's mechanism; a ConfigError names `mechanism.name` or the option at fault."""
    name, options = config.mechanism.name, config.mechanism.options
    registry = available_mechanisms()
    if name not in registry:
        raise ConfigError(f"mechanism.name: unknown mechanism {name!r}; available: {', '.join(sorted(registry))}")
    if not isinstance(registry[name], EntryPoint):  # a plug-in may take **kwargs: its own errors pass through
        check_options(registry[name], options, "mechanism.options", name)
    with options_at(options, "mechanism.options", name):
        return make_mechanism(name, **options)
