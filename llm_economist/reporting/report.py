"""Turn a finished run directory into PNG figures and a Markdown report a person reads first."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml

from ..workers.llm import CHANNELS
from . import plots

REPORT_NAME = "report.md"

# What each file of a run directory holds, in the order the report lists them.
RUN_FILES = {
    "config.yaml": "the resolved configuration of the run",
    "summary.json": "headline numbers per planner, calibration and caveats",
    "metrics.csv": "aggregates per planner and step (welfare, hours, revenue, inequality)",
    "parameters.csv": "mechanism parameters per planner and tax year (tidy)",
    "traces.parquet": "one row per planner, agent and step",
    "final_outcomes.parquet": "per-agent outcomes of each planner's last step",
    "planner_log.csv": "the language-model planner's reply each year (reason, fallback, tokens)",
    "elections.json": "each election's platforms, tallies and winner",
    "llm_cache.sqlite": "cached language-model replies: a rerun of the same config makes no calls",
}

FIGURES = {
    "welfare_over_time.png": ("Welfare over time", "Social welfare each step; dotted lines mark the start of each tax year."),
    "final_schedules.png": (
        "Final tax schedules",
        "Final marginal rates (left) and average tax net of the equal transfer (right) by annual income; "
        "negative means a worker receives more than they pay (axis cut at −100%).",
    ),
    "hours_distribution.png": ("Hours worked", "Share of workers by weekly hours in each planner's final step."),
    "lorenz_curves.png": (
        "Inequality",
        "Lorenz curves of final pre-tax income and consumption; the dashed diagonal is perfect equality.",
    ),
    "parameters_over_time.png": ("Parameters by year", "The mechanism parameters each planner chose, tax year by tax year."),
}

STANDARD_CAVEATS = [
    "“% of best” is each planner's welfare relative to the best planner found in this run "
    "(including the exhaustive grid search where one was run), not relative to a proven optimum.",
    "“Gain captured” is (W - W_0) / (W_best - W_0), where W_0 is the welfare of laissez-faire (no tax, "
    "no transfer) under the population model: the share of the achievable improvement a planner realised; "
    "“—” where the best planner does not beat laissez-faire.",
    "Planners marked “yes” under “Population model” query the population's response to candidate "
    "policies before choosing; the others learn only from the tax years they actually lived through. "
    "Compare them with that difference in mind.",
]


# ---- number formatting for people -------------------------------------------------------


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def format_money(x) -> str:
    """$ with thousands separators: 12345.6 -> '$12,346'; negative -> '-$1,200'."""
    if _missing(x):
        return "—"
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def format_percent(x) -> str:
    """A value already in percent, one decimal: 98.71 -> '98.7%'."""
    return "—" if _missing(x) else f"{x:.1f}%"


def format_share(x) -> str:
    """A fraction as percent, one decimal: 0.052 -> '5.2%'."""
    return "—" if _missing(x) else f"{100 * x:.1f}%"


def format_number(x) -> str:
    """Welfare and parameters: whole numbers with separators when large, else 4 decimals."""
    if _missing(x):
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x != 0 and abs(x) < 0.01:
        return f"{x:.4g}"
    return f"{x:.4f}"


def format_seconds(s) -> str:
    if _missing(s):
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    minutes, seconds = divmod(round(s), 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min {seconds} s"


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of already formatted strings; the first column left-aligned."""
    cells = df.astype(str).map(lambda v: v.replace("|", r"\|"))
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join([":---"] + ["---:"] * (len(df.columns) - 1)) + "|"
    rows = ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


# ---- reading the run --------------------------------------------------------------------


def _required(run_dir: Path, name: str) -> Path:
    path = run_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} not found in run directory {run_dir} (expected {path}); is the run finished?")
    return path


def final_outcomes(run_dir: Path) -> tuple[pd.DataFrame | None, str]:
    """Per-agent rows of each planner's last step, and a note on where they came from."""
    if (run_dir / "final_outcomes.parquet").is_file():
        return pd.read_parquet(run_dir / "final_outcomes.parquet"), "final_outcomes.parquet"
    if (run_dir / "traces.parquet").is_file():
        traces = pd.read_parquet(run_dir / "traces.parquet")
        last = traces.groupby("planner")["step"].transform("max")
        return traces[traces["step"] == last], "the last step of traces.parquet"
    return None, ""


# ---- the report -------------------------------------------------------------------------


def _overview(config: dict, summary: dict) -> str:
    population, economy = config.get("population", {}), config.get("economy", {})
    n_agents = summary.get("population", {}).get("n_agents", population.get("n_agents"))
    median_wage = summary.get("population", {}).get("median_wage")
    planners = "; ".join(f"{p.get('label', p.get('kind'))} (`{p.get('kind')}`)" for p in config.get("planners", []))
    wage = f" (median wage ${median_wage:,.2f}/h)" if not _missing(median_wage) else ""
    size = f"{n_agents:,}" if isinstance(n_agents, int) else str(n_agents)
    return (
        f"This run simulated {size} workers from the `{population.get('income_model')}` income model{wage}, "
        f"whose hours were chosen by `{config.get('workers', {}).get('kind')}` workers. "
        f"Each planner set the `{config.get('mechanism', {}).get('name')}` mechanism to maximise "
        f"`{config.get('welfare', {}).get('name')}` welfare over {economy.get('years')} tax years of "
        f"{economy.get('steps_per_year')} steps each (eta = {economy.get('eta')}, elasticity = {economy.get('elasticity')}, "
        f"at most {economy.get('max_hours')} h/week; seed {config.get('seed')}). "
        f"Planners: {planners}."
    )


def comparison_table(summary: dict) -> pd.DataFrame:
    rows = []
    for label, p in summary["planners"].items():
        rows.append({
            "Planner": label,
            "Welfare": format_number(p.get("final_welfare")),
            "% of best": format_percent(p.get("welfare_pct_of_best")),
            "Gain captured": format_percent(p.get("gain_captured_pct")),
            "Revenue ($/yr)": format_money(p.get("revenue")),
            "Transfer ($/yr)": format_money(p.get("transfer")),
            "Gini (consumption)": "—" if _missing(p.get("gini_consumption")) else f"{p['gini_consumption']:.3f}",
            "Mean hours": "—" if _missing(p.get("mean_hours")) else f"{p['mean_hours']:.1f} h",
            "At 0 h": format_share(p.get("share_zero_hours")),
            "At cap": format_share(p.get("share_at_cap")),
            "Population model": "yes" if p.get("uses_population_model") else "no",
            "Evaluations": "—" if _missing(p.get("evaluations")) else f"{int(p['evaluations']):,}",
            "Wall time": format_seconds(p.get("wall_s")),
        })
    return pd.DataFrame(rows)


def parameter_table(summary: dict) -> pd.DataFrame:
    """Parameters as rows, planners as columns; '—' where a planner's mechanism lacks one."""
    values = pd.DataFrame({label: p.get("parameters", {}) for label, p in summary["planners"].items()})
    return values.map(format_number).rename_axis("Parameter").reset_index()


def _calibration(summary: dict, config: dict) -> str:
    cal = summary.get("calibration", {})
    if not cal:
        return "No calibration was recorded for this run."
    cap = config.get("economy", {}).get("max_hours")
    return (
        f"Labour disutility psi = {cal.get('psi', float('nan')):.4g}. Under the 2024 US federal schedule the median worker "
        f"works {cal.get('median_hours_us_2024', float('nan')):.1f} h/week; "
        f"{format_share(cal.get('share_zero_hours_us_2024'))} work 0 h and "
        f"{format_share(cal.get('share_at_cap_us_2024'))} sit at the cap" + (f" of {cap} h." if cap else ".")
    )


def _make_figures(run_dir: Path, config: dict, summary: dict, outcomes: pd.DataFrame | None) -> list[str]:
    """Draw every figure the data allow; return the file names written."""
    metrics = pd.read_csv(_required(run_dir, "metrics.csv"))
    parameters = pd.read_csv(_required(run_dir, "parameters.csv"))
    labels = list(dict.fromkeys([*summary["planners"], *metrics["planner"]]))
    colors = plots.planner_colors(labels)
    welfare_name = config.get("welfare", {}).get("name", summary.get("welfare", {}).get("name", ""))
    plots.plot_welfare_over_time(metrics, run_dir / "welfare_over_time.png", colors, welfare_name)
    written = ["welfare_over_time.png"]

    schedules = {k: p["schedule"] for k, p in summary["planners"].items() if p.get("schedule")}
    if schedules:
        transfers = {k: p.get("transfer") if not _missing(p.get("transfer")) else p["schedule"].get("lump_sum", 0.0)
                     for k, p in summary["planners"].items() if k in schedules}
        incomes = outcomes["income"].to_numpy(float) if outcomes is not None else None
        plots.plot_final_schedules(schedules, transfers, incomes, run_dir / "final_schedules.png", colors)
        written.append("final_schedules.png")
    if outcomes is not None and len(outcomes):
        max_hours = config.get("economy", {}).get("max_hours")
        plots.plot_hours_distribution(outcomes, run_dir / "hours_distribution.png", colors, max_hours)
        plots.plot_lorenz_curves(outcomes, run_dir / "lorenz_curves.png", colors)
        written += ["hours_distribution.png", "lorenz_curves.png"]
    if len(parameters):
        plots.plot_parameters_over_time(parameters, run_dir / "parameters_over_time.png", colors)
        written.append("parameters_over_time.png")
    return written


def _language_model(summary: dict) -> list[str]:
    """Model, endpoints, call accounting, fallbacks and the archetype check, when the run used one."""
    llm = summary.get("llm")
    if not llm:
        return []
    usage = llm.get("usage", {})
    lines = [
        "## Language model",
        "",
        f"Model `{llm.get('model')}` via {', '.join(llm.get('endpoints', []))} ({llm.get('backend')} backend).",
        f"Requests {usage.get('requests', 0):,} ({usage.get('cache_hits', 0):,} from the cache, "
        f"{usage.get('http_calls', 0):,} HTTP calls, {usage.get('retries', 0):,} retries, {usage.get('failures', 0):,} unusable); "
        f"tokens {usage.get('prompt_tokens', 0):,} prompt + {usage.get('completion_tokens', 0):,} completion"
        + (f"; cost ${usage['cost_usd']:,.4f}." if usage.get("cost_usd") is not None else "."),
        "",
    ]
    rows = []
    for label, p in summary.get("planners", {}).items():
        d = p.get("worker_diagnostics") or {}
        if "llm_decisions" not in d and "vote_calls" not in d:
            continue
        decisions = d.get("llm_decisions", 0.0)
        rows.append({
            "Planner": label,
            "Worker decisions": f"{decisions:,.0f}",
            "Fallbacks": f"{d.get('llm_fallbacks', 0):,.0f}",
            "Scored (hour distribution)": format_share(d.get("llm_scored", 0) / decisions) if decisions else "—",
            "Prompt tokens / decision": f"{d.get('llm_prompt_tokens', 0) / decisions:,.0f}" if decisions else "—",
            "Ballots (fallback / repaired)": (
                f"{d['vote_calls']:,.0f} ({d.get('vote_fallbacks', 0):,.0f} / {d.get('vote_repaired', 0):,.0f})" if d.get("vote_calls") else "—"
            ),
            "Archetype vs per-agent hours gap": format_number(d.get("archetype_check_mean_abs_hours_gap")) if "archetype_check_mean_abs_hours_gap" in d else "—",
            "Archetype JS divergence": format_number(d.get("archetype_check_mean_js_divergence")) if "archetype_check_mean_js_divergence" in d else "—",
        })
    if rows:
        lines += [markdown_table(pd.DataFrame(rows)), ""]
        lines += [
            "*A fallback is a reply that stayed unusable after retries; the worker then kept its previous hours. "
            "The archetype columns compare, in the first period, agents asked one by one with their archetype's answer "
            "(mean absolute gap in hours; Jensen-Shannon divergence of the hour distributions, in bits).*",
            "",
        ]
    return lines


def _elections(run_dir: Path) -> list[str]:
    """One row per election: the platforms, their tallies and the winner."""
    path = run_dir / "elections.json"
    if not path.is_file():
        return []
    rows = []
    for label, elections in json.loads(path.read_text()).items():
        for e in elections:
            names = [p["name"] for p in e["platforms"]]
            first = e["tallies"][0] if e["tallies"] else []
            rows.append({
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
    table = outcomes.groupby("planner", sort=False)[channels].mean().round(2).reset_index()
    table.columns = ["Planner", *[c.capitalize() for c in channels]]
    return [
        "## Reasoning channels", "",
        "Mean over workers in each planner's last step, on the 1 (low) to 5 (high) scale: how fair the "
        "taxes seem, trust in the government, financial stress.", "",
        markdown_table(table), "",
    ]


def write_report(run_dir: Path) -> Path:
    """Write the figures and report.md into a finished run directory; return the report's path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    summary = json.loads(_required(run_dir, "summary.json").read_text())
    config = yaml.safe_load(_required(run_dir, "config.yaml").read_text()) or {}
    outcomes, outcome_source = final_outcomes(run_dir)
    figures = _make_figures(run_dir, config, summary, outcomes)

    best = summary.get("best", {})
    lines = [f"# Run report: {summary.get('name', config.get('name', run_dir.name))}", ""]
    if summary.get("created"):
        lines += [f"Created {summary['created']}.", ""]
    lines += [_overview(config, summary), ""]
    lines += ["## Planners compared", "", markdown_table(comparison_table(summary)), ""]
    if best:
        lines += [f"Best welfare in this run: **{best.get('planner')}** ({format_number(best.get('welfare'))}).", ""]
    lines += ["## Final parameters", "", markdown_table(parameter_table(summary)), ""]
    lines += ["## Calibration", "", _calibration(summary, config), ""]
    lines += _language_model(summary)
    lines += _reasoning_channels(outcomes)
    lines += _elections(run_dir)

    lines += ["## Figures", ""]
    for name in figures:
        title, caption = FIGURES[name]
        lines += [f"### {title}", "", f"![{title}]({name})", "", f"*{caption}*", ""]
    if outcomes is None:
        lines += ["*Hours and Lorenz figures are skipped: neither traces.parquet nor final_outcomes.parquet was written.*", ""]
    elif outcome_source != "final_outcomes.parquet":
        lines += [f"*Hours and Lorenz figures use {outcome_source}.*", ""]

    lines += ["## Caveats", ""]
    lines += [f"- {c}" for c in [*summary.get("caveats", []), *STANDARD_CAVEATS]] + [""]

    lines += ["## Files", ""]
    for name, description in RUN_FILES.items():
        if (run_dir / name).is_file():
            lines.append(f"- [`{name}`]({name}): {description}")
        elif name == "traces.parquet":
            lines.append("- `traces.parquet`: not written (per-agent traces were turned off for this run)")
    lines += [f"- [`{name}`]({name}): figure, {FIGURES[name][0].lower()}" for name in figures]
    lines += [f"- `{REPORT_NAME}`: this report", ""]

    path = run_dir / REPORT_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
