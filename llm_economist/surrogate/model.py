"""The distilled population: one transformer step that maps every agent to its next decision.

Each period every agent is one token, and tokens talk only along the social graph:

1. token = PersonaEmbedding(persona) + W_c context + W_m memory           # (N, d)
   ``context`` is what the mechanism shows the agent this period (own marginal and average
   rate, rebate, last income, last hours, ...); ``memory`` is the agent's recurrent state.
2. ``n_layers`` pre-norm blocks, each  x += GraphAttention(LN(x));  x += MLP(LN(x)).
   GraphAttention lets agent i attend over its padded neighbour list only (gathered with
   ``index_select``, never an N x N tensor). The tie type adds a learned embedding to the keys
   and a learned per-head bias to the scores; the neighbours' expression vectors from the
   previous period are projected into the values. Padded slots get zero weight and an agent
   without neighbours receives a zero message. After L blocks an agent's output depends on
   agents at most L ties away and on nobody else.
3. Heads on LN(x): hour-bin logits, reasoning channels on the 1-5 scale
   (1 + 4 sigmoid), and the next expression vector (tanh) that neighbours read next period.
4. Memory: a GRU cell over the final token updates the state carried to the next period.

Everything is differentiable in ``context``, so a planner can take gradients of welfare with
respect to the mechanism through the whole population. All N agents are processed in one pass;
there is no chunking over agents, so peak memory is O(N K d).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from os import PathLike
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from llm_economist.personas.graph import EDGE_TYPES, SocialGraph

# The LLM workers choose hours from 10-hour bins 0, 10, ..., 80.
HOURS_PER_BIN = 10.0

__all__ = [
    "HOURS_PER_BIN",
    "SurrogateConfig",
    "SurrogateOutput",
    "PersonaEmbedding",
    "GraphAttention",
    "MLP",
    "Block",
    "Memory",
    "SurrogatePopulation",
    "hour_probabilities",
    "expected_hours",
]


@dataclass
class SurrogateConfig:
    n_persona_features: int  # continuous persona features (standardised log wage, age, ...)
    n_categories: tuple[int, ...] = ()  # category count of each categorical persona field
    n_context: int = 5  # mechanism context per agent (marginal rate, average rate, rebate, ...)
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_edge_types: int = len(EDGE_TYPES)
    d_expression: int = 8
    n_hour_bins: int = 9
    n_channels: int = 3  # fairness, trust, stress
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.n_categories = tuple(int(c) for c in self.n_categories)
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model: {self.d_model} must be divisible by n_heads={self.n_heads}")
        for name in ("n_persona_features", "n_context", "d_expression"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("d_model", "n_heads", "n_layers", "n_edge_types", "n_hour_bins", "n_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if any(c < 1 for c in self.n_categories):
            raise ValueError(f"n_categories: every count must be >= 1, got {self.n_categories}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")


class SurrogateOutput(NamedTuple):
    hour_logits: torch.Tensor  # (N, n_hour_bins)
    channels: torch.Tensor  # (N, n_channels) predicted mean on the 1-5 scale
    expression: torch.Tensor  # (N, d_expression) in (-1, 1), read by neighbours next period
    memory: torch.Tensor  # (N, d_model) recurrent state for the next period


class PersonaEmbedding(nn.Module):
    """Identity of each agent: a projection of its continuous features plus one embedding per categorical field."""

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.features = nn.Linear(config.n_persona_features, config.d_model)
        self.categories = nn.ModuleList(nn.Embedding(c, config.d_model) for c in config.n_categories)

    def forward(self, persona_num: torch.Tensor, persona_cat: torch.Tensor) -> torch.Tensor:
        x = self.features(persona_num)  # (N, d)
        for f, embed in enumerate(self.categories):
            x = x + embed(persona_cat[:, f])  # (N, d)
        return x


class GraphAttention(nn.Module):
    """Multi-head attention of each agent over its padded neighbour list, modulated by tie type."""

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        d, self.n_heads = config.d_model, config.n_heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.expression_value = nn.Linear(config.d_expression, d, bias=False)
        self.edge_key = nn.Embedding(config.n_edge_types, d)
        self.edge_bias = nn.Embedding(config.n_edge_types, config.n_heads)
        self.out = nn.Linear(d, d)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, expression: torch.Tensor, graph: SocialGraph) -> torch.Tensor:
        n, d = x.shape
        k_slots = graph.width
        h, dh = self.n_heads, d // self.n_heads
        mask = graph.mask()  # (N, K) True on real neighbours
        # Padded slots point at agent 0 and edge type 0; their weight is exactly zero below, so
        # neither their values nor their gradients leak into the result.
        index = graph.neighbours.clamp(min=0).reshape(-1)  # (N*K,)
        edge = graph.edge_type.long().clamp(min=0)  # (N, K)

        q = self.query(x).view(n, h, dh)  # (N, H, dh)
        k = self.key(x).index_select(0, index).view(n, k_slots, d)  # (N, K, d)
        k = (k + self.edge_key(edge)).view(n, k_slots, h, dh)  # (N, K, H, dh)
        v = self.value(x) + self.expression_value(expression)  # (N, d)
        v = v.index_select(0, index).view(n, k_slots, h, dh)  # (N, K, H, dh)

        scores = torch.einsum("nhd,nkhd->nhk", q, k) / math.sqrt(dh)  # (N, H, K)
        scores = scores + self.edge_bias(edge).transpose(1, 2)  # (N, H, K)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        # An agent without neighbours would softmax over all -inf; give it zero weight instead.
        isolated = ~mask.any(dim=1)  # (N,)
        scores = scores.masked_fill(isolated.view(n, 1, 1), 0.0)
        weights = torch.softmax(scores, dim=-1) * mask.unsqueeze(1)  # (N, H, K)
        weights = self.dropout(weights)

        message = torch.einsum("nhk,nkhd->nhd", weights, v).reshape(n, d)  # (N, d)
        return self.out(message)


class MLP(nn.Module):
    """Per-agent feed-forward update of the token."""

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model)
        self.proj = nn.Linear(4 * config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # (N, d)


class Block(nn.Module):
    """Pre-norm residual block: graph attention, then MLP."""

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.ln_attention = nn.LayerNorm(config.d_model)
        self.attention = GraphAttention(config)
        self.ln_mlp = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, expression: torch.Tensor, graph: SocialGraph) -> torch.Tensor:
        x = x + self.attention(self.ln_attention(x), expression, graph)  # (N, d)
        return x + self.mlp(self.ln_mlp(x))  # (N, d)


class Memory(nn.Module):
    """Recurrent state of each agent, updated from its final token once per period."""

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.cell = nn.GRUCell(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.cell(x, memory)  # (N, d)


class SurrogatePopulation(nn.Module):
    """One period of the whole population, every agent at once.

    In: persona, mechanism context, memory and last period's expressions; out: hours
    distribution, reasoning channels, next expression and next memory.
    """

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.persona = PersonaEmbedding(config)
        self.context = nn.Linear(config.n_context, d)
        self.recall = nn.Linear(d, d, bias=False)  # memory into the token
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_final = nn.LayerNorm(d)
        self.hours_head = nn.Linear(d, config.n_hour_bins)
        self.channels_head = nn.Linear(d, config.n_channels)
        self.expression_head = nn.Linear(d, config.d_expression)
        self.memory = Memory(config)

    def init_memory(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """(n, d_model) zero memory for the first period."""
        return torch.zeros(n, self.config.d_model, device=device)

    def init_expression(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """(n, d_expression) zero expression for the first period."""
        return torch.zeros(n, self.config.d_expression, device=device)

    def forward(
        self,
        persona_num: torch.Tensor,  # (N, n_persona_features) float
        persona_cat: torch.Tensor | None,  # (N, len(n_categories)) int64
        context: torch.Tensor,  # (N, n_context) float
        neighbour_expression_input: torch.Tensor,  # (N, d_expression) each agent's last expression
        memory: torch.Tensor,  # (N, d_model)
        graph: SocialGraph,
    ) -> SurrogateOutput:
        self._check_inputs(persona_num, persona_cat, context, neighbour_expression_input, memory, graph)
        x = self.persona(persona_num, persona_cat)  # (N, d)
        x = x + self.context(context) + self.recall(memory)  # (N, d)
        for block in self.blocks:
            x = block(x, neighbour_expression_input, graph)  # (N, d)
        z = self.ln_final(x)  # (N, d)
        return SurrogateOutput(
            hour_logits=self.hours_head(z),  # (N, n_hour_bins)
            channels=1.0 + 4.0 * torch.sigmoid(self.channels_head(z)),  # (N, n_channels)
            expression=torch.tanh(self.expression_head(z)),  # (N, d_expression)
            memory=self.memory(z, memory),  # (N, d)
        )

    def _check_inputs(self, persona_num, persona_cat, context, expression, memory, graph) -> None:
        c, n = self.config, graph.n
        expected = {
            "persona_num": (persona_num, (n, c.n_persona_features)),
            "context": (context, (n, c.n_context)),
            "neighbour_expression_input": (expression, (n, c.d_expression)),
            "memory": (memory, (n, c.d_model)),
        }
        if c.n_categories:
            if persona_cat is None:
                raise ValueError(f"persona_cat: expected shape {(n, len(c.n_categories))}, got None")
            expected["persona_cat"] = (persona_cat, (n, len(c.n_categories)))
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {tuple(tensor.shape)}")

    def save(self, path: str | PathLike) -> None:
        """Write the config and weights to ``path``."""
        torch.save({"config": asdict(self.config), "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | PathLike, map_location: torch.device | str | None = "cpu") -> "SurrogatePopulation":
        """Rebuild a model written by ``save``; only tensors and plain values are unpickled."""
        saved = torch.load(path, map_location=map_location, weights_only=True)
        model = cls(SurrogateConfig(**saved["config"]))
        model.load_state_dict(saved["state_dict"])
        return model


def hour_probabilities(output: SurrogateOutput) -> torch.Tensor:
    """(N, n_hour_bins) probability of each hour bin."""
    return torch.softmax(output.hour_logits, dim=-1)


def expected_hours(output: SurrogateOutput, bins: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) expected weekly hours, sum_b p_b * hours_b; ``bins`` defaults to 0, 10, ..., 80."""
    probs = hour_probabilities(output)  # (N, B)
    if bins is None:
        bins = HOURS_PER_BIN * torch.arange(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    return probs @ bins.to(probs)
