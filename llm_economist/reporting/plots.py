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

from ..economy import TaxSchedule, gini, lorenz_curve
from ..economy.tax import NEVER_REACHED_INCOME

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


def plot_welfare_over_time(metrics: pd.DataFrame, path: Path, colors: Mapping[str, tuple], welfare_name: str) -> Path:
    """Welfare per step, one line per planner; dotted lines where a new tax year starts."""
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    for label, rows in metrics.groupby("planner", sort=False):
        rows = rows.sort_values("step")
        ax.plot(rows["step"], rows["welfare"], color=colors.get(label), label=label, lw=1.6,
                marker="o" if len(rows) < 30 else None, ms=3)
    year_starts = sorted(metrics.loc[(metrics["step_in_year"] == 0) & (metrics["step"] > 0), "step"].unique())
    for i, step in enumerate(year_starts):
        ax.axvline(step - 0.5, color="grey", ls=":", lw=0.8, label="start of a tax year" if i == 0 else None)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"social welfare ({welfare_name})")
    ax.set_title("Welfare over time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return _save(fig, path)


def plot_final_schedules(
    schedules: Mapping[str, Mapping], transfers: Mapping[str, float], incomes: np.ndarray | None,
    path: Path, colors: Mapping[str, tuple],
) -> Path:
    """Marginal rate and average net tax rate (tax minus the equal transfer, over income) by income."""
    # Show the top bracket of every schedule too, leaving out cutoffs that no income reaches.
    top_cutoff = max((c for s in schedules.values() for c in s["cutoffs"] if c < NEVER_REACHED_INCOME), default=0.0)
    p99 = float(np.percentile(incomes, 99)) if incomes is not None and len(incomes) else 0.0
    top = max(MIN_INCOME_AXIS, p99, 1.5 * top_cutoff)
    z = np.geomspace(5_000.0, top, 400)
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax_m, ax_a = fig.subplots(1, 2)
    lowest = 0.0
    for label, sched in schedules.items():
        cutoffs, rates = np.asarray(sched["cutoffs"], float), np.asarray(sched["rates"], float)
        inside = cutoffs < top
        xs = np.append(np.maximum(cutoffs[inside], z[0]), top)
        ax_m.step(xs, np.append(rates[inside], rates[inside][-1]), where="post", color=colors.get(label), lw=1.8, label=label)
        tax = TaxSchedule.from_lists(cutoffs, rates).tax(torch.from_numpy(z)).numpy()
        average = (tax - transfers.get(label, 0.0)) / z
        lowest = min(lowest, float(average.min()))
        ax_a.plot(z, average, color=colors.get(label), lw=1.8, label=label)
    for ax in (ax_m, ax_a):
        ax.set_xscale("log")
        ax.set_xlim(z[0], top)
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(dollars))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("annual pre-tax income ($/yr, log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9)
    ax_m.set_ylim(bottom=0.0)
    ax_a.axhline(0.0, color="black", lw=0.8)
    ax_a.set_ylim(bottom=max(lowest * 1.05, -1.0))
    ax_m.set_ylabel("marginal tax rate")
    ax_m.set_title("Final marginal tax rates")
    ax_a.set_ylabel("average net tax rate (tax − transfer) / income")
    ax_a.set_title("Final average net tax rate")
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
    ax.legend(fontsize=9)
    return _save(fig, path)


def plot_lorenz_curves(outcomes: pd.DataFrame, path: Path, colors: Mapping[str, tuple]) -> Path:
    """Lorenz curves of final pre-tax income and of consumption, Gini in the legend."""
    fig = Figure(figsize=(11, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, column, title in zip(axes, ("income", "consumption"), ("Pre-tax income", "Consumption")):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect equality")
        for label, rows in outcomes.groupby("planner", sort=False):
            values = torch.tensor(rows[column].to_numpy(float))
            share, cumulative = (t.numpy() for t in lorenz_curve(values))
            keep = np.unique(np.linspace(0, len(share) - 1, LORENZ_POINTS).round().astype(int))
            ax.plot(share[keep], cumulative[keep], color=colors.get(label), lw=1.8,
                    label=f"{label} (Gini {gini(values).item():.3f})")
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


def plot_parameters_over_time(parameters: pd.DataFrame, path: Path, colors: Mapping[str, tuple]) -> Path:
    """One small panel per mechanism parameter, one line per planner, by tax year."""
    names = list(dict.fromkeys(parameters["parameter"]))
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig = Figure(figsize=(4 * ncols, 2.8 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        for label, rows in parameters[parameters["parameter"] == name].groupby("planner", sort=False):
            rows = rows.sort_values("year")
            ax.plot(rows["year"], rows["value"], color=colors.get(label), marker="o", ms=3, lw=1.5, label=label)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.supxlabel("tax year")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=9)
    fig.suptitle("Mechanism parameters chosen each tax year")
    return _save(fig, path)
