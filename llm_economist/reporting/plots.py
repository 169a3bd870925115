"""PNG figures of a finished run: welfare, tax schedules, hours, Lorenz curves, parameters.

Figures are built on `matplotlib.figure.Figure` directly rather than through pyplot, so
nothing here selects a GUI backend or keeps global figure state: PNGs render headless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, PercentFormatter

from ..economy import TaxSchedule, lorenz_curve
from ..economy.tax import NEVER_REACHED_INCOME
from .summary import interval

DPI = 130
MIN_INCOME_AXIS = 400_000.0  # $/yr: the schedule plot always shows at least the common brackets
DISCRETE_HOUR_VALUES = 12  # at most this many distinct hour values: draw bars, not a histogram
LORENZ_POINTS = 501  # a Lorenz curve of a million agents is drawn from this many points


def planner_colors(labels: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per planner, so a planner looks the same in every figure."""
    cmap = colormaps["tab10"]
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def dollars(x: float, _pos=None) -> str:
    """Compact $ tick labels: $950, $12k, $1.5M."""
    if abs(x) >= 1e6:
        return f"${x / 1e6:,.3g}M"
    if abs(x) >= 1e3:
        return f"${x / 1e3:,.3g}k"
    return f"${x:,.0f}"


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def mean_band(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% interval of one point's values over seeds (the mean twice with one seed)."""
    found = interval(values)
    if found is None:
        return (float("nan"),) * 3
    if found.low is None:
        return found.mean, found.mean, found.mean
    return found.mean, found.low, found.high


def plot_welfare_over_time(metrics: pd.DataFrame, path: Path, colors: Mapping[str, tuple], welfare_name: str) -> Path:
    """Welfare per step, one line per planner (mean over seeds, 95% band); dotted lines where a new tax year starts."""
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    for label, rows in metrics.groupby("planner", sort=False):
        points = rows.groupby("step")["welfare"].apply(lambda w: mean_band(w.tolist()))
        steps = points.index.to_numpy()
        mean, low, high = (np.array([p[i] for p in points]) for i in range(3))
        ax.plot(steps, mean, color=colors.get(label), label=label, lw=1.6, marker="o" if len(steps) < 30 else None, ms=3)
        ax.fill_between(steps, low, high, color=colors.get(label), alpha=0.15, lw=0)
    year_starts = sorted(metrics.loc[(metrics["step_in_year"] == 0) & (metrics["step"] > 0), "step"].unique())
    for i, step in enumerate(year_starts):
        ax.axvline(step - 0.5, color="grey", ls=":", lw=0.8, label="start of a tax year" if i == 0 else None)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"social welfare ({welfare_name})")
    ax.set_title("Welfare over time")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=9)
    return _save(fig, path)


def plot_final_schedules(planners: Mapping[str, Mapping], incomes: np.ndarray | None, path: Path, colors: Mapping[str, tuple]) -> Path:
    """Marginal rate and average net tax rate (tax minus the equal transfer, over income) against income,
    each the mean over seeds of that seed's final schedule, with a 95% band."""
    schedules = [s for p in planners.values() for s in p["schedules"]]
    # Show the top bracket of every schedule too, leaving out cutoffs that no income reaches.
    top_cutoff = max((c for s in schedules for c in np.ravel(s["cutoffs"]) if c < NEVER_REACHED_INCOME), default=0.0)
    p99 = float(np.percentile(incomes, 99)) if incomes is not None and len(incomes) else 0.0
    top = max(MIN_INCOME_AXIS, p99, 1.5 * top_cutoff)
    z = np.geomspace(5_000.0, top, 400)
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax_m, ax_a = fig.subplots(1, 2)
    lowest = 0.0
    for label, p in planners.items():
        transfers = p.get("per_seed", {}).get("transfer") or [s.get("lump_sum", 0.0) for s in p["schedules"]]
        marginal, average = [], []
        for sched, transfer in zip(p["schedules"], transfers):
            schedule = TaxSchedule.from_lists(np.ravel(sched["cutoffs"]), np.ravel(sched["rates"]))
            zt = torch.from_numpy(z)
            marginal.append(schedule.marginal_rate(zt).numpy())
            average.append((schedule.tax(zt).numpy() - (transfer or 0.0)) / z)
        for ax, curves in ((ax_m, marginal), (ax_a, average)):
            columns = np.array(curves)
            band = [mean_band(columns[:, i].tolist()) for i in range(len(z))]
            mean, low, high = (np.array([b[i] for b in band]) for i in range(3))
            draw = ax.step if ax is ax_m else ax.plot
            kwargs = {"where": "post"} if ax is ax_m else {}
            draw(z, mean, color=colors.get(label), lw=1.8, label=label, **kwargs)
            ax.fill_between(z, low, high, color=colors.get(label), alpha=0.15, lw=0, step="post" if ax is ax_m else None)
        lowest = min(lowest, float(np.nanmin(np.array(average))))
    for ax in (ax_m, ax_a):
        ax.set_xscale("log")
        ax.set_xlim(z[0], top)
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(dollars))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("annual pre-tax income ($/yr, log scale)")
        ax.grid(alpha=0.3, which="both")
    ax_m.set_ylim(bottom=0.0)
    ax_a.axhline(0.0, color="black", lw=0.8)
    ax_a.set_ylim(bottom=max(lowest * 1.05, -1.0))
    ax_m.set_ylabel("marginal tax rate")
    ax_m.set_title("Final marginal tax rates")
    ax_a.set_ylabel("average net tax rate (tax − transfer) / income")
    ax_a.set_title("Final average net tax rate")
    fig.legend(*ax_m.get_legend_handles_labels(), loc="outside right upper", fontsize=9)
    return _save(fig, path)


def plot_hours_distribution(outcomes: pd.DataFrame, path: Path, colors: Mapping[str, tuple], max_hours: float | None) -> Path:
    """Share of workers by weekly hours in the final step: side-by-side bars when hours take a
    few values (language-model workers choose 10-hour bins), step histograms otherwise."""
    top = max_hours if max_hours else float(outcomes["hours"].max())
    values = np.unique(outcomes["hours"].to_numpy(float))
    groups = list(outcomes.groupby("planner", sort=False))
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    if len(values) <= DISCRETE_HOUR_VALUES:
        spacing = np.min(np.diff(values)) if len(values) > 1 else 1.0
        width = 0.8 * spacing / len(groups)
        for k, (label, rows) in enumerate(groups):
            hours = rows["hours"].to_numpy(float)
            shares = [(hours == v).mean() for v in values]
            ax.bar(values + (k - (len(groups) - 1) / 2) * width, shares, width=width, color=colors.get(label),
                   label=f"{label} (mean {hours.mean():.1f} h)")
    else:
        bins = np.linspace(0.0, max(top, 1.0), 31)
        for label, rows in groups:
            hours = rows["hours"].to_numpy(float)
            ax.hist(hours, bins=bins, weights=np.full(len(hours), 1.0 / len(hours)), histtype="step", lw=1.8,
                    color=colors.get(label), label=f"{label} (mean {hours.mean():.1f} h)")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("hours worked per week")
    ax.set_ylabel("share of workers")
    ax.set_title("Hours in the final step")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=9)
    return _save(fig, path)


def _gini_label(estimate) -> str:
    if not isinstance(estimate, Mapping) or estimate.get("mean") is None:
        return ""
    ci = estimate.get("ci95")
    return f" (Gini {estimate['mean']:.3f}" + (f" ± {(ci[1] - ci[0]) / 2:.3f})" if ci else ")")


def plot_lorenz_curves(outcomes: pd.DataFrame, path: Path, colors: Mapping[str, tuple], gini: Mapping[str, tuple] | None = None) -> Path:
    """Lorenz curves of final pre-tax income and of consumption, all seeds pooled; Gini (mean over seeds) in the legend."""
    fig = Figure(figsize=(11, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    for k, (ax, column, title) in enumerate(zip(axes, ("income", "consumption"), ("Pre-tax income", "Consumption"))):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect equality")
        for label, rows in outcomes.groupby("planner", sort=False):
            values = torch.tensor(rows[column].to_numpy(float))
            share, cumulative = (t.numpy() for t in lorenz_curve(values))
            keep = np.unique(np.linspace(0, len(share) - 1, LORENZ_POINTS).round().astype(int))
            ax.plot(share[keep], cumulative[keep], color=colors.get(label), lw=1.8,
                    label=label + _gini_label((gini or {}).get(label, (None, None))[k]))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("share of workers (poorest first)")
        ax.set_ylabel(f"share of total {column}")
        ax.set_title(f"Lorenz curve: {title.lower()}, final step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_training_curves(curves: Mapping[str, list], path: Path, colors: Mapping[str, tuple]) -> Path:
    """Mean reward per rollout against environment steps, one line per planner and seed."""
    fig = Figure(figsize=(9, 4.6), layout="constrained")
    ax = fig.subplots()
    for label, seeds in curves.items():
        for k, curve in enumerate(seeds):
            steps, reward = zip(*curve)
            ax.plot(steps, reward, color=colors.get(label), lw=1.4, alpha=0.8, label=label if k == 0 else None)
    ax.set_xlabel("environment steps (tax years played in training)")
    ax.set_ylabel("mean reward per rollout (welfare / scale)")
    ax.set_title("Training against the population model")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=9)
    return _save(fig, path)


def changing_parameters(parameters: pd.DataFrame) -> list[tuple[str, str]]:
    """(mechanism, parameter) pairs that some planner changed between tax years in some seed."""
    keys = ["mechanism", "parameter"]
    spread = parameters.groupby([*keys, "planner", "seed"])["value"].agg(lambda v: v.max() - v.min())
    moved = spread[spread > 0].reset_index()
    return list(dict.fromkeys(zip(moved["mechanism"], moved["parameter"])))


def plot_parameters_over_time(parameters: pd.DataFrame, path: Path, colors: Mapping[str, tuple]) -> Path:
    """One panel per parameter of each mechanism, one line per planner by tax year (mean over seeds, 95% band)."""
    panels = changing_parameters(parameters)
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(4 * ncols, 2.8 * nrows + 1.0), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (mechanism, name) in zip(axes, panels):
        chosen = parameters[(parameters["mechanism"] == mechanism) & (parameters["parameter"] == name)]
        for label, rows in chosen.groupby("planner", sort=False):
            points = rows.groupby("year")["value"].apply(lambda v: mean_band(v.tolist()))
            years = points.index.to_numpy()
            mean, low, high = (np.array([p[i] for p in points]) for i in range(3))
            ax.plot(years, mean, color=colors.get(label), marker="o", ms=3, lw=1.5, label=label)
            ax.fill_between(years, low, high, color=colors.get(label), alpha=0.15, lw=0)
        ax.set_title(f"{mechanism}: {name}" if mechanism else name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("tax year", fontsize=9)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = {}
    for ax in axes[: len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 5), fontsize=9)
    fig.suptitle("Mechanism parameters chosen each tax year")
    return _save(fig, path)


def plot_hours_against_rate(result: Mapping, path: Path) -> Path:
    """Mean hours (95% band) against the own-bracket marginal rate, by income group, with the hours a
    population with the evidence's elasticities (0.12-0.40) would work, anchored at the lowest rate."""
    from ..behaviour import EVIDENCE, INCOME_GROUPS

    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    rates = np.asarray(result["rate_grid"], dtype=float)
    low_e, high_e = EVIDENCE["eti"]["band"]
    for k, group in enumerate(["all", *INCOME_GROUPS]):
        means = result.get(f"rate_grid_hours_{group}")
        if not means or means[0] is None:
            continue
        color = colormaps["tab10"](k)
        ax.plot(100 * rates, means, marker="o", color=color, label=group.replace("_", " "))
        bands = [b or [m, m] for b, m in zip(result[f"rate_grid_hours_{group}_ci95"], means)]
        ax.fill_between(100 * rates, [b[0] for b in bands], [b[1] for b in bands], color=color, alpha=0.2)
        keep = (1 - rates) / (1 - rates[0])
        ax.fill_between(100 * rates, means[0] * keep**low_e, means[0] * keep**high_e, color=color, alpha=0.08, hatch="//")
    ax.set_xlabel("marginal rate at the agent's own bracket (%)")
    ax.set_ylabel("mean hours per week")
    ax.set_title(f"{result['workers']} workers: hours against the marginal rate (hatched: evidence, elasticity {low_e}-{high_e})",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_individual_responses(result: Mapping, path: Path) -> Path:
    """Histogram of individual hours elasticities (agents not at a corner), the evidence band shaded."""
    from ..behaviour import EVIDENCE

    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    values = np.asarray(result["individual_elasticities"], dtype=float)
    low, high = EVIDENCE["eti"]["band"]
    ax.axvspan(low, high, color="grey", alpha=0.2, label=f"evidence {low}-{high}")
    if len(values):
        ax.hist(values, bins=min(40, max(5, len(values) // 5)), color=colormaps["tab10"](0), alpha=0.8, label="agents")
    else:
        ax.text(0.5, 0.5, "no agent off a corner", transform=ax.transAxes, ha="center")
    ax.set_xlabel("individual hours elasticity w.r.t. the net-of-tax rate")
    ax.set_ylabel("agents")
    ax.set_title(f"{result['workers']} workers: spread of individual responses", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def sweep_plot(table: pd.DataFrame, key: str, planners: Sequence[str], path: Path) -> Path:
    """Gain captured against one swept setting, one line per planner (mean over seeds, 95% band);
    categorical settings are spaced evenly in the order swept."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    values = list(dict.fromkeys(table[key].tolist()))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    x = np.asarray(values, dtype=float) if numeric else np.arange(len(values))
    colors = planner_colors(planners)
    for planner in planners:
        rows = table[table["planner"] == planner]
        points = [mean_band(rows.loc[rows[key] == v, "gain_captured"].dropna().tolist()) for v in values]
        mean, low, high = (np.array([p[i] for p in points]) for i in range(3))
        ax.plot(x, mean, color=colors[planner], label=planner, marker="o", lw=1.6)
        ax.fill_between(x, low, high, color=colors[planner], alpha=0.15, lw=0)
    if not numeric:
        ax.set_xticks(x, [str(v) for v in values])
    ax.set_xlabel(key)
    ax.set_ylabel("gain captured (%)")
    ax.set_title(f"Gain captured against {key}")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=9)
    return _save(fig, path)
