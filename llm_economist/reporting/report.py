"""Turn a finished run directory into PNG figures and a Markdown report a person reads first.

Every table and figure renders from whatever the run holds: a planner with no finished year, a
figure without data, or a NaN shows as an em dash or a note, never as a crash.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml

from ..planners.fixed import BASELINE
from ..llm.adapter import load_worker_adapter
from ..workers.prompts import CHANNELS
from . import plots
from .summary import MIN_SEEDS, interval, read_summary, tied_groups

REPORT_NAME = "report.md"
DASH = "—"

# What each file of a run directory holds, in the order the report lists them.
RUN_FILES = {
    "config.yaml": "the resolved configuration of the run",
    "summary.json": "headline figures per planner: means with 95% intervals over seeds and each seed's values",
    "timings.json": "when the summary was made and each planner's wall time (apart, so identical runs write identical summaries)",
    "metrics.csv": "aggregates per seed, planner and step (welfare, hours, revenue, inequality)",
    "parameters.csv": "mechanism parameters per seed, planner and tax year (tidy)",
    "traces.parquet": "one row per planner, agent and step",
    "final_outcomes.parquet": "per-agent outcomes of each planner's last step, every seed",
    "planner_log.csv": "the language-model planner's reply each year (reason, fallback, tokens)",
    "elections.json": "each election's platforms, tallies and winner",
    "llm_cache.sqlite": "cached language-model replies: point llm.cache_path here to replay the run with no calls",
}

FIGURES = {
    "welfare_over_time.png": (
        "Welfare over time",
        "Social welfare each step, mean over seeds (shaded: its 95% interval from 3 seeds, the seeds' range with 2); "
        "dotted lines mark the start of each tax year; a note names planners whose lines coincide.",
    ),
    "final_schedules.png": (
        "Final tax schedules",
        "Final marginal rates (left) and average tax net of the equal transfer (right) against annual income from $0 "
        "(linear to $10,000, logarithmic above), mean over seeds (shaded as in the legend); negative rates are credits "
        "phasing in, negative averages mean a worker receives more than they pay (axis cut at −100%).",
    ),
    "hours_distribution.png": ("Hours worked", "Share of workers by weekly hours in each planner's final step, mean over "
                               "seeds with the band the legend names."),
    "lorenz_curves.png": (
        "Inequality",
        "Lorenz curves of final pre-tax income and consumption, mean over seeds; the legend gives the Gini "
        "as a mean over seeds with its interval; the dashed diagonal is perfect equality.",
    ),
    "training_curve.png": (
        "Training",
        "Mean reward per rollout while the learning planners trained against the population model, one line per seed.",
    ),
    "parameters_over_time.png": (
        "Parameters by year",
        "The mechanism parameters planners changed from year to year, mean over seeds; each panel is one "
        "parameter of one mechanism (planners that bring their own mechanism get their own panels).",
    ),
}

STANDARD_CAVEATS = [
    "“Gain captured” is (W - W_0) / (W_best - W_0) in each seed, where W_0 is the final-year welfare of "
    "no tax and no transfer played on the same workers (the `no_tax` row) and W_best that of the best "
    "configured planner in that seed; “—” where no planner beats no tax.",
    "Planners marked “yes” under “Population model” query the population's response to candidate "
    "policies before choosing; the others learn only from the tax years they actually lived through. "
    "Compare them with that difference in mind.",
]


# ---- number formatting for people -------------------------------------------------------


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def format_money(x) -> str:
    """$ with thousands separators: 12345.6 -> '$12,346'; negative -> '-$1,200'."""
    if _missing(x):
        return DASH
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def format_percent(x) -> str:
    """A value already in percent, one decimal: 98.71 -> '98.7%'."""
    return DASH if _missing(x) else f"{x:.1f}%"


def format_share(x) -> str:
    """A fraction as percent, one decimal: 0.052 -> '5.2%'."""
    return DASH if _missing(x) else f"{100 * x:.1f}%"


def format_number(x) -> str:
    """Parameters and single values: whole numbers with separators when large, else 4 decimals."""
    if _missing(x):
        return DASH
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x != 0 and abs(x) < 0.01:
        return f"{x:.4g}"
    return f"{x:.4f}"


def format_seconds(s) -> str:
    if _missing(s):
        return DASH
    if s < 60:
        return f"{s:.1f} s"
    minutes, seconds = divmod(round(s), 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min {seconds} s"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 step', '3 steps'."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def _place(half_width: float | None, mean: float) -> int:
    """The decimal place to round at: two significant digits of the interval's half-width, or
    three of the mean when there is no interval (negative: tens, hundreds, ...)."""
    reference, digits = (half_width, 2) if half_width else (abs(mean), 3)
    if not reference:
        return 0
    return min(6, digits - 1 - math.floor(math.log10(reference)))


def format_estimate(estimate: dict | None, scale: float = 1.0, prefix: str = "", suffix: str = "") -> str:
    """A mean with its 95% interval as 'mean [low, high]', the project's one notation (intervals cut
    to a quantity's bounds are not symmetric), at the precision the interval's width allows:
    {"mean": 18412.3, "ci95": [17200.1, 19624.5]} -> '18,400 [17,200, 19,600]'; no interval -> '18,400'."""
    if not estimate or _missing(estimate.get("mean")):
        return DASH
    mean = estimate["mean"] * scale
    ci = estimate.get("ci95")
    half = None if not ci or any(_missing(c) for c in ci) else abs(ci[1] - ci[0]) * scale / 2
    half = half or None  # no spread over seeds: the value is exact, no interval to print
    place = _place(half, mean)
    decimals = max(0, place)

    def show(x: float) -> str:
        x = round(x, place) + 0.0  # + 0.0 turns -0.0 into 0.0
        return f"{'-' if x < 0 else ''}{prefix}{abs(x):,.{decimals}f}{suffix}"

    return show(mean) if half is None else f"{show(mean)} [{show(ci[0] * scale)}, {show(ci[1] * scale)}]"


def estimate_of(p: dict, name: str) -> dict | None:
    """The mean and interval of a planner's figure, from the summary's two layouts of them."""
    if name in ("welfare", "gain_captured"):
        return {"mean": p.get(f"{name}_mean"), "ci95": p.get(f"{name}_ci95")}
    value = p.get(name)
    return value if isinstance(value, dict) else None


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of already formatted strings; the first column left-aligned."""
    if df.empty:
        return "*(no rows)*"
    cells = df.astype(str).map(lambda v: v.replace("|", r"\|"))
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join([":---"] + ["---:"] * (len(df.columns) - 1)) + "|"
    rows = ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


# ---- reading the run --------------------------------------------------------------------


class NoRunError(ValueError):
    """The directory holds no finished run (a usage error: exit 2 at the command line)."""


def require_files(run_dir: Path, *names: str) -> None:
    """NoRunError naming the first missing file and the command that writes a run."""
    for name in names:
        if not (run_dir / name).is_file():
            raise NoRunError(f"{run_dir} holds no finished run (no {name}); run `llm-economist compare CONFIG --out {run_dir}` first")


def _table(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return frame if len(frame) else None


def final_outcomes(run_dir: Path) -> tuple[pd.DataFrame | None, str]:
    """Per-agent rows of each planner's last step, and a note on where they came from."""
    frame = _table(run_dir / "final_outcomes.parquet")
    if frame is not None:
        return frame, "final_outcomes.parquet"
    traces = _table(run_dir / "traces.parquet")
    if traces is not None:
        last = traces.groupby("planner")["step"].transform("max")
        return traces[traces["step"] == last], "the last step of traces.parquet"
    return None, ""


# ---- the report -------------------------------------------------------------------------


def _seeds_line(summary: dict) -> str:
    seeds = summary.get("seeds", [])
    listed = ", ".join(str(s) for s in seeds)
    if len(seeds) >= MIN_SEEDS:
        return (
            f"**{plural(len(seeds), 'seed')}** ({listed}): every figure is a mean over seeds with its 95% t-interval "
            "in brackets, printed to the precision the interval allows (shares, Gini coefficients and mechanism "
            "parameters have theirs cut to their bounds). Every planner meets the same seeds."
        )
    return (
        f"**{plural(len(seeds), 'seed')}** ({listed or '?'}): figures are means with no interval and the ranking is not "
        f"tested; below {MIN_SEEDS} seeds a 95% interval is wider than the quantities' own range. Rerun with "
        f"`--seeds {MIN_SEEDS}` or more."
    )


def _tested(ranking: list[dict]) -> bool:
    """Whether the ranking says more than the order of the means: two planners or more, paired tests run."""
    return len(ranking) >= 2 and all(row.get("tested") for row in ranking)


def answer(summary: dict) -> str:
    """The run's answer in one sentence: which planner is best, by how much over no tax, and
    whether the seeds can tell."""
    ranking, planners = summary.get("ranking", []), summary.get("planners", {})
    if len(ranking) < 2:
        finished = f"Only {ranking[0]['planner']} finished" if ranking else "No planner finished"
        return f"**{finished} every seed and tax year, so this run ranks nothing yet.**"
    best = next(row["planner"] for row in ranking if row["planner"] != BASELINE)
    margin = ""
    if BASELINE in planners and best != BASELINE:
        differences = [w - w0 for w, w0 in zip(planners[best]["per_seed"]["welfare"], planners[BASELINE]["per_seed"]["welfare"])]
        found = interval(differences)
        margin = f", {format_estimate(found.as_dict() if found else None)} above no tax"
    welfare = format_estimate(estimate_of(planners[best], "welfare"))
    if not _tested(ranking):
        return (f"**{best} had the highest mean welfare ({welfare}{margin}), but with {plural(len(summary.get('seeds', [])), 'seed')} "
                f"the run cannot say whether that order would hold.**")
    top = [row["planner"] for row in ranking if row["rank"] == 1 and row["planner"] != BASELINE]
    if len(top) == 1:
        return f"**{best} gives the highest welfare ({welfare}{margin}); the seeds tell it apart from every other planner.**"
    return (f"**{plots.listed(top)} give the highest welfare and the seeds cannot tell them apart "
            f"({best} {welfare}{margin}).**")


def _embedded_model(summary: dict, config: dict) -> bool:
    llm = config.get("llm", {})
    return bool(summary.get("llm")) and not llm.get("base_urls") and llm.get("backend", "openai") == "openai"


def _embedded_note(config: dict) -> str:
    """What the embedded model's workers are, plainly: the untuned model, or the model tuned to a stated population."""
    adapter = (config.get("workers") or {}).get("llm_adapter")
    if adapter and (config.get("workers") or {}).get("kind") == "llm":
        try:
            t = load_worker_adapter(adapter).meta["target"]
            target = (f"{t['kind']}-rational workers with elasticity {t['elasticity']:g}, habit {t['persistence']:g} and "
                      f"imitation {t['social_pull']:g}")
        except (FileNotFoundError, KeyError):
            target = "a stated population"
        return (f"> **The workers are the embedded SmolLM2-135M-Instruct with a LoRA adapter (`{adapter}`) tuned to answer "
                f"as {target}.** Their response to taxes is the one they were tuned to give: the run demonstrates the "
                "method (plan against a population of language-model workers that responds) and is no evidence about "
                "people. The planner's proposals come from the base model. Point `llm.base_urls` and `llm.model` at a real "
                "model, and tune it with `llm-economist tune`, for workers of your own.")
    return ("> **The language model is the embedded SmolLM2-135M-Instruct**, a tiny model that exercises the pipeline: "
            "its choices carry no economic meaning (measured, its hours barely move with taxes), so nothing here is a "
            "finding about people. Point `llm.base_urls` and `llm.model` at a real model for that.")


def _planner_line(label: str, p: dict, config_mechanism: str | None) -> str:
    if label == BASELINE:
        return f"{label} (baseline: no tax, no transfer)"
    mechanism = p.get("mechanism")
    sets = f"sets `{mechanism}`" if mechanism == config_mechanism else f"brings its own mechanism, `{mechanism}`"
    return f"{label} (`{p.get('kind')}`, {sets})"


def _instruments(summary: dict) -> list[str]:
    """A plain warning when planners set different mechanisms: part of any gap between them is what
    each instrument can do (payroll tax, credits, brackets), not how well it was set."""
    planners = summary.get("planners", {})
    users: dict[str, list[str]] = {}
    for label, p in planners.items():
        if label != BASELINE and p.get("mechanism"):
            users.setdefault(p["mechanism"], []).append(label)
    if len(users) < 2:
        return []
    described = {name: (planners[labels[0]].get("instrument") or "").rstrip(".") for name, labels in users.items()}
    each = "; ".join(f"{', '.join(labels)} set `{name}`" + (f" ({described[name]})" if described[name] else "")
                     for name, labels in users.items())
    return [f"> **The planners use different instruments**, so part of any difference between them is what each "
            f"instrument can do, not how well it was set: {each}.", ""]


def _overview(config: dict, summary: dict) -> str:
    population, economy = config.get("population", {}), config.get("economy", {})
    n_agents = summary.get("population", {}).get("n_agents", population.get("n_agents"))
    median_wage = summary.get("population", {}).get("median_wage")
    mechanism = config.get("mechanism", {}).get("name")
    planners = "; ".join(_planner_line(label, p, mechanism) for label, p in summary.get("planners", {}).items())
    wage = f" (median wage ${median_wage:,.2f}/h in the first seed)" if not _missing(median_wage) else ""
    size = f"{n_agents:,}" if isinstance(n_agents, int) else str(n_agents)
    years, steps = economy.get("years"), economy.get("steps_per_year")
    span = f"{plural(years, 'tax year')} of {plural(steps, 'step')} each" if isinstance(years, int) and isinstance(steps, int) else "tax years"
    return (
        f"This run simulated {size} workers from the `{population.get('income_model')}` income model{wage}, "
        f"whose hours were chosen by `{config.get('workers', {}).get('kind')}` workers. Planners maximise "
        f"`{config.get('welfare', {}).get('name')}` welfare over {span} (eta = {economy.get('eta')}, "
        f"elasticity = {economy.get('elasticity')}, at most {economy.get('max_hours')} h/week). "
        f"Planners: {planners or 'none finished a tax year'}."
    )


def _rank_labels(summary: dict) -> dict[str, str]:
    """'1', '2=', ...; a dash for every planner when the ranking is untested."""
    ranking = summary.get("ranking", [])
    if not _tested(ranking):
        return {}
    ranks = {row["planner"]: row["rank"] for row in ranking}
    counts = pd.Series(list(ranks.values())).value_counts() if ranks else {}
    return {label: f"{r}=" if counts[r] > 1 else str(r) for label, r in ranks.items()}


def _group_letters(summary: dict) -> dict[str, str]:
    """Compact letters: planners sharing a letter are not told apart; a planner apart from all has its own."""
    ranking = summary.get("ranking", [])
    if not _tested(ranking):
        return {}
    order = [row["planner"] for row in ranking]
    groups = tied_groups(ranking)
    grouped = {label for group in groups for label in group}
    groups += [[label] for label in order if label not in grouped]
    groups.sort(key=lambda g: [order.index(x) for x in g])
    letters: dict[str, str] = {}
    for letter, group in zip("abcdefghijklmnopqrstuvwxyz", groups):
        for label in group:
            letters[label] = letters.get(label, "") + letter
    return letters


def comparison_table(summary: dict) -> pd.DataFrame:
    """One row per planner, best mean welfare first; every figure a mean with its 95% interval."""
    ranks, letters = _rank_labels(summary), _group_letters(summary)
    order = [row["planner"] for row in summary.get("ranking", [])]
    labels = order + [label for label in summary.get("planners", {}) if label not in order]
    rows = []
    for label in labels:
        p = summary["planners"][label]
        rows.append({
            "Rank": ranks.get(label, DASH),
            "Tied": letters.get(label, DASH),
            "Planner": label,
            "Welfare": format_estimate(estimate_of(p, "welfare")),
            "Gain captured": format_estimate(estimate_of(p, "gain_captured"), suffix="%"),
            "Fallbacks": format_share(p["fallbacks"] / p["decisions"]) if p.get("decisions") else DASH,
            "Revenue ($/yr)": format_estimate(p.get("revenue"), prefix="$"),
            "Transfer ($/yr)": format_estimate(p.get("transfer"), prefix="$"),
            "Gini (consumption)": format_estimate(p.get("gini_consumption")),
            "Mean hours": format_estimate(p.get("mean_hours")),
            "At 0 h": format_estimate(p.get("share_zero_hours"), scale=100, suffix="%"),
            "At cap": format_estimate(p.get("share_at_cap"), scale=100, suffix="%"),
            "Population model": "yes" if p.get("uses_population_model") else "no",
            "Seeds": str(len(p.get("seeds", []))),
            "Wall time": format_seconds(summary.get("timings", {}).get("wall_s", {}).get(label)),
        })
    return pd.DataFrame(rows)


def _ranking_note(summary: dict) -> str:
    ranking = summary.get("ranking", [])
    if not ranking:
        return "No planner finished every seed, so none is ranked."
    unranked = [label for label in summary.get("planners", {}) if label not in {row["planner"] for row in ranking}]
    left_out = (f" Not ranked, because they did not finish every seed and tax year: {', '.join(unranked)}."
                if unranked else "")
    if len(ranking) < 2:
        return f"Only {len(ranking)} planner finished every seed and tax year, so nothing is ranked.{left_out}"
    if not _tested(ranking):
        return f"Below {MIN_SEEDS} seeds the rows are only in the order of their means; no rank is tested.{left_out}"
    rule = (
        "Rank is 1 + the number of planners whose welfare is higher at 95% confidence (paired t-interval of the "
        "per-seed differences). Planners sharing a letter under “Tied” are not told apart; ties need not be "
        "transitive, so a planner can share a letter with two planners the seeds do tell apart."
    )
    groups = tied_groups(ranking)
    if not groups:
        return rule + " Every pair of planners is told apart at that level." + left_out
    return rule + " Not told apart: " + "; ".join("{" + ", ".join(g) + "}" for g in groups) + "." + left_out


def parameter_table(summary: dict) -> pd.DataFrame:
    """Each planner's final parameters with their meaning (brackets with their cutoffs), mean [95% interval]."""
    rows = []
    for label, p in summary.get("planners", {}).items():
        for name, est in p.get("parameters", {}).items():
            unit = est.get("unit", "")
            value = format_estimate(est, scale=100, suffix="%") if unit == "fraction" else format_estimate(est, prefix="$" if unit.startswith("$") else "")
            rows.append({"Planner": label, "Mechanism": p.get("mechanism", DASH), "Parameter": name,
                         "Meaning": est.get("description", ""), "Final value": value})
    return pd.DataFrame(rows)


def _calibration(summary: dict, config: dict) -> str:
    cal = summary.get("calibration", {})
    if not cal:
        return "No calibration was recorded for this run."
    cap = config.get("economy", {}).get("max_hours")
    psi = cal.get("psi")
    median = cal.get("median_hours_us_2024")
    return (
        f"Labour disutility psi = {DASH if _missing(psi) else f'{psi:.4g}'} (mean over seeds). Under the 2024 US federal "
        f"schedule the median worker works {DASH if _missing(median) else f'{median:.1f}'} h/week; "
        f"{format_share(cal.get('share_zero_hours_us_2024'))} work 0 h and "
        f"{format_share(cal.get('share_at_cap_us_2024'))} sit at the cap" + (f" of {cap} h." if cap else ".")
        + _margins(cal)
    )


def _margins(cal: dict) -> str:
    """The elasticities the preferences were calibrated to, and the extensive margin's fixed costs."""
    text = "" if _missing(cal.get("intensive_elasticity")) else f" Intensive-margin elasticity {cal['intensive_elasticity']:.2f}"
    if _missing(cal.get("extensive_elasticity_us_2024")):
        return text + ("; no extensive margin (everyone works; `economy.share_not_working` adds one)." if text else "")
    return (
        f"{text}; extensive-margin elasticity {cal['extensive_elasticity_us_2024']:.2f} (participation against take-home pay, "
        f"measured at +-5%), from fixed costs of working with median ${cal['fixed_cost_median']:,.0f}/year and log-sd "
        f"{cal['fixed_cost_log_sd']:.2f}."
    )


def _make_figures(run_dir: Path, config: dict, summary: dict, outcomes: pd.DataFrame | None) -> tuple[list[str], list[str]]:
    """Draw every figure the data allow; return the file names written and notes on those skipped."""
    metrics = _table(run_dir / "metrics.csv")
    parameters = _table(run_dir / "parameters.csv")
    planners = summary.get("planners", {})
    labels = list(dict.fromkeys([*planners, *(metrics["planner"] if metrics is not None else [])]))
    colors = plots.planner_colors(labels)
    welfare_name = config.get("welfare", {}).get("name", summary.get("welfare", {}).get("name", ""))
    written, skipped = [], []
    if metrics is not None and metrics["welfare"].notna().any():
        plots.plot_welfare_over_time(metrics, run_dir / "welfare_over_time.png", colors, welfare_name,
                                     eta=config.get("economy", {}).get("eta"))
        written.append("welfare_over_time.png")
    else:
        skipped.append("welfare over time (no step finished)")
    schedules = {label: p for label, p in planners.items() if p.get("schedules")}
    if schedules:
        incomes = outcomes["income"].to_numpy(float) if outcomes is not None else None
        plots.plot_final_schedules(schedules, incomes, run_dir / "final_schedules.png", colors)
        written.append("final_schedules.png")
    if outcomes is not None:
        max_hours = config.get("economy", {}).get("max_hours")
        plots.plot_hours_distribution(outcomes, run_dir / "hours_distribution.png", colors, max_hours)
        gini = {label: (p.get("gini_income"), p.get("gini_consumption")) for label, p in planners.items()}
        plots.plot_lorenz_curves(outcomes, run_dir / "lorenz_curves.png", colors, gini)
        written += ["hours_distribution.png", "lorenz_curves.png"]
    else:
        skipped.append("hours and Lorenz curves (neither final_outcomes.parquet nor traces.parquet holds rows)")
    curves = {label: [c for c in p.get("training_curves") or [] if c] for label, p in planners.items()}
    curves = {label: c for label, c in curves.items() if c}
    if curves:
        plots.plot_training_curves(curves, run_dir / "training_curve.png", colors)
        written.append("training_curve.png")
    if parameters is not None and plots.changing_parameters(parameters):
        units = {(p.get("mechanism"), name): info.get("unit") for p in summary.get("planners", {}).values()
                 for name, info in p.get("parameters", {}).items()}
        plots.plot_parameters_over_time(parameters, run_dir / "parameters_over_time.png", colors, units=units)
        written.append("parameters_over_time.png")
    elif parameters is not None:
        skipped.append("parameters by year (every planner held its parameters from the first year: see the final schedules)")
    return written, skipped


def _rounded(x, decimals: int, unit: str = "") -> str:
    return DASH if _missing(x) else f"{x:,.{decimals}f}{unit}"


def _count(x) -> str:
    return DASH if _missing(x) else f"{x:,.0f}"


def _population_response(summary: dict) -> list[str]:
    """Does the population respond to taxes at all? Its headline elasticity against the evidence."""
    found = summary.get("behaviour")
    if not found:
        return []
    where = f" Full probe: [`{found['source']}`]({found['source']}/behaviour.md)." if found.get("measured") else ""
    return ["## Does the population respond?", "", found["line"] + "." + where, ""]


def _servers(by_server: dict) -> list[str]:
    """Calls and failover per server, when the run spread its calls or a server failed."""
    if len(by_server) < 2 and not any(row.get("failures") or row.get("retired") for row in by_server.values()):
        return []
    lines = ["| Server | Calls | Failures | Moved to another server | Out of rotation | Retired (refused the key or model) |",
             "|---|---:|---:|---:|---:|---|"]
    for url, row in by_server.items():
        lines.append(f"| {url} | {_count(row.get('calls', 0))} | {_count(row.get('failures', 0))} | "
                     f"{_count(row.get('failovers', 0))} | {_count(row.get('rested', 0))} | {'yes' if row.get('retired') else 'no'} |")
    return [*lines, ""]


def _language_model(summary: dict) -> list[str]:
    """Model, endpoints, call accounting, fallbacks by reason and the archetype check, when the run used one."""
    llm = summary.get("llm")
    if not llm:
        return []
    usage = llm.get("usage") or {}
    cost = usage.get("cost_usd")
    lines = [
        "## Language model",
        "",
        f"Model `{llm.get('model')}` via {', '.join(llm.get('endpoints', []))} ({llm.get('backend')} backend).",
        f"Requests {_count(usage.get('requests', 0))} ({_count(usage.get('cache_hits', 0))} from the cache, "
        f"{_count(usage.get('http_calls', 0))} HTTP calls, {_count(usage.get('retries', 0))} retries, "
        f"{_count(usage.get('failures', 0))} unusable); tokens {_count(usage.get('prompt_tokens', 0))} prompt + "
        f"{_count(usage.get('completion_tokens', 0))} completion" + (f"; cost ${cost:,.4f}." if not _missing(cost) else ".")
        + " Counts cover every seed, every resumed part of the run and every year a stop cut short.",
        "",
        *_servers(usage.get("by_server") or {}),
    ]
    cut = llm.get("unfinished_fallback_reasons") or {}
    if cut:
        lines += ["Replies that fell back in years a stop cut short (those years are replayed on resume and are not in the "
                  "tables below): " + "; ".join(f"{k} {v:,}" for k, v in sorted(cut.items(), key=lambda kv: -kv[1])) + ".", ""]
    rows = []
    for label, p in summary.get("planners", {}).items():
        d = p.get("worker_diagnostics") or {}
        if not p.get("decisions") and "vote_calls" not in d:
            continue
        decisions = d.get("llm_decisions", 0.0)
        reasons = p.get("fallback_reasons") or {}
        rows.append({
            "Planner": label,
            "Decisions and proposals": _count(p.get("decisions")),
            "Fallbacks": _count(p.get("fallbacks")),
            "Fallback reasons": "; ".join(f"{k} {v:,}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])) or DASH,
            "Scored (hour distribution)": format_share(d.get("llm_scored", 0) / decisions) if decisions else DASH,
            "Prompt tokens / decision": _count(d.get("llm_prompt_tokens", 0) / decisions) if decisions else DASH,
            "Ballots (fallback / repaired)": (
                f"{d['vote_calls']:,.0f} ({d.get('vote_fallbacks', 0):,.0f} / {d.get('vote_repaired', 0):,.0f})" if d.get("vote_calls") else DASH
            ),
            "Archetype vs per-agent hours gap": _rounded(d.get("archetype_check_mean_abs_hours_gap"), 1, " h"),
            "Archetype JS divergence": _rounded(d.get("archetype_check_mean_js_divergence"), 3, " bits"),
        })
    if rows:
        lines += [markdown_table(pd.DataFrame(rows)), ""]
        lines += [
            "*A fallback is a reply that stayed unusable after retries (its reason: timeout, connection, HTTP "
            "status, invalid JSON, schema violation); the worker then kept its previous hours and the planner its "
            "previous parameters. Each decision's reason is in the `fallback_reason` column of the traces. The "
            "archetype columns compare, in the first period, agents asked one by one with their archetype's answer "
            "(mean absolute gap in hours; Jensen-Shannon divergence of the hour distributions, in bits).*",
            "",
        ]
    return lines


def _elections(run_dir: Path) -> list[str]:
    """One row per election and seed: the platforms, their tallies and the winner."""
    rows = []
    for path in [run_dir / "elections.json", *sorted(run_dir.glob("seed_*/elections.json"))]:
        if not path.is_file():
            continue
        seed = path.parent.name.removeprefix("seed_") if path.parent != run_dir else DASH
        for label, elections in json.loads(path.read_text()).items():
            for e in elections:
                names = [p["name"] for p in e["platforms"]]
                first = e["tallies"][0] if e["tallies"] else []
                rows.append({
                    "Seed": seed,
                    "Planner": label,
                    "Year": e["year"],
                    "Rule": e["rule"],
                    "Votes (first round)": "; ".join(f"{n}: {v:,.0f}" for n, v in zip(names, first)),
                    "Winner": e.get("winner_name", names[e["winner"]]),
                })
    return ["## Elections", "", markdown_table(pd.DataFrame(rows)), ""] if rows else []


def _reasoning_channels(outcomes: pd.DataFrame | None) -> list[str]:
    """Mean stated (LLM) or predicted (surrogate) fairness, trust and stress per planner, last step."""
    channels = [c for c in CHANNELS if outcomes is not None and c in outcomes]
    if not channels:
        return []
    means = outcomes.groupby("planner", sort=False)[channels].mean(numeric_only=False)
    table = pd.DataFrame({"Planner": means.index, **{c.capitalize(): [DASH if _missing(v) else f"{v:.2f}" for v in means[c]] for c in channels}})
    return [
        "## Reasoning channels", "",
        "Mean over workers in each planner's last step (all seeds), on the 1 (low) to 5 (high) scale: how fair the "
        "taxes seem, trust in the government, financial stress; “—” where no reply stated them.", "",
        markdown_table(table), "",
    ]


def fallback_warning(summary: dict) -> str | None:
    """One line naming every planner whose language-model decisions fell back, or None."""
    hit = {label: p for label, p in summary.get("planners", {}).items() if p.get("fallbacks")}
    if not hit:
        return None
    reasons = summary.get("fallback_reasons") or {}
    top = ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
    parts = ", ".join(f"{label} {100 * p['fallbacks'] / p['decisions']:.0f}%" for label, p in hit.items())
    return f"language-model decisions fell back ({parts}; reasons: {top}); see the report's caveats"


def console_table(summary: dict) -> str:
    """The comparison table for a terminal."""
    table = comparison_table(summary)
    if table.empty:
        return "no planner finished a tax year"
    columns = ["Rank", "Tied", "Planner", "Welfare", "Gain captured", "Fallbacks", "Mean hours"]
    table = table[columns]
    widths = {c: max(len(c), *(len(v) for v in table[c])) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) if c == "Planner" else c.rjust(widths[c]) for c in columns)]
    for _, row in table.iterrows():
        lines.append("  ".join(row[c].ljust(widths[c]) if c == "Planner" else row[c].rjust(widths[c]) for c in columns))
    seeds = summary.get("seeds", [])
    lines.append(f"{plural(len(seeds), 'seed')}" + ("; [low, high] is the 95% interval; planners sharing a letter are not told apart"
                                                    if len(seeds) >= MIN_SEEDS else f"; no interval or tested rank below {MIN_SEEDS} seeds"))
    return answer(summary).strip("*") + "\n" + "\n".join(lines)


def write_report(run_dir: Path) -> Path:
    """Write the figures and report.md into a finished run directory; return the report's path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NoRunError(f"run directory {run_dir} does not exist")
    require_files(run_dir, "summary.json", "config.yaml")
    summary = read_summary(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    outcomes, outcome_source = final_outcomes(run_dir)
    figures, skipped = _make_figures(run_dir, config, summary, outcomes)

    lines = [f"# Run report: {summary.get('name', config.get('name', run_dir.name))}", "", answer(summary), ""]
    if summary["timings"].get("created"):
        lines += [f"Created {summary['timings']['created']}.", ""]
    if summary.get("stopped"):
        lines += [
            f"> **The run stopped early.** {summary['stopped']}. What finished before is reported below; "
            f"once the server is fixed, `--resume` with the same `--out` continues from the last finished tax year.", "",
        ]
    warning = fallback_warning(summary)
    if warning:
        lines += [f"> **Warning:** {warning}.", ""]
    if _embedded_model(summary, config):
        lines += [_embedded_note(config), ""]
    lines += [_seeds_line(summary), "", _overview(config, summary), ""]
    lines += ["## Planners compared", "", markdown_table(comparison_table(summary)), "", _ranking_note(summary), ""]
    lines += _instruments(summary)
    lines += _population_response(summary)
    lines += ["## Final schedules", "", "Each planner's final parameters with what they mean; bracket rates name "
              "their own cutoffs, so planners with different mechanisms are never read as one column.", "",
              markdown_table(parameter_table(summary)), ""]
    lines += ["## Calibration", "", _calibration(summary, config), ""]
    lines += _language_model(summary)
    lines += _reasoning_channels(outcomes)
    lines += _elections(run_dir)

    lines += ["## Figures", ""]
    for name in figures:
        title, caption = FIGURES[name]
        lines += [f"### {title}", "", f"![{title}]({name})", "", f"*{caption}*", ""]
    if skipped:
        lines += [f"*Not drawn: {'; '.join(skipped)}.*", ""]
    elif outcome_source and outcome_source != "final_outcomes.parquet":
        lines += [f"*Hours and Lorenz figures use {outcome_source}.*", ""]

    lines += ["## Caveats", ""]
    lines += [f"- {c}" for c in [*summary.get("caveats", []), *STANDARD_CAVEATS]] + [""]

    lines += ["## Files", ""]
    for name, description in RUN_FILES.items():
        if (run_dir / name).is_file():
            lines.append(f"- [`{name}`]({name}): {description}")
    for seed_dir in sorted(run_dir.glob("seed_*")):
        if seed_dir.is_dir():
            lines.append(f"- [`{seed_dir.name}/`]({seed_dir.name}/): the run of seed {seed_dir.name.removeprefix('seed_')} "
                         "with its own traces and checkpoints (`llm-economist report` on it draws that seed alone)")
    lines += [f"- [`{name}`]({name}): figure, {FIGURES[name][0].lower()}" for name in figures]
    lines += [f"- `{REPORT_NAME}`: this report", ""]

    path = run_dir / REPORT_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
