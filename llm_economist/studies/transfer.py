"""The transfer test: does a mechanism optimised against a model of the workers do well on the
workers themselves?

Every planner of a config that optimises against a population model (Saez, search, grid,
gradient, PPO) is run once against each *source* model of the same census sample: the rational
model with the run's preferences, a surrogate distilled from the workers, the population a tuned
language model's adapter was tuned toward (its target), or the workers' own population model where
it is theirs (bounded-rational workers). The planning population can be larger than the one judged
(`plan_agents`: plan against 100,000 learned agents, judge on 100 language-model workers). Each
mechanism a planner settles on is then played on the real workers of that sample, beside the
no-tax baseline, with common random numbers; the seeds are the config's, so a study keeps them
apart from the seeds its surrogate was distilled on. Gain captured is read against the best
mechanism optimised on the workers themselves where that source is run (the optimum computed on
the truth), else against the best mechanism judged.

A surrogate is trusted only where its traces went: planners optimising against it keep every
rate within the marginal rates its traces showed (`rate_support`, recorded by `distill train`),
since beyond them it extrapolates and a planner finds exactly what it gets wrong.

Finished work is kept: each seed's mechanisms are written to `mechanisms_<seed>.json` before they
are judged (with the seconds each source's planning took), and the judging runs resume from their
checkpoints. A source added to a finished study is planned alone; every mechanism is then judged
again, the language-model workers' replies to the ones judged before coming from the cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from ..config import ConfigError, PlannerConfig, RunConfig, config_fingerprint, dump_config
from ..surrogate.model import SurrogatePopulation
from ..factory import build_setup, make_config_mechanism, worker_adapter
from ..planner_factory import load_config, make_planner
from ..planners.fixed import BASELINE
from ..reporting.report import format_estimate
from ..reporting.summary import combine, gain_captured, interval, write_summary
from ..runner import Runner

SOURCES = ("rational", "surrogate", "target", "workers")
TRUTH = "workers"  # the source that is the real workers' own population model


def source_config(config: RunConfig, source: str, surrogate_model: str | None) -> RunConfig:
    """The config whose population model a planner optimises against when trained on `source`."""
    if source == "workers":
        if config.workers.kind not in ("rational", "bounded", "surrogate"):
            raise ValueError(f"transfer: planners cannot optimise against {config.workers.kind} workers themselves "
                             "(their population model is the rational stand-in); leave out the source 'workers'")
        return config
    if source == "rational":
        return config.model_copy(update={"workers": config.workers.model_copy(update={"kind": "rational"})})
    if source == "surrogate":
        if surrogate_model is None:
            raise ValueError("transfer: the source 'surrogate' needs a surrogate model file")
        update = {"kind": "surrogate", "surrogate_model": surrogate_model}
        return within_support(config.model_copy(update={"workers": config.workers.model_copy(update=update)}), surrogate_model)
    if source == "target":
        return target_config(config)
    raise ValueError(f"transfer: unknown source {source!r}; choose from {SOURCES}")


def within_support(config: RunConfig, surrogate_model: str) -> RunConfig:
    """The config with the mechanism's top rate cut to the highest rate the surrogate's traces
    showed (its `rate_support`), so that planners cannot exploit what the surrogate never saw."""
    support = SurrogatePopulation.load(surrogate_model).meta.get("rate_support")
    if support is None:  # trained before surrogates recorded their support
        return config
    options = config.mechanism.options
    mechanism = config.mechanism.model_copy(update={"options": {**options, "max_rate": min(support[1], options.get("max_rate", 1.0))}})
    capped = config.model_copy(update={"mechanism": mechanism})
    try:
        make_config_mechanism(capped)
    except ConfigError as err:
        raise ValueError(f"transfer: planning against the surrogate keeps every rate within the traces' support (up to "
                         f"{support[1]:g}), which needs a mechanism with a max_rate option ({err})") from None
    return capped


def target_config(config: RunConfig) -> RunConfig:
    """The population the workers' tuned adapter was tuned toward, as workers of this run: the
    known truth behind tuned language-model workers."""
    adapter = worker_adapter(config)
    if adapter is None:
        raise ValueError("transfer: the source 'target' needs language-model workers with a tuned adapter "
                         "(workers.kind: llm, workers.llm_adapter)")
    target = dict(adapter.meta["target"])
    for field in ("elasticity", "eta", "max_hours"):
        if getattr(config.economy, field) != target[field]:
            raise ValueError(f"transfer: economy.{field} is {getattr(config.economy, field)}, but the adapter's target population "
                             f"was tuned with {target[field]}; the target is not these workers' truth")
    update = {k: target[k] for k in ("kind", "temperature", "hour_bins", "persistence", "social_pull")}
    return config.model_copy(update={"workers": config.workers.model_copy(update=update)})


def optimise(
    config: RunConfig, sources: tuple[str, ...], surrogate_model: str | None, plan_agents: int | None = None,
) -> dict:
    """The parameters each planner settles on against each source model (one seed), as
    `{"mechanisms": {source.planner: theta}, "optimise_s": {source: seconds}}`."""
    found, seconds = {}, {}
    for source in sources:
        trained_on = source_config(config, source, surrogate_model)
        if plan_agents is not None:
            trained_on = trained_on.model_copy(update={"population": trained_on.population.model_copy(update={"n_agents": plan_agents})})
        start = time.perf_counter()
        setup = build_setup(trained_on)
        try:
            for planner in trained_on.planners:
                theta = make_planner(planner, trained_on).propose(0, [], setup.model)
                found[f"{source}.{planner.name}"] = [float(x) for x in theta]
        finally:
            setup.close()
        seconds[source] = round(time.perf_counter() - start, 1)
    return {"mechanisms": found, "optimise_s": seconds}


def run_transfer(
    config: RunConfig, out: str | Path, sources: tuple[str, ...] = SOURCES, surrogate_model: str | None = None,
    progress: Callable[[str], None] | None = None, plan_agents: int | None = None,
) -> dict:
    """Optimise on every source, judge on the real workers for each seed; write and return the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(config))
    summaries, walls = [], []
    for seed in range(config.seed, config.seed + config.seeds):
        one = config.model_copy(update={"seed": seed, "seeds": 1})
        saved = out / f"mechanisms_{seed}.json"
        record = json.loads(saved.read_text()) if saved.is_file() else {"mechanisms": {}, "optimise_s": {}, "plan_agents": plan_agents}
        if record.get("plan_agents") != plan_agents:
            raise ValueError(f"transfer: {saved} was planned with plan_agents {record.get('plan_agents')}, not {plan_agents}; "
                             "use another output directory or delete it")
        missing = tuple(source for source in sources if source not in record["optimise_s"])  # a source added to a study
        if missing:
            if progress:
                progress(f"seed {seed}: optimising on {', '.join(missing)}" + (f" with {plan_agents:,} agents" if plan_agents else ""))
            found = optimise(one, missing, surrogate_model, plan_agents)
            record["mechanisms"].update(found["mechanisms"])
            record["optimise_s"].update(found["optimise_s"])
            record.pop("judge_s", None)  # what is judged changes with the mechanisms
            saved.write_text(json.dumps(record, indent=1))
        mechanisms = {label: theta for label, theta in record["mechanisms"].items() if label.split(".", 1)[0] in sources}
        judged = one.model_copy(update={"planners": [PlannerConfig(kind="fixed", label=label, parameters=theta)
                                                       for label, theta in mechanisms.items()]})
        if progress:
            progress(f"seed {seed}: judging {len(mechanisms)} mechanisms on the workers")
        seed_dir = out / f"seed_{seed}"
        fresh, start = not seed_dir.exists(), time.perf_counter()
        # Other mechanisms than the ones judged there: judge them all again (language-model replies come from the cache).
        same = (seed_dir / "config.yaml").is_file() and config_fingerprint(load_config(seed_dir / "config.yaml")) == config_fingerprint(judged)
        summaries.append(Runner(judged, seed_dir, resume=same, progress=False).run())
        if "judge_s" not in record or not (fresh or same):  # timed only when judged in one go, without the cache's help
            record["judge_s"] = round(time.perf_counter() - start, 1) if fresh else None
            saved.write_text(json.dumps(record, indent=1))
        walls.append({**{f"plan on {k}": record["optimise_s"][k] for k in sources}, "judge on the workers": record["judge_s"]})
    summary = transfer_summary(combine(summaries), sources)
    summary["plan_agents"] = plan_agents or config.population.n_agents
    summary["timings"]["stages_s_mean"] = {stage: mean_of([w[stage] for w in walls]) for stage in walls[0]}
    write_summary(out, summary)
    (out / "table.md").write_text(transfer_table(summary))
    return summary


def mean_of(seconds: list[float | None]) -> float | None:
    timed = [s for s in seconds if s is not None]
    return round(sum(timed) / len(timed), 1) if timed else None


def transfer_summary(combined: dict, sources: tuple[str, ...]) -> dict:
    """Each mechanism's welfare and gain captured on the real workers, with 95% intervals over seeds.

    Where the workers state the distributions their hours are drawn from, mechanisms are judged on
    the welfare expected over them (the sampling noise of one answer a worker integrated out), and
    the gain on the sampled answers is given beside it."""
    planners = {k: v for k, v in combined["planners"].items() if k != BASELINE}
    everyone = list(combined["planners"].values())
    expected = all(None not in p["per_seed"]["expected_welfare"] for p in everyone)
    judged_on = "expected_welfare" if expected else "welfare"
    reference = [k for k in planners if k.startswith(f"{TRUTH}.")] if TRUTH in sources else list(planners)

    def gains_on(metric: str) -> dict[str, list[float | None]]:
        no_tax = combined["planners"][BASELINE]["per_seed"][metric]
        best = [max(planners[k]["per_seed"][metric][i] for k in reference) for i in range(len(no_tax))]
        return {label: [gain_captured(w, w0, b) for w, w0, b in zip(p["per_seed"][metric], no_tax, best)]
                for label, p in planners.items()}

    judged, sampled = gains_on(judged_on), gains_on("welfare")
    rows = {}
    for label, p in planners.items():
        source, planner = label.split(".", 1)
        gain, sampled_gain = interval(judged[label]), interval(sampled[label])
        welfare = p[judged_on] if expected else {"mean": p["welfare_mean"], "ci95": p["welfare_ci95"]}
        rows[label] = {
            "source": source, "planner": planner, "welfare_mean": welfare["mean"], "welfare_ci95": welfare["ci95"],
            "gain_mean": gain.mean if gain else None, "gain_ci95": gain.as_dict()["ci95"] if gain else None,
            "per_seed_gain": judged[label], "parameters": {k: v["mean"] for k, v in p["parameters"].items()},
            "mean_hours": p["mean_hours"]["mean"],
            **({"sampled_gain_mean": sampled_gain.mean if sampled_gain else None,
                "sampled_gain_ci95": sampled_gain.as_dict()["ci95"] if sampled_gain else None,
                "per_seed_sampled_gain": sampled[label]} if expected else {}),
        }
    return {
        "seeds": combined["seeds"], "population": combined["population"], "sources": list(sources),
        "reference": "the best mechanism optimised on the workers themselves" if TRUTH in sources
        else "the best mechanism judged", "judged_on": judged_on,
        "no_tax_welfare_mean": interval(combined["planners"][BASELINE]["per_seed"][judged_on]).mean, "mechanisms": rows,
        "timings": {"created": combined["timings"]["created"]},
    }


def transfer_table(summary: dict) -> str:
    """Markdown: one row per mechanism, gain captured on the real workers with its interval."""
    expected = summary["judged_on"] == "expected_welfare"
    lines = [f"Gain captured on the real workers, against {summary['reference']}; means over seeds "
             f"{summary['seeds']} with 95% intervals. Planned against {summary['plan_agents']:,} agents of each source "
             f"model, judged on {summary['population']['n_agents']:,} workers"
             + (" by the welfare expected over the hour distributions they state (the gain on their sampled answers "
                "beside it)." if expected else "."), "",
             "| optimised on | planner | gain captured (%) |" + (" on sampled answers (%) |" if expected else "")
             + " welfare | mean hours | parameters |", "|---|---|---:|" + ("---:|" if expected else "") + "---:|---:|---|"]
    for row in summary["mechanisms"].values():
        gain = format_estimate({"mean": row["gain_mean"], "ci95": row["gain_ci95"]})
        sampled = f" {format_estimate({'mean': row['sampled_gain_mean'], 'ci95': row['sampled_gain_ci95']})} |" if expected else ""
        welfare = format_estimate({"mean": row["welfare_mean"], "ci95": row["welfare_ci95"]})
        parameters = ", ".join(f"{k} {v:.3g}" for k, v in row["parameters"].items())
        lines.append(f"| {row['source']} | {row['planner']} | {gain} |{sampled} {welfare} | {row['mean_hours']:.1f} | {parameters} |")
    walls = ", ".join(f"{stage} {seconds:,.0f} s" for stage, seconds in summary["timings"]["stages_s_mean"].items() if seconds is not None)
    return "\n".join(lines) + f"\n\nWall time per seed (mean): {walls}.\n"
