"""Run configuration: a YAML file validated into typed sections, with `key.path=value` overrides.

Every field has a default, a range, and a description, from which the documentation's
configuration reference is generated (docs/hooks.py); errors name the field (e.g.
`economy.years: Input should be greater than or equal to 1`). Loading also builds the mechanism
and every planner, so a bad option fails here, named, before any population exists.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .llm.types import LLMOptions

# Values as written: a boolean is not a number, NaN and infinity are no values (ints fill float fields).
STRICT = ConfigDict(strict=True, allow_inf_nan=False)
AgeBand = Literal["16-24", "25-34", "35-44", "45-54", "55-64", "65+"]  # the personas' AGE_BANDS


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", **STRICT)


class PopulationConfig(Section):
    n_agents: int = Field(1000, ge=1, le=10_000_000, description="number of worker agents")
    income_model: Literal["census", "gb2"] = Field(
        "census",
        description="wages from census tables (BLS OEWS), or GB2 incomes fit to ACS 2023 handed out by the rank of the census wage")
    planning_agents: int | None = Field(
        None, ge=100, le=10_000_000,
        description="planners optimise against a stratified sample of about this many workers (whole households, "
        "drawn along the wage distribution), and their mechanisms are played on the whole population; "
        "null = against all of them")


class EconomyConfig(Section):
    years: int = Field(5, ge=1, le=1000, description="tax years; the planner acts at the start of each")
    steps_per_year: int = Field(4, ge=1, le=365, description="work periods per tax year")
    eta: float = Field(0.0, ge=0.0, le=5.0, description="curvature of consumption utility (0 = quasi-linear, 1 = log)")
    elasticity: float = Field(
        0.33, gt=0.0, le=5.0,
        description="labour-supply elasticity eps in the disutility: 0.33 is Chetty (2012)'s intensive-margin Hicksian "
        "elasticity, inside the evidence on taxable income (0.12-0.40, Saez, Slemrod and Giertz 2012)")
    max_hours: float = Field(80.0, gt=0.0, le=168.0, description="weekly hours cap")
    target_median_hours: float = Field(40.0, gt=0.0, description="median hours of those who work under the US 2024 schedule (sets psi)")
    share_not_working: float = Field(
        0.0, ge=0.0, lt=0.9,
        description="extensive margin: share of workers at 0 h under the US 2024 schedule, set by log-normal fixed costs of "
        "working; 0 = none (everyone works). 0.19 is one minus the 2024 US prime-age employment rate (BLS, about 80.7%)")
    extensive_elasticity: float = Field(
        0.25, gt=0.0, le=2.0,
        description="extensive margin: elasticity of participation with respect to the net-of-tax rate that the spread "
        "of fixed costs is calibrated to; 0.25 is Chetty (2012)'s Hicksian extensive-margin elasticity")
    disutility_spread: float = Field(
        0.0, ge=0.0, le=3.0,
        description="log-sd of each worker's own taste for leisure (a multiple of psi, log-normal); 0 = one taste for all")
    disutility_wage_slope: float = Field(
        0.0, ge=-2.0, le=2.0,
        description="how each worker's taste for leisure moves with its wage: taste proportional to wage^slope; 0 = not at all")
    disutility_types: list[list[float]] = Field(
        [], description="further types of worker, as [share, multiple] pairs: that share of workers (drawn at random) "
        "has that multiple of the others' taste for leisure (structural labour models' unobserved types); [] = one type")
    disutility_by_schooling: dict[Literal["less_than_high_school", "high_school", "some_college_or_associate",
                                          "bachelors_or_more"], float] = Field(
        {}, description="a multiple of the taste for leisure for each schooling group named (structural labour models' "
        "taste shifters by observed characteristics; groups not named keep 1); {} = the same for all")
    disutility_by_age: dict[AgeBand, float] = Field(
        {}, description="a multiple of the taste for leisure for each age band named (the young and the old work "
        "part time far more often than the prime-aged; bands not named keep 1); {} = the same for all")
    disutility_type_shares_by_age: dict[AgeBand, list[float]] = Field(
        {}, description="for each age band named, the shares of the further types (`disutility_types`, in their order) "
        "among its workers, in place of the shares for all (students and the retired work short hours far more "
        "often); {} = the same shares at every age")
    dtype: Literal["float64", "float32"] = Field(
        "float64", description="floating-point precision of the simulation; float32 halves memory for very large populations")

    @field_validator("disutility_types")
    @classmethod
    def _types_are_shares_and_multiples(cls, types: list[list[float]]) -> list[list[float]]:
        if (any(len(t) != 2 or not 0 < t[0] < 1 or not 0 < t[1] <= 100 for t in types)
                or sum(t[0] for t in types) >= 1):
            raise ValueError(f"each [share, multiple] needs a share in (0, 1) and a multiple in (0, 100], the shares "
                             f"summing to under 1; got {types}")
        return types

    @field_validator("disutility_by_schooling", "disutility_by_age")
    @classmethod
    def _positive_multiples(cls, multiples: dict[str, float]) -> dict[str, float]:
        if any(not 0 < m <= 100 for m in multiples.values()):
            raise ValueError(f"each group's multiple must be in (0, 100]; got {multiples}")
        return multiples

    @model_validator(mode="after")
    def _shares_by_age_name_every_type(self) -> "EconomyConfig":
        for band, shares in self.disutility_type_shares_by_age.items():
            if len(shares) != len(self.disutility_types) or any(not 0 < share < 1 for share in shares) or sum(shares) >= 1:
                raise ValueError(f"disutility_type_shares_by_age: {band} needs one share in (0, 1) for each of the "
                                 f"{len(self.disutility_types)} disutility_types, summing to under 1; got {shares}")
        return self

    @model_validator(mode="after")
    def _median_below_cap(self) -> "EconomyConfig":
        if not self.target_median_hours < self.max_hours:
            raise ValueError(f"target_median_hours ({self.target_median_hours}) must be below max_hours ({self.max_hours})")
        return self


class WelfareConfig(Section):
    name: Literal["ability_weighted", "utilitarian", "inverse_income", "rawlsian", "atkinson", "equality_productivity"] = Field(
        "ability_weighted", description="social welfare function; ability_weighted weighs utility by a fixed function of the wage")
    income_floor: float = Field(10_000.0, gt=0.0, description="inverse_income: incomes below this weigh as this ($/yr)")
    inequality_aversion: float = Field(1.0, ge=0.0, description="ability_weighted and atkinson: inequality aversion e")

    def params(self) -> dict[str, float]:
        return {
            "inverse_income": {"income_floor": self.income_floor},
            "atkinson": {"inequality_aversion": self.inequality_aversion},
            "ability_weighted": {"inequality_aversion": self.inequality_aversion},
        }.get(self.name, {})


class MechanismConfig(Section):
    name: str = Field(
        "three_bracket",
        description="a registered mechanism: a built-in or a plug-in; checked even when every planner brings its own")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options for the mechanism")


class WorkersConfig(Section):
    kind: Literal["rational", "bounded", "llm", "surrogate"] = Field(
        "rational",
        description="who chooses the hours: exact utility maximisers, bounded-rational (logit) workers, language-model "
        "personas or the distilled surrogate population")
    temperature: float = Field(0.05, gt=0.0, le=10.0, description="bounded: logit noise relative to full-time utility")
    hour_bins: int = Field(17, ge=2, le=1000, description="bounded: number of hour choices from 0 to max_hours")
    persistence: float = Field(0.0, ge=0.0, lt=1.0, description="bounded: chance a worker repeats its last hours (habit)")
    social_pull: float = Field(0.0, ge=0.0, lt=1.0, description="bounded: chance a worker copies a random contact's last hours")
    memory: int = Field(3, ge=1, le=50, description="llm: recent periods a worker remembers")
    neighbours: int = Field(3, ge=0, le=20, description="llm: contacts whose hours and messages a worker reads")
    archetypes: int = Field(0, ge=0, description="llm: 0 = one call per agent, K = one call per archetype")
    archetype_check: int = Field(24, ge=0, description="llm: agents also asked one by one to measure archetype error")
    raw_text: bool = Field(False, description="llm: keep each reply's raw text in the traces")
    scored: bool = Field(True, description="llm: ask for log-probabilities to get an hour distribution")
    decision_format: Literal["narrative", "budget_menu"] = Field(
        "narrative", description="llm: narrative (the rules in words) or budget_menu (what each hour choice leaves to spend)")
    satisfaction: bool = Field(False, description="llm, budget_menu: score each remembered week 0-10 by the stated utility")
    llm_adapter: str | None = Field(
        None, min_length=1,
        description="llm: a LoRA adapter the workers' decisions are answered with: `tuned` (shipped for the embedded model: "
        "tuned to bounded workers with elasticity 0.33, habit 0.3 and imitation 0.2, on budget-menu prompts) or a "
        "directory from `llm-economist tune`; None: the base model. The workers' prompt settings must be those it was "
        "tuned on (the error names the field)")
    surrogate_model: str | None = Field(None, description="surrogate: model file from `distill train` (default: the shipped one)")
    device: str = Field(
        "cpu", pattern=r"^(cpu|auto|cuda(:[0-9]+)?)$", description="surrogate: cpu, cuda[:i] or auto (CUDA when present)")
    horizon: int = Field(3, ge=1, le=50, description="surrogate, and bounded with habit or imitation: periods rolled forward when planners query the population model")
    wording_sd: float | None = Field(
        None, ge=0.0, le=10.0,
        description="surrogate: scale of each decision's wording noise (0 = none; default: the one `distill calibrate` fitted into the model file)")

    @model_validator(mode="after")
    def _habit_and_imitation(self) -> "WorkersConfig":
        if self.persistence + self.social_pull >= 1:
            raise ValueError("workers.persistence + workers.social_pull must be below 1 (the rest is the worker's own choice)")
        return self


class LLMConfig(LLMOptions):
    """Section `llm`: the client's settings as llm.types.LLMOptions defines them, plus what only a run has."""

    cache_path: str | None = Field(None, description="SQLite response cache; default <out>/llm_cache.sqlite")
    max_consecutive_fallbacks: int = Field(
        20, ge=0,
        description="stop the run (exit code 3) when this many worker decisions or planner proposals in a row fell back, "
        "or all of a planner's first period (0 = never stop)",
    )


class PlatformConfig(Section):
    name: str = Field(description="the platform's name on the ballot")
    parameters: list[float] = Field(description="the mechanism's parameters the platform would enact")


class GovernanceConfig(Section):
    every_years: int = Field(0, ge=0, description="hold an election every k tax years (0 = no elections)")
    rule: Literal["plurality", "instant_runoff", "approval"] = Field("plurality", description="voting rule")
    planner_platform: bool = Field(True, description="the planner's proposal is a candidate")
    worker_platforms: int = Field(0, ge=0, le=20, description="workers at spread income quantiles propose platforms")
    platforms: list[PlatformConfig] = Field(default_factory=list, max_length=20, description="fixed candidate platforms")

    @model_validator(mode="after")
    def _distinct_names(self) -> "GovernanceConfig":
        names = [p.name for p in self.platforms]
        if len(set(names)) < len(names) or {"status quo", "planner"} & set(names):
            raise ValueError("platforms: names must be distinct and not 'status quo' or 'planner'")
        if self.every_years and not (self.planner_platform or self.platforms or self.worker_platforms):
            raise ValueError("an election needs a challenger: enable planner_platform, platforms or worker_platforms")
        return self


class PlannerConfig(Section):
    model_config = ConfigDict(extra="allow")
    kind: Literal["fixed", "us_federal", "flat", "saez", "search", "grid", "gradient", "llm", "random", "ppo"] = Field(
        description="which planner; every other key of the entry is one of its options")
    label: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", description="name in tables, plots and file names (default: kind)")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def name(self) -> str:
        return self.label or self.kind


class OutputConfig(Section):
    traces: bool = Field(True, description="write traces.parquet (one row per agent and step)")
    trace_agents: int = Field(2000, ge=0, description="trace at most this many agents (the first ones)")


class RunConfig(Section):
    name: str = Field("run", description="run name; the default output directory is runs/<name>")
    seed: int = Field(0, ge=0, description="seeds population, graph and worker randomness")
    seeds: int = Field(1, ge=1, le=100, description="seeds per planner: seed, seed+1, ...; 3 or more give 95% intervals")
    population: PopulationConfig = PopulationConfig()
    economy: EconomyConfig = EconomyConfig()
    welfare: WelfareConfig = WelfareConfig()
    mechanism: MechanismConfig = MechanismConfig()
    workers: WorkersConfig = WorkersConfig()
    planners: list[PlannerConfig] = Field(
        default_factory=lambda: [PlannerConfig(kind="saez")], min_length=1, validate_default=True,
        description="planners to run, each {kind, label, ...options}; labels must be unique and `no_tax` is reserved "
        "for the baseline every run adds")
    llm: LLMConfig = LLMConfig()
    governance: GovernanceConfig = GovernanceConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _enough_proposers(self) -> "RunConfig":
        if self.governance.worker_platforms > self.population.n_agents:
            raise ValueError(f"governance.worker_platforms ({self.governance.worker_platforms}) exceeds population.n_agents")
        return self

    @property
    def needs_llm(self) -> bool:
        return self.workers.kind == "llm" or any(p.kind == "llm" for p in self.planners)

    @field_validator("planners")
    @classmethod
    def _unique_labels(cls, planners: list[PlannerConfig]) -> list[PlannerConfig]:
        for planner in planners:
            planner.label = planner.name
        names = [p.name for p in planners]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"labels must be unique, repeated: {dupes} (set `label` to tell them apart)")
        return planners


class ConfigError(ValueError):
    """A config that cannot be used; the message names the field."""


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "invalid config:\n  " + "\n  ".join(lines)


def apply_override(data: dict, assignment: str) -> None:
    """Set a dotted key (`economy.years=3`, `planners.0.budget=50`) to a YAML-parsed value."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected key.path=value")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {assignment!r}: value is not valid YAML: {err}") from None
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"override {path}: {'.'.join(keys[: i + 1])} is not an index of the list")
            node = node[int(key)]
        else:
            node = node.setdefault(key, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override {path}: {'.'.join(keys[: i + 1])} is not a section")
    last = keys[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"override {path}: {last} is not an index of the list")
        node[int(last)] = value
    else:
        node[last] = value


def read_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read YAML (or start from defaults), apply overrides and validate against the schema. Whether
    its mechanism and planners can be built is checked above, by `planner_factory.load_config`."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"config {path}: not valid YAML: {err}") from None
        if data is None:  # an empty file is a mistake, not a request for the whole default experiment
            raise ConfigError(f"config {path}: the file is empty; write at least the settings that differ from the defaults "
                              "(for example `name: my_run`)")
        if not isinstance(data, dict):
            raise ConfigError(f"config {path}: the top level must be a mapping of sections")
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format(err)) from None
    return config


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def config_fingerprint(config: RunConfig) -> str:
    """Hash of everything that changes results or files, not of how language-model calls are transported
    (so a run stopped by a broken server resumes against a fixed or another one)."""
    data = config.model_dump(mode="json")
    for transport in ("base_urls", "adapter_model", "api_key_env", "timeout_s", "max_retries", "concurrency", "server_concurrency", "cache_path",
                      "price_prompt_per_million", "price_completion_per_million", "max_consecutive_fallbacks"):
        data["llm"].pop(transport)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
