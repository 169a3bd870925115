"""How the optimal schedule moves with the welfare function's inequality aversion.

The answer a planner gives depends on how much the welfare function cares about the worse-off
as much as on how workers respond, and a report that compares planners at one setting hides
that. This study takes one economy and finds the optimum of its mechanism by brute force (the
grid planner: every point of a grid over the parameter box and a finer local grid) for each
welfare function from utilitarian (ability weights to the power 0) through ability weights to the
powers 0.5, 1 and 2 to Rawlsian (the worst-off's utility alone), over several census samples, and
reports the optimal parameters, the rebate they fund, hours, the Gini coefficient of consumption
and the welfare gain over no tax, each a mean with its 95% interval over the samples.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..config import RunConfig
from ..economy.inequality import gini
from ..factory import build_setup, make_config_mechanism
from ..planners.fixed import no_tax_planner
from ..planners.search import GridPlanner
from ..reporting.report import format_estimate
from ..reporting.summary import interval

AVERSIONS: tuple[float | str, ...] = (0.0, 0.5, 1.0, 2.0, "rawlsian")
FIGURES = ("mean_hours", "consumption_gini", "rebate", "gain_percent")


def welfare_for(config: RunConfig, aversion: float | str) -> RunConfig:
    """The config judged by ability-weighted welfare with this aversion, or by the Rawlsian function."""
    update = {"name": "rawlsian"} if aversion == "rawlsian" else {"name": "ability_weighted", "inequality_aversion": float(aversion)}
    return config.model_copy(update={"welfare": config.welfare.model_copy(update=update)})


def optimum(config: RunConfig, points: int, refine: int) -> dict:
    """The grid's optimum of the config's mechanism on one census sample, and what it leads to."""
    setup = build_setup(config)
    try:
        model, mechanism = setup.model, make_config_mechanism(config)
        theta = GridPlanner(mechanism, points_per_parameter=points, refine_points=refine).propose(0, [], model)
        none = no_tax_planner()
        w0 = float(model.evaluate(none.mechanism, none.theta.unsqueeze(0))[0])
        outcome = model.respond(mechanism.compile(theta))
        welfare = float(model.welfare(outcome))
        return {**mechanism.as_dict(theta), "rebate": float(outcome.transfer.reshape(-1)[0]), "mean_hours": float(outcome.hours.mean()),
                "consumption_gini": float(gini(outcome.consumption)), "gain_percent": 100.0 * (welfare - w0) / abs(w0)}
    finally:
        setup.close()


def run_aversion_study(config: RunConfig, out: str | Path, aversions: Sequence[float | str] = AVERSIONS, points: int = 21,
                       refine: int = 11, progress: Callable[[str], None] | None = None) -> dict:
    """Optimise under every welfare function on `config.seeds` census samples; write aversion.json, table.md and aversion.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for aversion in aversions:
        found = []
        for seed in range(config.seed, config.seed + config.seeds):
            if progress:
                progress(f"inequality aversion {aversion}: census sample {seed}")
            found.append(optimum(welfare_for(config, aversion).model_copy(update={"seed": seed, "seeds": 1}), points, refine))
        rows[str(aversion)] = {key: interval([f[key] for f in found]).as_dict() for key in found[0]}
    result = {"mechanism": config.mechanism.name, "agents": config.population.n_agents, "seeds": config.seeds, "rows": rows}
    (out / "aversion.json").write_text(json.dumps(result, indent=1))
    (out / "table.md").write_text(aversion_table(result))
    plot_aversion(result, out / "aversion.png")
    return result


def aversion_table(result: dict) -> str:
    """Markdown: one row per welfare function, every figure a mean with its 95% interval."""
    keys = list(next(iter(result["rows"].values())))
    header = ["welfare function", *(k.replace("_", " ") for k in keys)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(keys)]
    for aversion, row in result["rows"].items():
        name = "Rawlsian" if aversion == "rawlsian" else f"ability-weighted, aversion {aversion}"
        lines.append("| " + " | ".join([name, *(format_estimate(row[k]) for k in keys)]) + " |")
    return (f"Optimum of `{result['mechanism']}` found by the grid on {result['agents']:,} census workers; means over "
            f"{result['seeds']} census samples with 95% t-intervals.\n\n" + "\n".join(lines) + "\n")


def plot_aversion(result: dict, path: Path) -> Figure:
    """Against the welfare function, 95% bars: the optimum's parameters, the rebate they fund, and
    hours with the Gini coefficient of consumption (each on its own axis, so neither is flattened)."""
    rows = result["rows"]
    x = np.arange(len(rows))
    parameters = [k for k in next(iter(rows.values())) if k not in FIGURES]
    fig = Figure(figsize=(13, 4), layout="constrained")
    rates, rebate, hours = fig.subplots(1, 3)
    for k, name in enumerate(parameters):
        _bars(rates, x + 0.06 * (k - 1), [rows[a][name] for a in rows], name.replace("_", " "), k)
    rates.set_ylabel("optimal parameter")
    _bars(rebate, x, [rows[a]["rebate"] for a in rows], "rebate", 0)
    rebate.set_ylabel("rebate ($/year per worker)")
    _bars(hours, x, [rows[a]["mean_hours"] for a in rows], "mean hours", 0)
    hours.set_ylabel("mean hours (h/week)")
    gini_axis = hours.twinx()
    _bars(gini_axis, x + 0.06, [rows[a]["consumption_gini"] for a in rows], "Gini of consumption (right axis)", 1)
    gini_axis.set_ylabel("Gini coefficient of consumption")
    labels = ["Rawlsian" if a == "rawlsian" else a for a in rows]
    for ax, title in ((rates, "the optimum's parameters"), (rebate, "the rebate it funds"), (hours, "hours and inequality")):
        ax.set_xticks(x, labels)
        ax.set_xlabel("inequality aversion (ability-weighted welfare)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    rates.legend(fontsize=8)
    hours.legend(handles=[*hours.get_legend_handles_labels()[0], *gini_axis.get_legend_handles_labels()[0]], fontsize=8, loc="upper right")
    fig.savefig(path, dpi=130)
    return fig


def _bars(ax, x, estimates: list[dict], label: str, k: int) -> None:
    """Means with their 95% intervals as error bars (none where the samples agree exactly)."""
    means = np.array([e["mean"] for e in estimates], dtype=float)
    low = np.array([e["ci95"][0] if e.get("ci95") else e["mean"] for e in estimates], dtype=float)
    high = np.array([e["ci95"][1] if e.get("ci95") else e["mean"] for e in estimates], dtype=float)
    ax.errorbar(x, means, yerr=[means - low, high - means], marker="osD^"[k % 4], mfc="none", capsize=3, label=label,
                color=f"C{k}")
