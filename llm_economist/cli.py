"""`llm-economist`: run a planner, compare planners, welfare sensitivity, rebuild a report.

Exit codes: 0 success, 2 invalid config or arguments, 1 a run failed, 130 interrupted
(finished tax years are checkpointed; rerun with --resume).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from .config import ConfigError, load_config

OVERRIDE_HELP = "Override a config field, e.g. --set economy.years=3 --set population.n_agents=500 (repeatable)."


@contextmanager
def exit_codes(on_interrupt: str = "interrupted") -> Iterator[None]:
    """Turn the errors a command can meet into the exit codes above, with the message on stderr."""
    from .llm import LLMError
    from .runner import ResumeError

    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"\n{on_interrupt}", err=True)
        sys.exit(130)
    except (LLMError, ResumeError, FileNotFoundError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except ValueError as err:  # bad input met while building the run: mechanism options, planner labels, parameters
        click.echo(f"error: {err}", err=True)
        sys.exit(2)


def _config(path: str, overrides: tuple[str, ...]):
    """The validated config, or a usage error (exit 2) naming the bad field."""
    try:
        return load_config(path, list(overrides))
    except ConfigError as err:
        raise click.UsageError(str(err)) from None


def _execute(config_path: str, out: str | None, overrides: tuple[str, ...], resume: bool, labels: list[str] | None, quiet: bool) -> None:
    """Load, run and report; labels None runs every planner, [] only the config's first."""
    from .reporting import write_report
    from .runner import Runner

    config = _config(config_path, overrides)
    if labels == []:
        labels = [config.planners[0].name]
    out_dir = Path(out) if out else Path("runs") / config.name
    runner = Runner(config, out_dir, resume=resume, progress=not quiet)
    with exit_codes(f"interrupted; finished tax years are saved. Continue with --resume --out {out_dir}"):
        summary = runner.run(labels)
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
    _execute(config, out, overrides, resume, [planner] if planner else [], quiet)


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
@click.option("--agent", type=int, required=True, help="Agent id (row of the population) to narrate.")
@click.option("--planner", default=None, help="Planner label whose run to narrate [default: the first in the traces].")
def narrate(run_dir: str, agent: int, planner: str | None) -> None:
    """Write a first-person account of one agent's run, grounded in its trace rows.

    Uses the run's `llm` settings (the embedded model unless the config names a server).
    """
    from .factory import llm_settings
    from .llm import open_client
    from .reporting.narrate import narrate as write_narrative

    with exit_codes():
        config = load_config(Path(run_dir) / "config.yaml")
        with open_client(llm_settings(config, str(Path(run_dir) / "llm_cache.sqlite"))) as client:
            path = write_narrative(run_dir, agent, client, planner)
    click.echo(f"narrative: {path}")


@main.command()
@click.option("--port", type=int, default=8080, help="Port on 127.0.0.1.")
@click.option("--parallel", type=int, default=4, help="Requests served at once.")
def serve(port: int, parallel: int) -> None:
    """Serve the embedded SmolLM2-135M-Instruct model as an OpenAI-compatible endpoint until Ctrl-C."""
    from .llm import serve as serve_embedded

    serve_embedded(port=port, parallel=parallel)


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
@click.option("--parameters", default=None, metavar="V1,V2,...", help="Mechanism parameters to evaluate at [default: the mechanism's initial ones].")
@click.option("--horizon", type=int, default=1, help="Periods the welfare is averaged over.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the result as JSON to this file.")
def sensitivity(config: str, overrides: tuple[str, ...], parameters: str | None, horizon: int, out: str | None) -> None:
    """Print dW/dtheta for every parameter of the config's mechanism, from one backward pass.

    The population and world are built exactly as `run` builds them; the workers must be
    differentiable in the tax rates (workers.kind = bounded or surrogate).
    """
    import json
    import tempfile

    from .factory import make_config_mechanism
    from .runner import Runner
    from .sensitivity import welfare_gradient

    run_config = _config(config, overrides)
    with exit_codes():
        mechanism = make_config_mechanism(run_config)
        if parameters is None:
            theta = mechanism.initial()
        else:
            try:
                theta = mechanism.validate([float(v) for v in parameters.split(",")])
            except ValueError as err:
                raise click.BadParameter(str(err), param_hint="--parameters") from None
        with tempfile.TemporaryDirectory() as scratch:
            runner = Runner(run_config, scratch, progress=False)
            try:
                runner.prepare()
                assert runner.world is not None
                gradient = welfare_gradient(runner.world, mechanism, theta, horizon)
                welfare = float(runner.world.evaluate(mechanism, theta.unsqueeze(0))[0])
            finally:
                if runner.client is not None:
                    runner.client.close()
    values = mechanism.as_dict(theta)
    rows = [f"{'parameter':<16}{'value':>14}{'dW/dθ':>16}"]
    rows += [f"{name:<16}{values[name]:>14,.6g}{gradient[name]:>16,.6g}" for name in mechanism.names]
    rows.append(f"welfare ({run_config.welfare.name}) at these parameters: {welfare:,.6g}")
    click.echo("\n".join(rows))
    if out:
        result = {
            "mechanism": mechanism.name, "welfare_name": run_config.welfare.name, "welfare": welfare, "horizon": horizon,
            "parameters": values, "gradient": gradient,
        }
        Path(out).write_text(json.dumps(result, indent=2))
        click.echo(f"written: {out}")


@main.group()
def distill() -> None:
    """Distil a worker population into the surrogate transformer: collect, train, evaluate."""


@distill.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Dataset directory (episode Parquet files and meta.json).")
@click.option("--episodes", type=int, default=40, help="Episodes to collect; each has a new population, graph and random mechanisms.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def collect(config: str, out: str, episodes: int, overrides: tuple[str, ...], quiet: bool) -> None:
    """Record workers' decisions under randomised mechanisms; rerun the same command to resume."""
    from .surrogate.dataset import collect as collect_dataset

    run_config = _config(config, overrides)
    with exit_codes("interrupted; finished episodes are kept. Rerun the same command to continue."):
        collect_dataset(run_config, out, episodes, progress=not quiet)
    click.echo(f"dataset: {out}")


@distill.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Model file to write.")
@click.option("--epochs", type=int, default=400, help="Most passes over the training episodes (early stopping may end sooner).")
@click.option("--lr", type=float, default=3e-3, help="Learning rate (AdamW).")
@click.option("--d-model", type=int, default=None, help="Token width [default: the model's].")
@click.option("--layers", type=int, default=None, help="Graph-attention blocks [default: the model's].")
@click.option("--seed", type=int, default=0, help="Seeds the test split, initialisation and batch order.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def train(data: str, out: str, epochs: int, lr: float, d_model: int | None, layers: int | None, seed: int, quiet: bool) -> None:
    """Fit the surrogate to a collected dataset, holding out a fifth of its episodes for `eval`."""
    from .surrogate.train import TrainSettings, train_surrogate

    overrides = {k: v for k, v in (("d_model", d_model), ("n_layers", layers)) if v is not None}
    with exit_codes():
        settings = TrainSettings(epochs=epochs, lr=lr, seed=seed, model=overrides)
        result = train_surrogate(data, out, settings, log=None if quiet else click.echo)
    t = result["spec"]["training"]
    click.echo(f"model: {out} (best epoch {t['best_epoch']}, validation loss {t['validation_loss']:.4f}, {t['train_s']:.0f} s)")


@distill.command(name="eval")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the figures as JSON to this file.")
def evaluate_command(model: str, data: str, out: str | None) -> None:
    """Compare the surrogate with naive baselines on the episodes held out from its training."""
    import json

    from .surrogate.evaluate import evaluate, format_evaluation

    with exit_codes():
        result = evaluate(model, data)
    click.echo(format_evaluation(result))
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
        click.echo(f"written: {out}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir: str) -> None:
    """Rebuild report.md and the plots of a finished run directory."""
    from .reporting import write_report

    click.echo(f"report: {write_report(Path(run_dir))}")


if __name__ == "__main__":
    main()
