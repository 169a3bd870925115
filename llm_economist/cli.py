"""`llm-economist`: run a planner, compare planners, probe a population's behaviour, welfare
sensitivity, distil a population, tune a worker model, rebuild a report.

Exit codes: 0 success; 1 a run failed; 2 invalid config, arguments or output directory (the
message names the field or option); 3 the language-model server is unusable (refused
credentials, unknown model, nothing listening, or too many fallbacks in a row): the run stopped,
what finished is written and reported, and `--resume` continues once the server is fixed;
130 interrupted (finished tax years are checkpointed; rerun with --resume).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from . import __version__
from .config import ConfigError
from .planner_factory import load_config

PROBE_AGENTS = {"llm": 24, "other": 500}  # the behaviour probe's default sample
OVERRIDE_HELP = "Override a config field, e.g. --set economy.years=3 --set population.n_agents=500 (repeatable)."
EXIT_SERVER_UNUSABLE = 3


@contextmanager
def progress_bars(quiet: bool) -> Iterator:
    """A callback `(stage, done, total, status="")` that draws one bar per stage (nothing when quiet);
    the bars close with the block."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int, status: str = "") -> None:
        if quiet:
            return
        bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage))
        bar.update(done - bar.n)
        if status:
            bar.set_postfix_str(status, refresh=False)

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()


@contextmanager
def exit_codes(on_interrupt: str = "interrupted") -> Iterator[None]:
    """Turn the errors a command can meet into the exit codes above, with the message on stderr."""
    from .llm import LLMError, LLMUnavailable
    from .runner import ResumeError

    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"\n{on_interrupt}", err=True)
        sys.exit(130)
    except LLMUnavailable as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_SERVER_UNUSABLE)
    except (ResumeError, ConfigError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except (LLMError, FileNotFoundError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except ValueError as err:  # bad input met while building the run: mechanism options, planner labels, parameters
        click.echo(f"error: {err}", err=True)
        sys.exit(2)


def _config(path: str, overrides: tuple[str, ...], seeds: int | None = None):
    """The validated config, or a usage error (exit 2) naming the bad field."""
    if seeds is not None:
        overrides = (*overrides, f"seeds={seeds}")
    try:
        return load_config(path, list(overrides))
    except ConfigError as err:
        raise click.UsageError(str(err)) from None


def _execute(
    config_path: str, out: str | None, overrides: tuple[str, ...], seeds: int | None, resume: bool, overwrite: bool,
    labels: list[str] | None, quiet: bool, behaviour: str | None = None, address: str = "none",
) -> None:
    """Load, run every seed, report; labels None runs every planner, [] only the config's first."""
    from .studies.comparison import run_comparison
    from .reporting import write_report
    from .reporting.report import console_table, fallback_warning

    config = _config(config_path, overrides, seeds)
    if labels == []:
        labels = [config.planners[0].name]
    out_dir = Path(out) if out else Path("runs") / config.name
    with exit_codes(f"interrupted; finished tax years are saved. Continue with --resume --out {out_dir}"):
        summary = run_comparison(config, out_dir, labels, resume=resume, overwrite=overwrite, progress=not quiet,
                                 behaviour=Path(behaviour) if behaviour else None, address=address)
    report = write_report(out_dir)
    if not quiet:
        click.echo(console_table(summary))
    warning = fallback_warning(summary)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"report: {report}")
    if summary.get("stopped"):
        click.echo(
            f"error: the run stopped early: {summary['stopped']}\n"
            f"What finished is in the report. Once the server is fixed: --resume --out {out_dir}",
            err=True,
        )
        sys.exit(EXIT_SERVER_UNUSABLE)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="llm-economist", message="%(prog)s %(version)s")
def main() -> None:
    """Mechanism design in economies of language-model and rational agents."""


SEEDS_HELP = "Seeds per planner (seed, seed+1, ...); 3 or more give 95% intervals [default: the config's `seeds`, 1]."
RESUME_HELP = "Continue an interrupted run in --out from its last finished tax year (adding seeds is allowed)."
OVERWRITE_HELP = "Replace the files of an earlier run in --out (without it a non-empty --out is refused)."


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [default: runs/<config name>].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
@click.option("--planner", default=None, help="Label of the planner to run [default: the first in the config].")
@click.option("--seeds", type=click.IntRange(1, 100), default=None, help=SEEDS_HELP)
@click.option("--resume", is_flag=True, help=RESUME_HELP)
@click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bar or table (warnings and errors still print).")
def run(config: str, out: str | None, overrides: tuple[str, ...], planner: str | None, seeds: int | None, resume: bool,
        overwrite: bool, quiet: bool) -> None:
    """Run one planner (and the no-tax baseline) against the configured population and write a report."""
    _execute(config, out, overrides, seeds, resume, overwrite, [planner] if planner else [], quiet)


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--planners", default=None, help="Comma-separated planner labels to compare [default: all in the config].")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [default: runs/<config name>].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
@click.option("--seeds", type=click.IntRange(1, 100), default=None, help=SEEDS_HELP)
@click.option("--resume", is_flag=True, help=RESUME_HELP)
@click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bar or table (warnings and errors still print).")
@click.option("--behaviour", type=click.Path(exists=True, file_okay=False), default=None,
              help="Directory of a `behaviour` probe of this config's language-model population, for the report.")
@click.option("--address", default="none", metavar="none|local|auto|HOST:PORT",
              help="Where seeds run: here, one after another; a Ray instance started on this machine; or a Ray cluster to join.")
def compare(config: str, planners: str | None, out: str | None, overrides: tuple[str, ...], seeds: int | None, resume: bool,
            overwrite: bool, quiet: bool, behaviour: str | None, address: str) -> None:
    """Run several planners on the same populations and seeds, and compare them with 95% intervals in one report.

    The report states how the population responds to taxes: probed in seconds for rational, bounded
    and surrogate workers, read from --behaviour for language-model workers.
    """
    labels = [p.strip() for p in planners.split(",") if p.strip()] if planners else None
    _execute(config, out, overrides, seeds, resume, overwrite, labels, quiet, behaviour, address)


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--grid", "grid", multiple=True, required=True, metavar="KEY=V1,V2,...",
              help="A config field and the values to sweep it over, e.g. --grid economy.elasticity=0.2,0.4 (repeatable).")
@click.option("--seeds", type=click.IntRange(1, 100), default=3, help="Seeds per grid point (seed, seed+1, ...).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [default: runs/<config name>_sweep].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
@click.option("--address", default="local", metavar="local|auto|HOST:PORT|none",
              help="Where cells run: a Ray instance started on this machine, a Ray cluster to join, or `none`: here, one after another.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(config: str, grid: tuple[str, ...], seeds: int, out: str | None, overrides: tuple[str, ...], address: str,
          quiet: bool) -> None:
    """Compare the config's planners at every point of a grid of settings and every seed, each cell one task.

    Rerun the same command to resume: finished cells are reused.
    """
    from .studies.sweep import parse_grid, run_sweep

    base = _config(config, overrides)
    out_dir = Path(out) if out else Path("runs") / f"{base.name}_sweep"
    with exit_codes("interrupted; finished cells are kept. Rerun the same command to continue."):
        table = run_sweep(config, parse_grid(grid), seeds, out_dir, overrides, address, progress=not quiet)
    click.echo(f"{table['cell'].nunique()} cells: {out_dir / 'sweep.csv'}, {out_dir / 'sweep.md'}")


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [default: runs/<config name>/behaviour].")
@click.option("--agents", type=click.IntRange(2, 1_000_000), default=None,
              help=f"Agents probed per population [default: {PROBE_AGENTS['llm']} for language models, else {PROBE_AGENTS['other']}].")
@click.option("--seeds", type=click.IntRange(1, 100), default=1, help="Populations probed (seed, seed+1, ...), pooled.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
@click.option("--quiet", is_flag=True, help="No progress lines.")
def behaviour(config: str, out: str | None, agents: int | None, seeds: int, overrides: tuple[str, ...], quiet: bool) -> None:
    """Measure how the configured population responds to the mechanism, next to the evidence.

    Every sampled agent decides under the configured mechanism and under controlled variations of it
    (net-of-tax rate, wage, transfer, order of the options, its history); the figures are the
    elasticity of taxable income and of hours, the wage elasticity, the income effect, participation,
    salience, position bias, persistence and social pull, with 95% intervals. Writes behaviour.json,
    behaviour.md and plots. Language-model replies go through the response cache: a rerun is free.
    """
    from .studies.behaviour import headline, run_probe

    run_config = _config(config, overrides)
    out_dir = Path(out) if out else Path("runs") / run_config.name / "behaviour"
    n = agents or PROBE_AGENTS["llm" if run_config.workers.kind == "llm" else "other"]
    with exit_codes("interrupted; language-model replies so far are cached, so rerunning the same command is quick"):
        result = run_probe(run_config, out_dir, n, seeds, progress=None if quiet else lambda line: click.echo(line, err=True))
    click.echo(f"{run_config.workers.kind} workers, {result['n_agents']} agents: {headline(result)}")
    click.echo(f"behaviour: {out_dir / 'behaviour.md'}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--agent", type=int, required=True, help="Agent id (row of the population) to narrate; one of the traced agents.")
@click.option("--planner", default=None, help="Planner label whose run to narrate [default: the first in the traces].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=(
    "Override an llm.* field of the run's config, e.g. --set llm.base_urls=[http://HOST:PORT/v1] --set llm.model=NAME (repeatable)."))
@click.option("--max-tokens", type=click.IntRange(16, 32768), default=300, help=(
    "Most tokens the model may write; a longer account is cut at its last complete sentence, with a note."))
@click.option("--quiet", is_flag=True, help="No progress line.")
def narrate(run_dir: str, agent: int, planner: str | None, overrides: tuple[str, ...], max_tokens: int, quiet: bool) -> None:
    """Write a first-person account of one agent's run, grounded in its trace rows.

    Uses the run's `llm` settings (the embedded model unless the config names a server).
    """
    from .factory import llm_settings
    from .llm import open_client
    from .reporting.narrate import agent_record, model_label
    from .reporting.report import require_files
    from .reporting.narrate import narrate as write_narrative

    if any(not o.startswith("llm.") for o in overrides):
        raise click.BadParameter("narrate takes only llm.* fields; the others describe the finished run", param_hint="--set")
    run = Path(run_dir)
    with exit_codes():
        require_files(run, "config.yaml")
        config = _config(str(run / "config.yaml"), overrides)
        record = agent_record(run, config, agent, planner)
        if not quiet:
            click.echo(f"narrating agent {agent} under {record.planner} with {model_label(config.llm)} ...", err=True)
        with open_client(llm_settings(config, str(run / "llm_cache.sqlite"))) as client:
            path = write_narrative(record, config, client, max_tokens)
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

    The population and population_model are built exactly as `run` builds them; the workers must be
    differentiable in the tax rates (workers.kind = bounded or surrogate).
    """
    import json

    from .factory import make_config_mechanism
    from .studies.sensitivity import sensitivity_model, welfare_gradient

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
        population_model = sensitivity_model(run_config)
        gradient = welfare_gradient(population_model, mechanism, theta, horizon)
        welfare = float(population_model.evaluate(mechanism, theta.unsqueeze(0))[0])
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
@click.option("--address", default="none", metavar="none|local|auto|HOST:PORT",
              help="Where episodes run: here, one after another, or as Ray tasks (see `sweep`).")
@click.option("--explore", type=float, default=0.0, show_default=True,
              help="Chance per decision that a worker is shown a random last week instead of its own, "
                   "so the surrogate can learn what the last week itself does.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def collect(config: str, out: str, episodes: int, overrides: tuple[str, ...], address: str, explore: float, quiet: bool) -> None:
    """Record workers' decisions under randomised mechanisms; rerun the same command to resume."""
    from .distill.dataset import collect as collect_dataset

    run_config = _config(config, overrides)
    with exit_codes("interrupted; finished episodes are kept. Rerun the same command to continue."):
        collect_dataset(run_config, out, episodes, progress=not quiet, address=address, explore=explore)
    click.echo(f"dataset: {out}")


@distill.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Model file to write.")
@click.option("--epochs", type=int, default=400, help="Most passes over the training episodes (early stopping may end sooner).")
@click.option("--lr", type=float, default=3e-3, help="Learning rate (AdamW).")
@click.option("--weight-decay", type=float, default=1e-4, show_default=True, help="AdamW weight decay.")
@click.option("--batch-sequences", type=int, default=32, show_default=True, help="Episode sequences per gradient step.")
@click.option("--patience", type=int, default=40, show_default=True, help="Epochs without a better validation loss before stopping.")
@click.option("--d-model", type=int, default=None, help="Token width [default: the model's].")
@click.option("--layers", type=int, default=None, help="Graph-attention blocks [default: the model's].")
@click.option("--dropout", type=float, default=None, help="Dropout in the blocks [default: the model's, 0].")
@click.option("--seed", type=int, default=0, help="Seeds the test split, initialisation and batch order.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(data: str, out: str, epochs: int, lr: float, weight_decay: float, batch_sequences: int, patience: int,
          d_model: int | None, layers: int | None, dropout: float | None, seed: int, quiet: bool) -> None:
    """Fit the surrogate to a collected dataset, holding out a fifth of its episodes for `eval`."""
    from .distill.train import TrainSettings, train_surrogate

    overrides = {k: v for k, v in (("d_model", d_model), ("n_layers", layers), ("dropout", dropout)) if v is not None}
    with exit_codes(), progress_bars(quiet) as bars:
        settings = TrainSettings(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_sequences=batch_sequences,
                                 patience=patience, seed=seed, model=overrides)
        result = train_surrogate(data, out, settings, lambda done, most, status: bars("epochs (early stopping may end sooner)", done, most, status))
    t = result["spec"]["training"]
    click.echo(f"model: {out} (best epoch {t['best_epoch']}, validation loss {t['validation_loss']:.4f}, {t['train_s']:.0f} s)")


@distill.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--behaviour", "measured", type=click.Path(exists=True, file_okay=False), required=True,
              help="A `behaviour` probe of the language-model workers CONFIG describes (use another seed than the probe you will compare with).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Model file to write [default: MODEL itself].")
@click.option("--agents", type=int, default=500, show_default=True, help="Surrogate agents probed per trial scale.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
def calibrate(model: str, config: str, measured: str, out: str | None, agents: int, overrides: tuple[str, ...]) -> None:
    """Fit the surrogate's wording noise to the spread of individual responses the probe measured."""
    from .distill.calibrate import calibrate_wording

    with exit_codes():
        record = calibrate_wording(model, _config(config, overrides), Path(measured), out, agents, log=click.echo)
    click.echo(f"wording_sd {record['sd']:.4f}: spread {record['achieved_response_sd']:.3f} against the measured "
               f"{record['target_response_sd']:.3f}; written to {out or model}")


@distill.command(name="eval")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the figures as JSON to this file.")
def evaluate_command(model: str, data: str, out: str | None) -> None:
    """Compare the surrogate with naive baselines on the episodes held out from its training."""
    import json

    from .distill.evaluate import evaluate, format_evaluation

    with exit_codes():
        result = evaluate(model, data)
    click.echo(format_evaluation(result))
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
        click.echo(f"written: {out}")


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Adapter directory: adapter.gguf (llama.cpp), adapter/ (peft), tune.json, card.md, loss.png.")
@click.option("--base-model", type=click.Path(exists=True), default=None,
              help="The model to tune: a Hugging Face directory or a GGUF file [default: the embedded SmolLM2 GGUF].")
@click.option("--episodes", type=int, default=40, show_default=True, help="Episodes of the target population; each a new census sample and graph.")
@click.option("--explore", type=float, default=0.35, show_default=True, help="Chance per decision that a worker is shown a random last week.")
@click.option("--held-out", type=float, default=0.1, show_default=True, help="Share of the episodes held out for early stopping.")
@click.option("--rank", type=int, default=8, show_default=True, help="LoRA rank.")
@click.option("--alpha", type=float, default=16.0, show_default=True, help="LoRA alpha (the update is scaled by alpha / rank).")
@click.option("--layers", type=int, default=8, show_default=True, help="Top decoder layers that carry adapters; those below run once per prompt.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate (AdamW, cosine decay).")
@click.option("--epochs", type=int, default=3, show_default=True, help="Most passes over the training prompts.")
@click.option("--batch", type=int, default=8, show_default=True, help="Prompts per optimiser step.")
@click.option("--patience", type=int, default=2, show_default=True, help="Held-out evaluations without improvement before stopping.")
@click.option("--contrast-weight", type=float, default=0.0, show_default=True,
              help="Also show every decision under a second random mechanism (its twin) and weigh the error in the change of "
                   "expected hours between twins (squared, in bins) by this much; 0: no twins.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimiser steps (a time budget; the learning-rate schedule is unchanged).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the adapter's initialisation and the prompt order.")
@click.option("--device", default="cpu", show_default=True, help="cpu, or cuda[:i] for a model on a GPU.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=OVERRIDE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def tune(config: str, out: str, base_model: str | None, episodes: int, explore: float, held_out: float, rank: int, alpha: float,
         layers: int, lr: float, epochs: int, batch: int, patience: int, contrast_weight: float, max_steps: int | None, seed: int,
         device: str,
         overrides: tuple[str, ...],
         quiet: bool) -> None:
    """Tune a LoRA adapter so the worker model's scored hour choice answers as CONFIG's target
    population (its `workers` section), on the prompts of its decision format. Rerun the same
    command to resume."""
    from .llm.server import embedded_model_path
    from .tune import LoraSettings, tune_adapter

    run_config = _config(config, overrides)
    with exit_codes("interrupted; examples, cached layers and the last checkpoint are kept. Rerun the same command to continue."), \
            progress_bars(quiet) as progress:
        settings = LoraSettings(rank=rank, alpha=alpha, layers=layers, learning_rate=lr, epochs=epochs, batch=batch,
                                patience=patience, contrast_weight=contrast_weight, seed=seed, max_steps=max_steps)
        meta = tune_adapter(run_config, out, base_model or embedded_model_path(), episodes, explore, held_out, settings, device,
                            progress)
    base, tuned = meta["held_out"]["base"], meta["held_out"]["tuned"]
    click.echo(f"adapter: {out} (held-out Jensen-Shannon {base['held_out_js_bits']:.3f} -> {tuned['held_out_js_bits']:.3f} bits, "
               f"{sum(meta['wall_s'].values()) / 60:.0f} min of compute); card: {Path(out) / 'card.md'}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir: str) -> None:
    """Rebuild report.md and the plots of a finished run directory."""
    from .reporting import write_report

    with exit_codes():
        path = write_report(Path(run_dir))
    click.echo(f"report: {path}")


if __name__ == "__main__":
    main()
