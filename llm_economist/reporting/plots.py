"""PNG figures of a finished run: welfare, tax schedules, hours, Lorenz curves, parameters.

Figures are built on `matplotlib.figure.Figure` directly rather than through pyplot, so
nothing here selects a GUI backend or keeps global figure state: PNGs render headless. Each
function saves its PNG and returns the Figure, so its axes and artists can be inspected.

Every planner keeps one colour, hollow marker and line style in every figure, and a note under
a panel names the planners whose lines coincide there, so no planner hides behind another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator, PercentFormatter

from ..economy import TaxSchedule, lorenz_curve
from ..economy.tax import NEVER_REACHED_INCOME
from ..economy.welfare import welfare_unit
from .summary import MIN_SEEDS, bracketed, interval

DPI = 130
MIN_INCOME_AXIS = 400_000.0  # $/yr: the schedule plot always shows at least the common brackets
LINEAR_INCOME_BELOW = 10_000.0  # $/yr: the income axis is linear from $0 to here (credit phase-ins), logarithmic above
DISCRETE_HOUR_VALUES = 12  # at most this many distinct hour values: draw bars, not a histogram
LORENZ_POINTS = 501  # a Lorenz curve of a million agents is drawn from this many points
COINCIDE = 0.002  # lines closer than this share of the span of a panel's lines are drawn on top of each other
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")


def planner_colors(labels: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per planner, so a planner looks the same in every figure."""
    cmap = colormaps["tab10"]
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def planner_style(label: str, colors: Mapping[str, tuple], points: int | None = None) -> dict:
    """Line keywords of one planner: its colour, its own hollow marker and line style, and a width
    and marker size that shrink for planners drawn later, so a line drawn over another leaves it
    visible. A line of `points` points carries about ten markers, at points that differ by planner."""
    k = list(colors).index(label)
    every = max(1, (points or 0) // 10)
    return {"color": colors[label], "marker": MARKERS[k % len(MARKERS)], "linestyle": LINESTYLES[k % len(LINESTYLES)],
            "lw": 2.4 - 0.3 * (k % 4), "mfc": "none", "mew": 1.4, "ms": 8.0 - 1.2 * (k % 4),
            "markevery": (k * max(1, every // 4) % every, every)}


def dollars(x: float, _pos=None) -> str:
    """$ tick labels with thousands separators: $950, $12,000, -$5,000."""
    return f"{'-' if x < 0 else ''}${abs(x):,.0f}"


def number(x: float, _pos=None) -> str:
    """Tick labels with thousands separators: 52,500; 0.25."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _save(fig: Figure, path: Path) -> Figure:
    fig.savefig(path, dpi=DPI)
    return fig


def mean_band(values: Sequence[float | None], bounds: Sequence[float] | None = None) -> tuple[float, float, float]:
    """Mean of one point's values over seeds with its band: the 95% interval (cut to `bounds`) from
    MIN_SEEDS seeds on, the seeds' range below that, nothing with one seed (the mean three times;
    NaN without values)."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    found = interval(finite, bounds)
    if found is None:
        return (float("nan"),) * 3
    if found.low is None:
        return found.mean, min(finite), max(finite)
    return found.mean, found.low, found.high


def band_label(n: int, of: str = "seeds") -> str:
    """What a band drawn by `mean_band` from n values a point shows, for the legend."""
    if n >= MIN_SEEDS:
        return f"95% interval of the mean over {n} {of}"
    if n > 1:
        return f"range of the {n} {of} (too few for an interval)"
    return f"1 {of[:-1]}: no band"


def band_handles(counts: Iterable[int], drawn_as: str = "shaded", of: str = "seeds") -> list[Patch]:
    """Legend entries saying what the bands show, one per number of values a point the planners had."""
    return [Patch(facecolor="grey", alpha=0.3, label=f"{drawn_as}: {band_label(n, of)}") if n > 1
            else Patch(fill=False, edgecolor="none", label=band_label(n, of)) for n in sorted(set(counts))]


def mean_bands(columns: Iterable[Sequence[float]], bounds: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`mean_band` at each point, given each point's values over seeds: mean, low and high, each (X,)."""
    found = [mean_band(column, bounds) for column in columns]
    return tuple(np.array([f[i] for f in found], dtype=float) for i in range(3))


def draw_over_seeds(ax: Axes, x: np.ndarray, columns: Iterable[Sequence[float]], label: str, style: Mapping,
                    steps: bool = False) -> np.ndarray:
    """A planner's mean over seeds as its line, its band shaded, from each point's values over
    seeds (a (seeds, X) array transposed); returns the mean."""
    mean, low, high = mean_bands(columns)
    ax.plot(x, mean, label=label, drawstyle="steps-post" if steps else "default", **style)
    ax.fill_between(x, low, high, color=style["color"], alpha=0.15, lw=0, step="post" if steps else None)
    return mean


def coinciding(lines: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[list[str]]:
    """Groups of planners whose lines (x, y) lie on top of each other: the same x, and every y within
    COINCIDE of the span that all the lines cover."""
    ys = np.concatenate([np.ravel(y) for _, y in lines.values()]) if lines else np.zeros(0)
    ys = ys[np.isfinite(ys)]
    tolerance = COINCIDE * float(np.ptp(ys)) if len(ys) else 0.0

    def same(a, b) -> bool:
        return (np.shape(a[0]) == np.shape(b[0]) and np.shape(a[1]) == np.shape(b[1]) and np.allclose(a[0], b[0])
                and np.allclose(a[1], b[1], rtol=1e-9, atol=tolerance, equal_nan=True))

    groups: list[list[str]] = []
    for label, line in lines.items():
        group = next((g for g in groups if same(lines[g[0]], line)), None)
        if group is None:
            groups.append([label])
        else:
            group.append(label)
    return [g for g in groups if len(g) > 1]


def listed(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def tie_note(lines: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """'lines of saez and search coincide' for each group of coinciding lines; empty when none do."""
    return "; ".join(f"lines of {listed(group)} coincide" for group in coinciding(lines))


def _note(ax: Axes, *sentences: str) -> None:
    """Sentences under a panel's x label about what its lines cannot show by themselves."""
    text = "; ".join(s for s in sentences if s)
    if text:
        ax.annotate(text, xy=(0.5, 0.0), xycoords=ax.xaxis.label, xytext=(0, -4), textcoords="offset points",
                    ha="center", va="top", fontsize=8, style="italic", wrap=True)


def _nothing_to_draw(ax: Axes, why: str) -> None:
    ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", fontsize=11, wrap=True)


def plot_welfare_over_time(metrics: pd.DataFrame, path: Path, colors: Mapping[str, tuple], welfare_name: str,
                           eta: float | None = None) -> Figure:
    """Welfare per step, one line per planner (mean over seeds, band shaded); dotted lines where a
    new tax year starts. `eta`, the curvature of consumption utility, decides the welfare unit."""
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    lines, counts = {}, []
    for label, rows in metrics.groupby("planner", sort=False):
        per_seed = rows.pivot_table(index="seed", columns="step", values="welfare")  # (seeds, steps)
        steps = per_seed.columns.to_numpy()
        lines[label] = (steps, draw_over_seeds(ax, steps, per_seed.to_numpy().T, label, planner_style(label, colors, len(steps))))
        counts.append(len(per_seed))
    year_starts = sorted(metrics.loc[(metrics["step_in_year"] == 0) & (metrics["step"] > 0), "step"].unique())
    for i, step in enumerate(year_starts):
        ax.axvline(step - 0.5, color="grey", ls=":", lw=0.8, label="start of a tax year" if i == 0 else None)
    steps_per_year = int(metrics["step_in_year"].max()) + 1
    ax.set_xlabel(f"step ({steps_per_year} per tax year)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(number))
    ax.set_ylabel(f"social welfare, {welfare_name}\n({welfare_unit(welfare_name, eta)})", parse_math=False)
    ax.set_title("Welfare over time")
    ax.grid(alpha=0.3)
    _note(ax, tie_note(lines))
    fig.legend(handles=[*ax.get_legend_handles_labels()[0], *band_handles(counts)], loc="outside right upper", fontsize=9)
    return _save(fig, path)


def income_grid(top: float) -> np.ndarray:
    """Incomes to evaluate schedules at: even steps from $0 to LINEAR_INCOME_BELOW, even ratios above."""
    return np.concatenate([np.linspace(0.0, LINEAR_INCOME_BELOW, 100, endpoint=False), np.geomspace(LINEAR_INCOME_BELOW, top, 400)])


def _income_axis(ax: Axes, top: float) -> None:
    """$0 to `top`: linear up to LINEAR_INCOME_BELOW, logarithmic above, ticks at $0, half the
    linear range, then 1-2-5 steps."""
    ax.set_xscale("symlog", linthresh=LINEAR_INCOME_BELOW, linscale=1.0)
    ax.set_xlim(0.0, top)
    decades = range(int(np.log10(LINEAR_INCOME_BELOW)), int(np.log10(top)) + 1)
    ticks = [0.0, LINEAR_INCOME_BELOW / 2] + [m * 10.0**e for e in decades for m in (1, 2, 5) if LINEAR_INCOME_BELOW <= m * 10.0**e <= top]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(dollars))
    ax.tick_params(axis="x", labelrotation=35)
    ax.set_xlabel(f"annual pre-tax income ($/yr, log scale from {dollars(LINEAR_INCOME_BELOW)})", parse_math=False)


def plot_final_schedules(planners: Mapping[str, Mapping], incomes: np.ndarray | None, path: Path, colors: Mapping[str, tuple]) -> Figure:
    """Marginal rate and average net tax rate (tax minus the equal transfer, over income) against income
    from $0, each the mean over seeds of that seed's final schedule, band shaded; negative rates (a
    credit's phase-in) shown as they are."""
    schedules = [s for p in planners.values() for s in p["schedules"]]
    # Show the top bracket of every schedule too, leaving out cutoffs that no income reaches.
    top_cutoff = max((c for s in schedules for c in np.ravel(s["cutoffs"]) if c < NEVER_REACHED_INCOME), default=0.0)
    p99 = float(np.percentile(incomes, 99)) if incomes is not None and len(incomes) else 0.0
    top = max(MIN_INCOME_AXIS, p99, 1.5 * top_cutoff)
    z = income_grid(top)
    fig = Figure(figsize=(12, 5), layout="constrained")
    ax_m, ax_a = fig.subplots(1, 2)
    lines = {ax_m: {}, ax_a: {}}
    for label, p in planners.items():
        transfers = p.get("per_seed", {}).get("transfer") or [s.get("lump_sum", 0.0) for s in p["schedules"]]
        marginal, average = [], []
        for sched, transfer in zip(p["schedules"], transfers):
            schedule = TaxSchedule.from_lists(np.ravel(sched["cutoffs"]), np.ravel(sched["rates"]))
            zt = torch.from_numpy(z)
            marginal.append(schedule.marginal_rate(zt).numpy())
            net = schedule.tax(zt).numpy() - (transfer or 0.0)
            average.append(np.divide(net, z, out=np.full_like(z, np.nan), where=z > 0))
        style = planner_style(label, colors, len(z))
        for ax, per_seed in ((ax_m, marginal), (ax_a, average)):
            lines[ax][label] = (z, draw_over_seeds(ax, z, np.array(per_seed).T, label, style, steps=ax is ax_m))
    for ax in (ax_m, ax_a):
        _income_axis(ax, top)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.axhline(0.0, color="black", lw=0.8)
        ax.grid(alpha=0.3)
        _note(ax, tie_note(lines[ax]))
    # The marginal panel keeps matplotlib's limits: every plotted rate, negative ones included, and the 0% line.
    # The average rate falls without bound as income nears $0, and so does its band: cut at -100%.
    means = np.concatenate([y for _, y in lines[ax_a].values()])
    lowest, highest = max(np.nanmin(means), -1.0), max(np.nanmax(means), 0.0)
    pad = 0.05 * (highest - lowest)
    ax_a.set_ylim(max(lowest - pad, -1.0), highest + pad)
    ax_m.set_ylabel("marginal tax rate (%)")
    ax_m.set_title("Final marginal tax rates")
    ax_a.set_ylabel("average net tax rate (%), (tax − transfer) / income")
    ax_a.set_title("Final average net tax rate (cut at −100%)")
    counts = [len(p["schedules"]) for p in planners.values()]
    entries = [*ax_m.get_legend_handles_labels()[0], *band_handles(counts)]
    fig.legend(handles=entries, loc="outside lower center", ncols=min(len(entries), 5), fontsize=9)
    return _save(fig, path)


def plot_hours_distribution(outcomes: pd.DataFrame, path: Path, colors: Mapping[str, tuple], max_hours: float | None) -> Figure:
    """Share of workers by weekly hours in the final step, mean over seeds with its band: side-by-side
    bars with error bars when hours take a few values (language-model workers choose 10-hour bins),
    step histograms with a shaded band otherwise. A planner whose workers all work the same hours, or
    no hours at all, is said in words."""
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    ax.set_xlabel("hours worked per week (h/week)")
    ax.set_ylabel("share of workers (%)")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_title("Hours in the final step")
    ax.grid(alpha=0.3)
    outcomes = outcomes[np.isfinite(outcomes["hours"].to_numpy(float))]
    if outcomes.empty:
        _nothing_to_draw(ax, "no worker's hours were recorded in the final step")
        ax.set_xlim(0.0, max_hours or 1.0)
        return _save(fig, path)
    values = np.unique(outcomes["hours"].to_numpy(float))
    top = max_hours if max_hours else float(values[-1])
    discrete = len(values) <= DISCRETE_HOUR_VALUES
    groups = list(outcomes.groupby("planner", sort=False))
    spacing = np.min(np.diff(values)) if len(values) > 1 else max(top, 1.0) / 10
    width = 0.8 * spacing / len(groups)
    step = max(spacing, top / 30)  # hours on a grid (bins of choices) fall in the middle of a bin each
    edges = np.arange(-step / 2, top + step, step)
    counts, same_hours = [], []
    for k, (label, rows) in enumerate(groups):
        style = planner_style(label, colors)
        hours = rows["hours"].to_numpy(float)
        name = f"{label} (mean {hours.mean():.1f} h/week)"
        by_seed = [seed_rows["hours"].to_numpy(float) for _, seed_rows in rows.groupby("seed")]
        counts.append(len(by_seed))
        if np.ptp(hours) == 0:
            same_hours.append(f"every {label} worker works {hours[0]:g} h/week")
        if discrete:
            mean, low, high = mean_bands(np.array([(h[:, None] == values).mean(axis=0) for h in by_seed]).T, (0, 1))  # (values,) each
            ax.bar(values + (k - (len(groups) - 1) / 2) * width, mean, width=width, color=style["color"], label=name,
                   yerr=[mean - low, high - mean], error_kw={"lw": 0.8, "capsize": 2})
        else:
            mean, low, high = mean_bands(np.array([np.histogram(h, bins=edges)[0] / len(h) for h in by_seed]).T, (0, 1))  # (bins,) each
            ax.stairs(mean, edges, color=style["color"], linestyle=style["linestyle"], lw=style["lw"], label=name)
            ax.stairs(high, edges, baseline=low, fill=True, color=style["color"], alpha=0.15, lw=0)
    _note(ax, *same_hours)
    bands = band_handles(counts, "error bars" if discrete else "shaded")
    fig.legend(handles=[*ax.get_legend_handles_labels()[0], *bands], loc="outside right upper", fontsize=9)
    return _save(fig, path)


def _gini_label(estimate) -> str:
    if not isinstance(estimate, Mapping) or estimate.get("mean") is None:
        return ""
    return f" (Gini {bracketed(estimate['mean'], estimate.get('ci95'), '.3f')})"


def plot_lorenz_curves(outcomes: pd.DataFrame, path: Path, colors: Mapping[str, tuple], gini: Mapping[str, tuple] | None = None) -> Figure:
    """Lorenz curves of final pre-tax income and of consumption, mean over seeds with its band; the
    Gini (mean over seeds, 95% interval) in the legend."""
    fig = Figure(figsize=(12, 5.4), layout="constrained")
    axes = fig.subplots(1, 2)
    share = np.linspace(0.0, 1.0, LORENZ_POINTS)
    for k, (ax, column) in enumerate(zip(axes, ("income", "consumption"))):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect equality")
        lines, counts = {}, []
        for label, rows in outcomes.groupby("planner", sort=False):
            per_seed = [np.interp(share, *(t.numpy() for t in lorenz_curve(torch.tensor(seed_rows[column].to_numpy(float)))))
                        for _, seed_rows in rows.groupby("seed")]  # (seeds, LORENZ_POINTS)
            name = label + _gini_label((gini or {}).get(label, (None, None))[k])
            lines[label] = (share, draw_over_seeds(ax, share, np.array(per_seed).T, name, planner_style(label, colors, len(share))))
            counts.append(len(per_seed))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("share of workers, poorest first (%)")
        ax.set_ylabel(f"share of total {column} (%)")
        ax.set_title(f"Lorenz curve: {'pre-tax income' if column == 'income' else column}, final step")
        ax.grid(alpha=0.3)
        _note(ax, tie_note(lines))
        ax.legend(handles=[*ax.get_legend_handles_labels()[0], *band_handles(counts)], fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_training_curves(curves: Mapping[str, list], path: Path, colors: Mapping[str, tuple]) -> Figure:
    """Mean reward per rollout against environment steps, one line per planner and seed."""
    fig = Figure(figsize=(9, 4.6), layout="constrained")
    ax = fig.subplots()
    for label, seeds in curves.items():
        for k, curve in enumerate(seeds):
            steps, reward = zip(*curve)
            ax.plot(steps, reward, alpha=0.8, label=f"{label}, one line per seed ({len(seeds)})" if k == 0 else None,
                    **planner_style(label, colors, len(steps)))
    ax.set_xlabel("environment steps (tax years played in training)")
    ax.xaxis.set_major_formatter(FuncFormatter(number))
    ax.set_ylabel("mean reward per rollout (welfare as a multiple of\nan equal untaxed 40-hour society's, unitless)")
    ax.yaxis.set_major_formatter(FuncFormatter(number))
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


def _value_axis(ax: Axes, unit: str | None) -> None:
    """Ticks and label of a parameter's axis in its unit ('fraction' in %, '$...' in dollars)."""
    if unit == "fraction":
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylabel("%", fontsize=9)
        return
    ax.yaxis.set_major_formatter(FuncFormatter(dollars if unit and unit.startswith("$") else number))
    ax.set_ylabel(unit or "value (unit not recorded)", fontsize=9, parse_math=False)


def plot_parameters_over_time(parameters: pd.DataFrame, path: Path, colors: Mapping[str, tuple],
                              units: Mapping[tuple[str, str], str] | None = None) -> Figure:
    """One panel per parameter of each mechanism, one line per planner by tax year (mean over seeds,
    band shaded); `units` maps (mechanism, parameter) to the parameter's unit."""
    panels = changing_parameters(parameters)
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.0 * nrows + 1.0), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    counts = []
    for ax, (mechanism, name) in zip(axes, panels):
        chosen = parameters[(parameters["mechanism"] == mechanism) & (parameters["parameter"] == name)]
        lines = {}
        for label, rows in chosen.groupby("planner", sort=False):
            per_seed = rows.pivot_table(index="seed", columns="year", values="value")  # (seeds, years)
            years = per_seed.columns.to_numpy()
            lines[label] = (years, draw_over_seeds(ax, years, per_seed.to_numpy().T, label, planner_style(label, colors, len(years))))
            counts.append(len(per_seed))
        ax.set_title(f"{mechanism}: {name}" if mechanism else name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("tax year", fontsize=9)
        _value_axis(ax, (units or {}).get((mechanism, name)))
        _note(ax, tie_note(lines))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = {}
    for ax in axes[: len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    entries = [*handles.values(), *band_handles(counts)]
    fig.legend(handles=entries, loc="outside lower center", ncols=min(len(entries), 4), fontsize=9)
    fig.suptitle("Mechanism parameters chosen each tax year")
    return _save(fig, path)


def plot_hours_against_rate(result: Mapping, path: Path, groups: Sequence[str], evidence: tuple[float, float]) -> Figure:
    """Mean hours (95% band over the group's agents) against the own-bracket marginal rate, for all
    agents and each income group, with the hours a population with the evidence's elasticities
    (`evidence`, e.g. 0.12-0.40) would work, anchored at the lowest rate."""
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    rates = np.asarray(result["rate_grid"], dtype=float)
    low_e, high_e = evidence
    for k, group in enumerate(["all", *groups]):
        means = result.get(f"rate_grid_hours_{group}")
        if not means or means[0] is None:
            continue
        color = colormaps["tab10"](k)
        ax.plot(rates, means, marker=MARKERS[k], linestyle=LINESTYLES[k % len(LINESTYLES)], mfc="none", color=color,
                label=group.replace("_", " "))
        bands = [b or [m, m] for b, m in zip(result[f"rate_grid_hours_{group}_ci95"], means)]
        ax.fill_between(rates, [b[0] for b in bands], [b[1] for b in bands], color=color, alpha=0.2)
        keep = (1 - rates) / (1 - rates[0])
        ax.fill_between(rates, means[0] * keep**low_e, means[0] * keep**high_e, color=color, alpha=0.08, hatch="//")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("marginal rate at the agent's own bracket (%)")
    ax.set_ylabel("mean hours worked (h/week)")
    ax.set_title(f"{result['workers']} workers: hours against the marginal rate", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(handles=[*ax.get_legend_handles_labels()[0],
                       Patch(facecolor="grey", alpha=0.3, label="shaded: 95% interval over the group's agents"),
                       Patch(facecolor="none", edgecolor="grey", hatch="//", label=f"hatched: evidence, elasticity {low_e}-{high_e}")],
              fontsize=8)
    return _save(fig, path)


def plot_individual_responses(result: Mapping, path: Path, evidence: tuple[float, float]) -> Figure:
    """Histogram of individual hours elasticities (agents not at a corner), the evidence band shaded;
    no agents, or all with one elasticity, said in words."""
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    values = np.asarray(result["individual_elasticities"], dtype=float)
    values = values[np.isfinite(values)]
    low, high = evidence
    ax.axvspan(low, high, color="grey", alpha=0.2, label=f"evidence {low}-{high}")
    ax.set_xlabel("individual hours elasticity w.r.t. the net-of-tax rate (unitless)")
    ax.set_ylabel("agents (count)")
    ax.yaxis.set_major_formatter(FuncFormatter(number))
    ax.set_title(f"{result['workers']} workers: spread of individual responses", fontsize=9)
    if not len(values):
        _nothing_to_draw(ax, "no agent off a corner: no elasticity to show")
    else:
        same = np.ptp(values) == 0
        bins = [values[0] - 0.005, values[0] + 0.005] if same else min(40, max(5, len(values) // 5))
        ax.hist(values, bins=bins, color=colormaps["tab10"](0), alpha=0.8, label="agents")
        if same:
            _note(ax, f"all {len(values):,} agents off a corner have elasticity {values[0]:.3g}: no spread")
    ax.legend(fontsize=8)
    return _save(fig, path)


def sweep_plot(table: pd.DataFrame, key: str, planners: Sequence[str], path: Path) -> Figure:
    """Gain captured against one swept setting, one line per planner (mean over seeds, band shaded);
    categorical settings are spaced evenly in the order swept."""
    fig = Figure(figsize=(8, 4.4), layout="constrained")
    ax = fig.subplots()
    values = list(dict.fromkeys(table[key].tolist()))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    x = np.asarray(values, dtype=float) if numeric else np.arange(len(values))
    colors = planner_colors(planners)
    lines, counts = {}, []
    for planner in planners:
        rows = table[table["planner"] == planner]
        points = [rows.loc[rows[key] == v, "gain_captured"].dropna().tolist() for v in values]  # every run at each value
        lines[planner] = (x, draw_over_seeds(ax, x, points, planner, planner_style(planner, colors, len(x))))
        counts += [len(p) for p in points]
    if numeric:
        ax.xaxis.set_major_formatter(FuncFormatter(number))
    else:
        ax.set_xticks(x, [str(v) for v in values])
    ax.set_xlabel(f"{key} (in its configuration unit)")
    ax.yaxis.set_major_formatter(PercentFormatter(100.0))
    ax.set_ylabel("gain captured (% of the best planner's gain over no tax)")
    ax.set_title(f"Gain captured against {key}")
    ax.grid(alpha=0.3)
    _note(ax, tie_note(lines))
    bands = band_handles(counts, of="runs")  # seeds, times the other swept settings' values
    fig.legend(handles=[*ax.get_legend_handles_labels()[0], *bands], loc="outside right upper", fontsize=9)
    return _save(fig, path)
