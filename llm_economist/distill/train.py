"""Fit the surrogate to collected decisions, and the naive networks it is judged against.

Sequences are stacked into one population per batch: agents of different episodes sit side by
side with their own neighbour lists (offset into the stack), so the graph is a disjoint union
and nobody attends across episodes. A batch is rolled forward through its T periods: the context
of period t comes from the last week the real worker was shown (its recorded outcome of t - 1,
or the random week collection showed it in its place), while memory
and expressions are the model's own. The loss is the cross-entropy of the recorded hour
distribution under the predicted one, plus the squared error of the reasoning channels (on a
0-1 scale) where they were stated. Replies that were fallbacks, not decisions, carry no loss.

The held-out test episodes are chosen before anything is fitted and stored with the model;
a slice of the remaining episodes decides early stopping.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..personas import SocialGraph
from .dataset import PlannerEpisode, load_sequences, read_meta
from ..surrogate.features import CATEGORICAL, NUMERIC, census_levels, context_features, n_context, persona_features
from ..surrogate.model import PersonaEmbedding, SurrogateConfig, SurrogatePopulation

Tensor = torch.Tensor

__all__ = ["TrainSettings", "Batch", "stack", "IsolatedAgentNetwork", "rollout", "fit", "train_surrogate", "split_episodes"]


@dataclass
class TrainSettings:
    epochs: int = 400
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_sequences: int = 32  # sequences stacked per gradient step
    test_fraction: float = 0.2  # episodes held out for `distill eval`
    validation_fraction: float = 0.15  # of the rest, for early stopping
    patience: int = 40  # epochs without a better validation loss before stopping
    channel_weight: float = 1.0
    seed: int = 0
    model: dict = field(default_factory=dict)  # SurrogateConfig overrides (d_model, n_layers, ...)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_sequences < 1 or self.patience < 1:
            raise ValueError("training: epochs, batch_sequences and patience must be >= 1")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError("training: lr must be positive and weight_decay non-negative")
        if not (0 < self.test_fraction < 1 and 0 < self.validation_fraction < 1):
            raise ValueError("training: test_fraction and validation_fraction must lie in (0, 1)")


@dataclass
class Batch:
    """Several sequences stacked into one population of N agents over T periods."""

    persona_num: Tensor  # (N, F)
    persona_cat: Tensor  # (N, C)
    graph: SocialGraph
    wage: Tensor  # (N,) float64
    context: Tensor  # (T, N, n_context)
    target: Tensor  # (T, N, B)
    decided: Tensor  # (T, N) bool
    channels: Tensor  # (T, N, C) NaN where not stated
    segments: list[int]  # agents per stacked sequence, in order

    @property
    def steps(self) -> int:
        return self.context.shape[0]


def sequence_context(sequence: PlannerEpisode, bins: Tensor) -> Tensor:
    """(T, N, n_context): period t sees the mechanism of t and the last week as it was shown then."""
    rows = []
    for t, policy in enumerate(sequence.policies):
        last_hours = sequence.last_hours[t] if t else None
        last_income = sequence.last_income[t] if t else None
        rows.append(context_features(sequence.wage, policy, sequence.expected_transfer[t], last_hours, last_income, bins))
    return torch.stack(rows)


def stack(sequences: list[PlannerEpisode], bins: Tensor, levels: dict[str, list[str]]) -> Batch:
    """One batch from sequences of equal length; neighbour ids are offset so episodes stay apart."""
    lengths = {s.steps for s in sequences}
    if len(lengths) != 1:
        raise ValueError(f"stack: sequences must have the same number of steps, got {sorted(lengths)}")
    width = max(s.graph.width for s in sequences)
    neighbours, edge_types, offset = [], [], 0
    for s in sequences:
        pad = width - s.graph.width
        nb = F.pad(s.graph.neighbours, (0, pad), value=-1)
        neighbours.append(torch.where(nb >= 0, nb + offset, nb))
        edge_types.append(F.pad(s.graph.edge_type.long(), (0, pad), value=-1))
        offset += s.n
    numeric, codes = zip(*(persona_features(s.table, levels) for s in sequences))
    return Batch(
        persona_num=torch.cat(numeric),
        persona_cat=torch.cat(codes),
        graph=SocialGraph(torch.cat(neighbours), torch.cat(edge_types).to(torch.int8)),
        wage=torch.cat([s.wage for s in sequences]),
        context=torch.cat([sequence_context(s, bins) for s in sequences], dim=1).float(),
        target=torch.cat([s.target for s in sequences], dim=1).float(),
        decided=torch.cat([s.decided for s in sequences], dim=1),
        channels=torch.cat([s.channels for s in sequences], dim=1).float(),
        segments=[s.n for s in sequences],
    )


class IsolatedAgentNetwork(nn.Module):
    """A naive baseline: each agent alone, no graph and no memory.

    With ``use_context=False`` it sees only the persona (the persona-only baseline); with
    ``use_context=True`` it also sees this period's mechanism context, which isolates what
    the graph and memory add.
    """

    def __init__(self, config: SurrogateConfig, use_context: bool) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.persona = PersonaEmbedding(config)
        self.context = nn.Linear(config.n_context, d) if use_context else None
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.GELU())
        self.hours_head = nn.Linear(d, config.n_hour_bins)
        self.channels_head = nn.Linear(d, config.n_channels)

    def forward(self, persona_num: Tensor, persona_cat: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        x = self.persona(persona_num, persona_cat)  # (N, d)
        if self.context is not None:
            x = x + self.context(context)
        z = self.mlp(x)
        return self.hours_head(z), 1.0 + 4.0 * torch.sigmoid(self.channels_head(z))


def rollout(model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """(T, N, B) hour logits and (T, N, C) channels over the batch's periods."""
    logits, channels = [], []
    if isinstance(model, SurrogatePopulation):
        n = batch.persona_num.shape[0]
        memory, expression = model.init_memory(n), model.init_expression(n)
        for t in range(batch.steps):
            out = model(batch.persona_num, batch.persona_cat, batch.context[t], expression, memory, batch.graph)
            memory, expression = out.memory, out.expression
            logits.append(out.hour_logits)
            channels.append(out.channels)
    else:
        for t in range(batch.steps):
            hour_logits, stated = model(batch.persona_num, batch.persona_cat, batch.context[t])
            logits.append(hour_logits)
            channels.append(stated)
    return torch.stack(logits), torch.stack(channels)


def loss_terms(model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """Mean hour cross-entropy (nats) over decisions, and mean channel squared error (0-1 scale)."""
    logits, channels = rollout(model, batch)
    cross_entropy = -(batch.target * F.log_softmax(logits, dim=-1)).sum(-1)  # (T, N)
    hour_loss = cross_entropy[batch.decided].mean()
    stated = ~torch.isnan(batch.channels) & batch.decided.unsqueeze(-1)
    if stated.any():
        channel_loss = (((channels - batch.channels.nan_to_num()) / 4.0) ** 2)[stated].mean()
    else:
        channel_loss = torch.zeros((), dtype=hour_loss.dtype)
    return hour_loss, channel_loss


def split_episodes(episodes: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held out): a seeded random ``fraction`` of the episodes, at least one, held out."""
    rng = np.random.default_rng(seed)
    shuffled = [int(e) for e in rng.permutation(sorted(episodes))]
    held = max(1, round(fraction * len(shuffled)))
    if held >= len(shuffled):
        raise ValueError(f"training: {len(shuffled)} episodes are too few to hold {held} out; collect more")
    return sorted(shuffled[held:]), sorted(shuffled[:held])


def batches(sequences: list[PlannerEpisode], size: int, bins: Tensor, levels: dict, rng: np.random.Generator | None) -> list[Batch]:
    """Stacked batches of at most ``size`` sequences of equal length (shuffled when rng is given)."""
    by_length: dict[int, list[PlannerEpisode]] = {}
    for s in sequences:
        by_length.setdefault(s.steps, []).append(s)
    result = []
    for group in by_length.values():
        order = rng.permutation(len(group)) if rng is not None else np.arange(len(group))
        for start in range(0, len(group), size):
            result.append(stack([group[i] for i in order[start : start + size]], bins, levels))
    return result


Progress = Callable[[int, int, str], None]  # (epochs done, most epochs, status)


def fit(model: nn.Module, train: list[Batch], validation: list[Batch], settings: TrainSettings, progress: Progress | None = None) -> dict:
    """AdamW with early stopping on the validation loss; the model ends at its best epoch. `progress`
    hears of every epoch."""
    torch.manual_seed(settings.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    best, best_state, best_epoch, history = math.inf, copy.deepcopy(model.state_dict()), 0, []
    rng = np.random.default_rng(settings.seed)
    started = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        for k in rng.permutation(len(train)):
            hour_loss, channel_loss = loss_terms(model, train[k])
            optimiser.zero_grad()
            (hour_loss + settings.channel_weight * channel_loss).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
        model.eval()
        with torch.no_grad():
            terms = [loss_terms(model, b) for b in validation]
        hour = float(np.mean([float(h) for h, _ in terms]))
        channel = float(np.mean([float(c) for _, c in terms]))
        total = hour + settings.channel_weight * channel
        history.append({"epoch": epoch, "validation_hour_loss": hour, "validation_channel_loss": channel})
        if total < best - 1e-6:
            best, best_state, best_epoch = total, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= settings.patience:
            break
        if progress is not None:
            progress(epoch + 1, settings.epochs, f"validation hour loss {hour:.4f}, channel {channel:.4f}; best epoch {best_epoch}")
    model.load_state_dict(best_state)
    model.eval()
    return {"best_epoch": best_epoch, "epochs_run": len(history), "validation_loss": best,
            "train_s": time.perf_counter() - started, "history": history}


def surrogate_config(meta: dict, overrides: dict) -> SurrogateConfig:
    levels = census_levels()
    return SurrogateConfig(
        n_persona_features=len(NUMERIC),
        n_categories=tuple(len(levels[name]) for name in CATEGORICAL),
        n_context=n_context(len(meta["bins"])),
        n_hour_bins=len(meta["bins"]),
        n_channels=max(1, len(meta["channels"])),
        **overrides,
    )


SUPPORT_TAIL = 0.025  # share of the traced marginal rates left outside the support at each end


def rate_support(sequences: list[PlannerEpisode]) -> list[float]:
    """[low, high]: the marginal rates the traces' schedules showed, less a 2.5% tail at each end.

    A surrogate has seen nothing of what lies beyond: at a rate of exactly 100% a budget menu turns
    flat above the kink, which a language model can read as a different question altogether, while
    schedules drawn from the box almost never reach it. Planners against the surrogate keep their
    rates inside this range (see `studies.transfer`)."""
    rates = torch.cat([p.schedule.rates.reshape(-1) for s in sequences for p in s.policies]).double()
    low, high = torch.quantile(rates, torch.tensor([SUPPORT_TAIL, 1 - SUPPORT_TAIL], dtype=torch.float64))
    return [round(float(low), 4), round(float(high), 4)]


def train_surrogate(data: str | Path, out: str | Path, settings: TrainSettings | None = None, progress: Progress | None = None) -> dict:
    """Fit the surrogate on the training episodes of ``data`` and save it to ``out``."""
    settings = settings or TrainSettings()
    meta = read_meta(data)
    sequences = load_sequences(data)
    episodes = sorted({s.episode for s in sequences})
    kept, test = split_episodes(episodes, settings.test_fraction, settings.seed)
    train_eps, validation_eps = split_episodes(kept, settings.validation_fraction, settings.seed + 1)
    bins, levels = torch.tensor(meta["bins"], dtype=torch.float64), census_levels()
    rng = np.random.default_rng(settings.seed)
    train = batches([s for s in sequences if s.episode in train_eps], settings.batch_sequences, bins, levels, rng)
    validation = batches([s for s in sequences if s.episode in validation_eps], settings.batch_sequences, bins, levels, None)
    torch.manual_seed(settings.seed)
    model = SurrogatePopulation(surrogate_config(meta, settings.model))
    result = fit(model, train, validation, settings, progress)
    fitted = [s for s in sequences if s.episode in train_eps or s.episode in validation_eps]
    spec = {
        "bins": meta["bins"],
        "channels": meta["channels"],
        "levels": levels,
        "workers": meta["workers"],
        "source": {k: meta[k] for k in ("fingerprint", "model", "endpoints", "mechanism")},
        "episodes": {"train": train_eps, "validation": validation_eps, "test": test},
        "rate_support": rate_support(fitted),
        "training": {**asdict(settings), **{k: v for k, v in result.items() if k != "history"}},
    }
    model.save(out, meta=spec)
    return {"spec": spec, "history": result["history"]}
