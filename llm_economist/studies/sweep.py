"""Sweeps: a comparison at every point of a grid of config settings, for every seed.

Each (point, seed) cell is one `compare` run with one seed in `OUT/cells/p<point>_seed<seed>/`,
and one task for the executor (here, or Ray); language-model cells share the servers in
`llm.base_urls`, or one embedded server per machine. A cell whose summary was written by the same config
is finished and is not run again, so an interrupted sweep resumes. The results are gathered into
`sweep.csv` (one row per cell and planner) and `sweep.md` (for every grid dimension, each planner's
gain captured at each value, a mean over seeds with its 95% interval, and a plot).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from .comparison import run_comparison
from ..config import ConfigError, RunConfig, config_fingerprint
from ..planner_factory import load_config
from ..executor import LOCAL, run_tasks
from ..factory import embedded_slots
from ..reporting.summary import bracketed, interval

CELLS = "cells"


@dataclass(frozen=True)
class Cell:
    point: int  # index of the grid point
    settings: tuple[tuple[str, str], ...]  # (key, value as written) at this point
    seed: int

    @property
    def name(self) -> str:
        return f"p{self.point:03d}_seed{self.seed}"


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """`key=v1,v2,...` items into key -> values; a clear error names the item at fault."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        parts = [v.strip() for v in values.split(",")] if sep else []
        if not key.strip() or not parts or not all(parts):
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,... with at least one value")
        if key.strip() in grid:
            raise ConfigError(f"--grid {key.strip()}: given twice; list all its values in one --grid")
        grid[key.strip()] = parts
    return grid


def grid_cells(grid: dict[str, list[str]], seeds: list[int]) -> list[Cell]:
    points = list(itertools.product(*[[(k, v) for v in values] for k, values in grid.items()])) or [()]
    return [Cell(i, tuple(point), seed) for i, point in enumerate(points) for seed in seeds]


def cell_config(path: str | None, overrides: Sequence[str], cell: Cell) -> RunConfig:
    return load_config(path, [*overrides, *(f"{k}={v}" for k, v in cell.settings), f"seed={cell.seed}", "seeds=1"])


def run_cell(config: RunConfig, out: str) -> dict:
    """One comparison, unless its summary was already written by this config."""
    out_dir = Path(out)
    summary_path = out_dir / "summary.json"
    if summary_path.is_file() and json.loads(summary_path.read_text()).get("config_fingerprint") == config_fingerprint(config):
        return {"reused": True}
    run_comparison(config, out_dir, overwrite=True, progress=False)
    return {"reused": False}


def run_sweep(
    path: str | None, grid: dict[str, list[str]], seeds: int, out: str | Path, overrides: Sequence[str] = (),
    address: str = LOCAL, progress: bool = True,
) -> pd.DataFrame:
    """Run every cell (skipping finished ones), write sweep.csv and sweep.md into `out`; the table."""
    out = Path(out).resolve()
    base = load_config(path, list(overrides))
    cells = grid_cells(grid, [base.seed + k for k in range(seeds)])
    configs = [cell_config(path, overrides, cell) for cell in cells]  # every cell's config is checked before any runs
    (out / CELLS).mkdir(parents=True, exist_ok=True)
    records = run_tasks(run_cell, [(c, str(out / CELLS / cell.name)) for c, cell in zip(configs, cells)], address, progress,
                        description="cells", embedded_llm=embedded_slots(base))
    table = sweep_table(out, grid, cells, records)
    table.to_csv(out / "sweep.csv", index=False)
    (out / "sweep.md").write_text(sweep_markdown(table, grid, out))
    return table


def sweep_table(out: Path, grid: dict[str, list[str]], cells: list[Cell], records: list[dict]) -> pd.DataFrame:
    """One row per cell and planner: the swept values, seed, headline figures, and where it ran."""
    rows = []
    for cell, record in zip(cells, records):
        summary = json.loads((out / CELLS / cell.name / "summary.json").read_text())
        for label, p in summary["planners"].items():
            rows.append({
                **{k: yaml.safe_load(v) for k, v in cell.settings}, "seed": cell.seed, "planner": label, "cell": cell.name,
                "welfare": p["per_seed"]["welfare"][0], "gain_captured": p["per_seed"]["gain_captured"][0],
                **{m: p["per_seed"][m][0] for m in ("mean_hours", "revenue", "gini_income")},
                "node": record["node"], "reused": record["reused"], "wall_s": record["wall_s"],
            })
    return pd.DataFrame(rows)


def sweep_markdown(table: pd.DataFrame, grid: dict[str, list[str]], out: Path) -> str:
    """For each grid dimension: each planner's gain captured at each value, over seeds and the other dimensions' points."""
    from ..reporting.plots import sweep_plot

    lines = [f"# Sweep: {table['cell'].nunique()} cells over {table['seed'].nunique()} seeds", "",
             "Gain captured (% of the best planner's welfare gain over no tax, per cell): means with 95% t-intervals "
             "over seeds (and over the other dimensions' values, when there are several).", ""]
    planners = [p for p in table["planner"].unique() if p != "no_tax"]
    for key in grid:
        lines += [f"## {key}", "", "| " + " | ".join([key, *planners]) + " |", "|---" * (len(planners) + 1) + "|"]
        for value, rows in table.groupby(key, sort=False):
            found = [interval(rows.loc[rows["planner"] == planner, "gain_captured"].tolist()) for planner in planners]
            cells = [bracketed(f.mean, f.as_dict()["ci95"]) if f else "n/a" for f in found]
            lines.append(f"| {value} | " + " | ".join(cells) + " |")
        plot = out / f"sweep_{key.replace('.', '_')}.png"
        sweep_plot(table, key, planners, plot)
        lines += ["", f"![gain captured against {key}]({plot.name})", ""]
    nodes = table.drop_duplicates("cell")["node"].nunique()
    lines.append(f"Cells ran on {nodes} node(s); {int(table.drop_duplicates('cell')['reused'].sum())} were reused from an earlier run.")
    return "\n".join(lines) + "\n"
