"""`llm-economist`: run a planner, compare planners, rebuild a report.

Exit codes: 0 success, 2 invalid config or arguments, 1 a run failed, 130 interrupted
(finished tax years are checkpointed; rerun with --resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .config import ConfigError, load_config

OVERRIDE_HELP = "Override a config field, e.g. --set economy.years=3 --set population.n_agents=500 (repeatable)."


def _execute(config_path: str, out: str | None, overrides: tuple[str, ...], resume: bool, labels: list[str] | None, quiet: bool) -> None:
    from .reporting import write_report
    from .runner import ResumeError, Runner

    try:
        config = load_config(config_path, list(overrides))
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    out_dir = Path(out) if out else Path("runs") / config.name
    runner = Runner(config, out_dir, resume=resume, progress=not quiet)
    try:
        summary = runner.run(labels)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; finished tax years are saved. Continue with --resume --out {out_dir}", err=True)
        sys.exit(130)
    except (ResumeError, ValueError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2 if isinstance(err, ValueError) else 1)
    report = write_report(out_dir)
    if not quiet:
        click.echo(_table(summary))
    click.echo(f"report: {report}")


def _table(summary: dict) -> str:
    rows = [f"{'planner':<16}{'welfare':>14}{'% of best':>11}{'gini(c)':>9}{'hours':>8}"]
    for label, p in summary["planners"].items():
        pct = "n/a" if p["welfare_pct_of_best"] is None else f"{p['welfare_pct_of_best']:.2f}"
        rows.append(f"{label:<16}{p['final_welfare']:>14,.1f}{pct:>11}{p['gini_consumption']:>9.3f}{p['mean_hours']:>8.1f}")
    return "\n".join(rows)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main() -> None:
    """Mechanism design in economies of language-model and rational agents."""


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [default: runs/<config name>].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
@click.option("--planner", default=None, help="Label of the planner to run [default: the first in the config].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last finished tax year.")
@click.option("--quiet", is_flag=True, help="No progress bar or table.")
def run(config: str, out: str | None, overrides: tuple[str, ...], planner: str | None, resume: bool, quiet: bool) -> None:
    """Run one planner against the configured population and write a report."""
    if planner is None:
        try:
            planner = load_config(config, list(overrides)).planners[0].name
        except ConfigError as err:
            raise click.UsageError(str(err)) from None
    _execute(config, out, overrides, resume, [planner], quiet)


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--planners", default=None, help="Comma-separated planner labels to compare [default: all in the config].")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [default: runs/<config name>].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
@click.option("--resume", is_flag=True, help="Continue an interrupted comparison in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar or table.")
def compare(config: str, planners: str | None, out: str | None, overrides: tuple[str, ...], resume: bool, quiet: bool) -> None:
    """Run several planners on the same population and seeds, and compare them in one report."""
    labels = [p.strip() for p in planners.split(",") if p.strip()] if planners else None
    _execute(config, out, overrides, resume, labels, quiet)


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir: str) -> None:
    """Rebuild report.md and the plots of a finished run directory."""
    from .reporting import write_report

    click.echo(f"report: {write_report(Path(run_dir))}")


if __name__ == "__main__":
    main()
