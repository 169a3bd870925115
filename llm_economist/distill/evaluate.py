"""How well a trained surrogate reproduces decisions under mechanisms it never saw.

The test episodes are the ones held out when the model was trained (all episodes when the
dataset is a different one). Every figure is computed for the surrogate and for three
reference predictors fitted on the same training episodes:

- ``marginal``: the training decisions' average hour distribution and channels, for everyone;
- ``persona_only``: a network that sees the persona and nothing else (no mechanism, graph or memory);
- ``isolated``: persona and this period's mechanism context, but no graph and no memory.

Figures: Jensen-Shannon divergence of each agent's hour distribution (bits, 0 = identical,
1 = disjoint) and of the population's average distribution per period, the error of mean
hours per period and per agent, the mean hours of the bottom and top wage deciles, the mean
probability of the most likely hour bin (how sharp the distributions are), and the
reasoning channels' mean absolute error and exact agreement (rounded prediction = stated).
``signal`` measures how much the recorded decisions move with the mechanism at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..economy.labour import jensen_shannon
from ..economy.utility import FULL_TIME_HOURS
from .dataset import load_sequences, read_meta
from ..surrogate.features import census_levels
from ..surrogate.model import SurrogatePopulation
from .train import Batch, IsolatedAgentNetwork, TrainSettings, batches, fit, rollout

Tensor = torch.Tensor

__all__ = ["evaluate", "format_evaluation"]


def _metrics(probs: Tensor, channels: Tensor, batch: Batch, bins: Tensor) -> dict[str, float]:
    """Figures of one predictor on one batch; probs (T, N, B), channels (T, N, C)."""
    decided = batch.decided
    target = batch.target
    per_agent_js = torch.from_numpy(jensen_shannon(probs, target))[decided]
    hours_pred = probs @ bins  # (T, N)
    hours_true = target @ bins
    agent_error = (hours_pred - hours_true)[decided].abs()
    population_js, mean_error = [], []
    start = 0
    for size in batch.segments:
        part = slice(start, start + size)
        start += size
        for t in range(batch.steps):
            mask = decided[t, part]
            if mask.any():
                population_js.append(jensen_shannon(probs[t, part][mask].mean(0), target[t, part][mask].mean(0)))
                mean_error.append(float((hours_pred[t, part][mask].mean() - hours_true[t, part][mask].mean()).abs()))
    wage = batch.wage.float().expand_as(decided)[decided]
    low, high = torch.quantile(wage, 0.1), torch.quantile(wage, 0.9)
    pred, true = hours_pred[decided], hours_true[decided]
    result = {
        "per_agent_js_bits": float(per_agent_js.mean()),
        "population_js_bits": float(np.mean(population_js)),
        "mean_hours_abs_error": float(np.mean(mean_error)),
        "agent_hours_mae": float(agent_error.mean()),
        "bottom_decile_hours_pred": float(pred[wage <= low].mean()),
        "bottom_decile_hours_true": float(true[wage <= low].mean()),
        "top_decile_hours_pred": float(pred[wage >= high].mean()),
        "top_decile_hours_true": float(true[wage >= high].mean()),
        "top_bin_pred": float(probs[decided].max(-1).values.mean()),
        "top_bin_true": float(target[decided].max(-1).values.mean()),
    }
    stated = ~torch.isnan(batch.channels) & decided.unsqueeze(-1)
    if stated.any():
        pred_channels, true_channels = channels[stated], batch.channels[stated]
        result["channel_mae"] = float((pred_channels - true_channels).abs().mean())
        result["channel_agreement"] = float((pred_channels.round() == true_channels).float().mean())
    return result


def _predict(model: torch.nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        logits, channels = rollout(model, batch)
    return torch.softmax(logits, dim=-1), channels


def _marginal(train: list[Batch]) -> tuple[Tensor, Tensor]:
    """Average recorded hour distribution and channels over the training decisions."""
    dist = torch.cat([b.target[b.decided] for b in train]).mean(0)
    channels = torch.cat([b.channels[b.decided] for b in train])
    return dist, torch.nanmean(channels, dim=0) if channels.shape[-1] else channels.mean(0)


def _correlation(x: Tensor, y: Tensor) -> float:
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    scale = float(torch.sqrt((x**2).sum() * (y**2).sum()))
    return float((x * y).sum()) / scale if scale > 0 else 0.0


def full_time_rate(batch: Batch, bins: Tensor) -> Tensor:
    """(T, N) each agent's marginal rate just below full time, read off its context's keep shares."""
    full = int((bins - FULL_TIME_HOURS).abs().argmin())
    keep = batch.context[..., : bins.shape[0]]  # (T, N, B) share of full-time pay kept at each bin
    return 1.0 - (keep[..., full] - keep[..., full - 1]) / ((bins[full] - bins[full - 1]) / FULL_TIME_HOURS)


def rate_response(batches_: list[Batch], expected_hours: list[Tensor], bins: Tensor) -> dict[str, float]:
    """Least-squares slope of expected hours on the full-time marginal rate over all decisions,
    in hours per 10 percentage points, with its standard error and the R² of the fit."""
    x = torch.cat([full_time_rate(b, bins)[b.decided] for b in batches_]).double()
    y = torch.cat([h[b.decided] for h, b in zip(expected_hours, batches_)]).double()
    x_c, y_c = x - x.mean(), y - y.mean()
    slope = float((x_c * y_c).sum() / (x_c**2).sum())
    residual = y_c - slope * x_c
    se = float(torch.sqrt((residual**2).sum() / (len(x) - 2) / (x_c**2).sum()))
    r2 = float(1 - (residual**2).sum() / (y_c**2).sum()) if float((y_c**2).sum()) > 0 else 0.0
    return {"hours_per_10pp_marginal_rate": 0.1 * slope, "hours_per_10pp_marginal_rate_se": 0.1 * se, "rate_r2": r2}


def signal(batches_: list[Batch], bins: Tensor) -> dict[str, float]:
    """How much the recorded decisions depend on each kind of input, measured on the data alone.

    - ``rate_response`` of the recorded expected hours;
    - the correlation of an agent's expected hours with its own last hours (what memory can use)
      and with its contacts' mean last hours (what the graph can use), from the second period on.
    """
    last_hours_column = bins.shape[0] + 2  # context: keep shares, transfer, marginal rate, last hours / top bin, first period
    expected = [b.target @ bins.float() for b in batches_]  # (T, N) each
    own, own_last, social, social_last = [], [], [], []
    for b, hours in zip(batches_, expected):
        for t in range(1, b.steps):
            last = b.context[t, :, last_hours_column] * bins[-1]
            mask = b.decided[t]
            own.append(hours[t][mask])
            own_last.append(last[mask])
            heard = b.graph.mask().any(dim=1) & mask
            social.append(hours[t][heard])
            social_last.append(b.graph.neighbour_mean(last)[heard])
    y = torch.cat([h[b.decided] for h, b in zip(expected, batches_)])
    result = {**rate_response(batches_, expected, bins), "hours_mean": float(y.mean()), "hours_sd": float(y.std()), "decisions": int(len(y))}
    if own:
        result["corr_with_own_last_hours"] = _correlation(torch.cat(own), torch.cat(own_last))
        result["corr_with_contacts_last_hours"] = _correlation(torch.cat(social), torch.cat(social_last))
    return result


def evaluate(model_path: str | Path, data: str | Path, baseline_settings: TrainSettings | None = None) -> dict:
    """Figures of the surrogate at ``model_path`` and the three references on the test episodes of ``data``."""
    model = SurrogatePopulation.load(model_path)
    spec = model.meta
    meta = read_meta(data)
    if list(meta["bins"]) != list(spec["bins"]):
        raise ValueError(f"{data}: hour bins {meta['bins']} differ from the model's {spec['bins']}")
    sequences = load_sequences(data)
    same_source = meta["fingerprint"] == spec["source"]["fingerprint"]
    test_eps = set(spec["episodes"]["test"]) if same_source else {s.episode for s in sequences}
    train_eps = set(spec["episodes"]["train"]) if same_source else set()
    validation_eps = set(spec["episodes"]["validation"]) if same_source else set()
    bins = torch.tensor(spec["bins"], dtype=torch.float64)
    levels = spec.get("levels") or census_levels()
    size = spec["training"]["batch_sequences"]
    test = batches([s for s in sequences if s.episode in test_eps], size, bins, levels, None)
    if not test:
        raise ValueError(f"{data}: none of the model's test episodes are in this dataset")
    predictors = {"surrogate": [_predict(model, b) for b in test]}
    if train_eps:
        settings = baseline_settings or TrainSettings(**{k: v for k, v in spec["training"].items() if k in TrainSettings.__dataclass_fields__})
        rng = np.random.default_rng(settings.seed)
        train = batches([s for s in sequences if s.episode in train_eps], size, bins, levels, rng)
        validation = batches([s for s in sequences if s.episode in validation_eps], size, bins, levels, None)
        dist, channels = _marginal(train)
        predictors["marginal"] = [
            (dist.expand_as(b.target), channels.expand(*b.decided.shape, -1) if channels.numel() else b.channels) for b in test
        ]
        for name, use_context in (("persona_only", False), ("isolated", True)):
            torch.manual_seed(settings.seed)
            reference = IsolatedAgentNetwork(model.config, use_context)
            fit(reference, train, validation, settings)
            predictors[name] = [_predict(reference, b) for b in test]
    figures = {}
    for name, outputs in predictors.items():
        per_batch = [_metrics(p.float(), c.float(), b, bins.float()) for (p, c), b in zip(outputs, test)]
        weights = np.array([float(b.decided.sum()) for b in test])
        figures[name] = {k: float(np.average([m[k] for m in per_batch], weights=weights)) for k in per_batch[0]}
        # The response a planner would see: the predicted hours' slope on the marginal rate.
        predicted_hours = [p.float() @ bins.float() for p, _ in outputs]
        figures[name]["hours_per_10pp_marginal_rate"] = rate_response(test, predicted_hours, bins.float())["hours_per_10pp_marginal_rate"]
    return {
        "model": str(model_path),
        "data": str(data),
        "workers": meta["workers"],
        "test_episodes": sorted(test_eps),
        "test_decisions": int(sum(float(b.decided.sum()) for b in test)),
        "fallback_share": float(1 - sum(float(b.decided.sum()) for b in test) / sum(b.decided.numel() for b in test)),
        "figures": figures,
        "signal": signal(test, bins.float()),
    }


ROWS = (
    ("per_agent_js_bits", "JS divergence per agent (bits)", ".3f"),
    ("population_js_bits", "JS divergence, population (bits)", ".4f"),
    ("mean_hours_abs_error", "mean hours error (h/week)", ".2f"),
    ("agent_hours_mae", "per-agent hours error (h/week)", ".2f"),
    ("bottom_decile_hours_pred", "bottom wage decile, hours", ".1f"),
    ("top_decile_hours_pred", "top wage decile, hours", ".1f"),
    ("top_bin_pred", "top-bin probability", ".3f"),
    ("hours_per_10pp_marginal_rate", "hours per 10 points of marginal rate", "+.2f"),
    ("channel_mae", "channels, mean abs error (1-5)", ".2f"),
    ("channel_agreement", "channels, exact agreement", ".1%"),
)


ERRORS = ("per_agent_js_bits", "population_js_bits", "mean_hours_abs_error", "agent_hours_mae")
SHORT_LABELS = {key: label.split(" (")[0] for key, label, _ in ROWS}


def _margins(figures: dict) -> list[str]:
    """One line per reference: how much lower (or higher) the surrogate's errors are."""
    lines = []
    for name in (n for n in figures if n != "surrogate"):
        parts = []
        for key in ERRORS:
            ours, theirs = figures["surrogate"][key], figures[name][key]
            change = (theirs - ours) / theirs if theirs > 0 else 0.0
            parts.append(f"{SHORT_LABELS[key]} {abs(change):.0%} {'lower' if change >= 0 else 'higher'}")
        lines.append(f"Surrogate vs {name}: " + "; ".join(parts) + ".")
    return lines


def format_evaluation(result: dict) -> str:
    """A Markdown table: one row per figure, one column per predictor, then the signal line."""
    figures = result["figures"]
    names = list(figures)
    # The recorded decisions' own values, where a figure has one.
    recorded = {k.replace("_true", "_pred"): v for k, v in figures["surrogate"].items() if k.endswith("_true")}
    recorded["hours_per_10pp_marginal_rate"] = result["signal"]["hours_per_10pp_marginal_rate"]
    lines = ["| figure | recorded | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for key, label, fmt in ROWS:
        if key not in figures["surrogate"]:
            continue
        truth = format(recorded[key], fmt) if key in recorded else ""
        lines.append(f"| {label} | {truth} | " + " | ".join(format(figures[n][key], fmt) for n in names) + " |")
    lines += ["", *_margins(figures)]
    s = result["signal"]
    lines.append("")
    lines.append(
        f"Signal: {s['decisions']} test decisions; expected hours move {s['hours_per_10pp_marginal_rate']:+.2f} "
        f"± {s['hours_per_10pp_marginal_rate_se']:.2f} h/week per 10 points of marginal rate at full time "
        f"(R² {s['rate_r2']:.3f}; mean {s['hours_mean']:.1f} h, s.d. {s['hours_sd']:.1f} h)"
        + (
            f"; correlation with the agent's own last hours {s['corr_with_own_last_hours']:+.2f}, "
            f"with its contacts' last hours {s['corr_with_contacts_last_hours']:+.2f}."
            if "corr_with_own_last_hours" in s else "."
        )
    )
    return "\n".join(lines)
