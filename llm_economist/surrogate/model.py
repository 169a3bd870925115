"""The distilled population: one transformer step that maps every agent to its next decision.

Each period every agent is one token, and tokens talk only along the social graph:

1. token = PersonaEmbedding(persona) + W_c context + W_m memory           # (N, d)
   ``context`` is what the mechanism shows the agent this period (own marginal and average
   rate, rebate, last income, last hours, ...); ``memory`` is the agent's recurrent state.
2. ``n_layers`` pre-norm blocks, each  x += GraphAttention(LN(x));  x += MLP(LN(x)).
   GraphAttention lets agent i attend over its padded neighbour list only: every agent's key
   and value are computed once, then each agent gathers its neighbours' rows (never an N x N
   tensor). Head h scores neighbour j of tie type t as
       q_i . (k_j + e_t) / sqrt(d_head) + b_t,h
   with a learned key embedding e_t and per-head bias b_t of the tie type; the tie-type part
   is a small (types x heads) table per agent, gathered by each slot's type. The neighbours'
   expression vectors from the previous period are projected into the values. Padded slots
   score the lowest float, so they get exactly zero weight, and an agent without neighbours
   receives a zero message. After L blocks an agent's output depends on agents at most L ties
   away and on nobody else.
3. Heads on LN(x): hour-bin logits, reasoning channels on the 1-5 scale
   (1 + 4 sigmoid), and the next expression vector (tanh) that neighbours read next period.
4. Memory: a GRU cell over the final token updates the state carried to the next period.

Everything is differentiable in ``context``, so a planner can take gradients of welfare with
respect to the mechanism through the whole population.

Scale: when no gradient is being recorded, agents are processed ``chunk_size`` at a time.
Only the tokens and keys/values of all N agents exist at once (O(N d)); a chunk's gathered
neighbour rows, scores, MLP activations and heads (O(chunk K d)) stay in cache. While autograd
records, the whole population is one chunk, since a gather's backward is dense in N per chunk.
Both give the same numbers up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from os import PathLike
from typing import Callable, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from llm_economist.economy.labour import LLM_HOURS_PER_BIN as HOURS_PER_BIN  # the LLM workers' bins: 0, 10, ...
from llm_economist.personas.graph import EDGE_TYPES, SocialGraph

GPU_CHUNK_SIZE = 1 << 20  # agents per chunk on a GPU: 1M agents' gathered neighbour rows take about 1.7 GB

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
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 1
    n_edge_types: int = len(EDGE_TYPES)
    d_expression: int = 8
    n_hour_bins: int = 9
    n_channels: int = 3  # fairness, trust, stress
    dropout: float = 0.0
    chunk_size: int = 8192  # agents per chunk on the CPU when no gradient is recorded; changes no number

    def __post_init__(self) -> None:
        self.n_categories = tuple(int(c) for c in self.n_categories)
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model: {self.d_model} must be divisible by n_heads={self.n_heads}")
        for name in ("n_persona_features", "n_context", "d_expression"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("d_model", "n_heads", "n_layers", "n_edge_types", "n_hour_bins", "n_channels", "chunk_size"):
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

    def forward(self, persona_num: torch.Tensor, persona_cat: torch.Tensor | None) -> torch.Tensor:
        x = self.features(persona_num)  # (N, d)
        for f, embed in enumerate(self.categories):
            x = x + embed(persona_cat[:, f])  # (N, d)
        return x


class GraphAttention(nn.Module):
    """Multi-head attention of each agent over its padded neighbour list, modulated by tie type.

    ``keys_values`` runs once over all agents; ``forward`` then serves any chunk of agents
    from those rows.
    """

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        d, self.n_heads = config.d_model, config.n_heads
        self.query = nn.Linear(d, d)
        self.key_value = nn.Linear(d, 2 * d)  # keys, then values
        self.expression_value = nn.Linear(config.d_expression, d, bias=False)
        self.edge_key = nn.Embedding(config.n_edge_types, d)
        self.edge_bias = nn.Embedding(config.n_edge_types, config.n_heads)
        self.out = nn.Linear(d, d)
        self.dropout = nn.Dropout(config.dropout)
        # (H, d) 0/1: which head each feature belongs to.
        dh = d // config.n_heads
        self.register_buffer("head_features", torch.eye(config.n_heads).repeat_interleave(dh, dim=1), persistent=False)

    def keys_values(self, x: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(N, 2d) each agent's key, then its value (which carries its last expression)."""
        d = x.shape[1]
        keys_values = self.key_value(x)  # (N, 2d)
        keys_values[:, d:].addmm_(expression, self.expression_value.weight.t())  # values += W_e expression
        return keys_values

    def forward(self, x: torch.Tensor, keys_values: torch.Tensor, rows: GraphRows) -> torch.Tensor:
        """(C, d) message to C agents; ``x`` (C, d) are their normalised tokens, ``rows`` their
        rows of the graph (`GraphRows.of`), ``keys_values`` the rows of all agents."""
        c, d = x.shape
        k_slots = rows.slots
        h, dh = self.n_heads, d // self.n_heads
        q = self.query(x) / math.sqrt(dh)  # (C, d)
        # Slot-major gather (K, C, 2d): reductions over the slots then run over the outermost
        # dimension, which is what the CPU kernels vectorise. Padded slots read agent 0.
        keys, values = keys_values.index_select(0, rows.neighbours).view(k_slots, c, 2 * d).split(d, dim=2)  # (K, C, d) each

        # q . k per head: sum each head's dh products (a matrix-vector product beats .sum(-1)
        # over a short last dimension on CPU).
        per_head = torch.ones(dh, dtype=q.dtype, device=q.device)
        scores = (keys * q).view(k_slots, c, h, dh) @ per_head  # (K, C, H)
        # Tie term: each slot reads its type's row of the agent's table; padding reads the last.
        scores = scores + self._tie_scores(q).index_select(0, rows.ties).view(k_slots, c, h)  # (K, C, H)
        weights = self.dropout(torch.softmax(scores, dim=0))  # (K, C, H); padded slots exactly 0

        # Spread each head's weight over its features, weigh the values in place, sum over slots.
        message = (weights @ self.head_features).mul_(values).sum(0)  # (C, d)
        # An agent without neighbours spread its weight over padding; it receives nothing.
        message = message * rows.connected
        return self.out(message)

    def _tie_scores(self, q: torch.Tensor) -> torch.Tensor:
        """(C * (E + 1), H) for (C, d) scaled queries: each agent's rows q . e_t + b_t, head by
        head, for every tie type t, then a padding row at half the lowest float (its weight
        underflows to exactly 0, and a row of padding only never meets inf - inf)."""
        c, d = q.shape
        h = self.n_heads
        edge_keys = self.edge_key.weight.view(1, -1, h, d // h)  # (1, E, H, dh)
        table = (q.view(c, 1, h, d // h) * edge_keys).sum(-1) + self.edge_bias.weight  # (C, E, H)
        padding = q.new_full((c, 1, h), torch.finfo(q.dtype).min / 2)
        return torch.cat([table, padding], dim=1).view(-1, h)  # (C * (E + 1), H)


class GraphRows(NamedTuple):
    """C agents' rows of the graph as the attention reads them: slot-major flat indices into all
    agents' keys and values (padding reads agent 0) and into the chunk's tie table (padding reads
    its last row), and whether each agent has a neighbour at all. They depend on the graph only,
    so a population's are built once (`SurrogatePopulation.prepare`) and reused every period."""

    neighbours: torch.Tensor  # (K*C,) int64
    ties: torch.Tensor  # (K*C,) int64
    connected: torch.Tensor  # (C, 1) bool
    slots: int  # K

    @classmethod
    def of(cls, neighbours: torch.Tensor, edge_type: torch.Tensor, n_edge_types: int) -> "GraphRows":
        """From (C, K) neighbour indices (-1 padded) and their tie types."""
        c, k_slots = neighbours.shape
        real = neighbours >= 0
        n_types = n_edge_types + 1
        tie = torch.where(real, edge_type.long().clamp(min=0), n_types - 1)  # (C, K)
        ties = (tie + n_types * torch.arange(c, device=tie.device).unsqueeze(1)).t().reshape(-1)
        return cls(neighbours.clamp(min=0).t().reshape(-1), ties, real.any(dim=1, keepdim=True), k_slots)


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

    def keys_values(self, x: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(N, 2d) what this block's attention gathers from each agent."""
        return self.attention.keys_values(self.ln_attention(x), expression)

    def forward(self, x: torch.Tensor, keys_values: torch.Tensor, rows: GraphRows) -> torch.Tensor:
        """(C, d) updated tokens of C agents whose graph rows are ``rows``."""
        x = x + self.attention(self.ln_attention(x), keys_values, rows)  # (C, d)
        return x + self.mlp(self.ln_mlp(x))  # (C, d)


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
        self.meta: dict = {}  # what the inputs mean (hour bins, persona levels) and how it was trained
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
        expression = neighbour_expression_input
        self._check_inputs(persona_num, persona_cat, context, expression, memory, graph)
        recording = torch.is_grad_enabled() and (
            any(p.requires_grad for p in self.parameters())
            or any(t.requires_grad for t in (persona_num, context, expression, memory))
        )
        population = self.prepare(persona_num, persona_cat, graph, graph.n if recording else None)
        return self.step(population, context, expression, memory)

    def prepare(self, persona_num: torch.Tensor, persona_cat: torch.Tensor | None, graph: SocialGraph,
                chunk_size: int | None = None) -> PreparedPopulation:
        """What stays the same from period to period for one population: its persona embedding and
        its graph rows, chunk by chunk (``chunk_size`` agents; by default the config's, sized for a
        CPU's caches, or `GPU_CHUNK_SIZE` on a CUDA GPU, where a chunk's kernel launches would
        cost more than its arithmetic)."""
        graph = graph.to(persona_num.device)
        cat = persona_cat if persona_cat is not None else persona_num[:, :0].long()  # (N, 0) when no fields
        size = chunk_size or (GPU_CHUNK_SIZE if persona_num.device.type == "cuda" else self.config.chunk_size)
        slices = [slice(start, min(start + size, graph.n)) for start in range(0, graph.n, size)] or [slice(0, 0)]
        n_types = self.config.n_edge_types
        rows = [GraphRows.of(graph.neighbours[s], graph.edge_type[s], n_types) for s in slices]
        return PreparedPopulation(self.persona(persona_num, cat), persona_num[:, 0].clone(), list(zip(slices, rows)), graph.n)

    def step(self, population: PreparedPopulation, context: torch.Tensor, expression: torch.Tensor, memory: torch.Tensor,
             wage_feature: torch.Tensor | None = None) -> SurrogateOutput:
        """One period of a prepared population: ``context`` (N, n_context), last ``expression``
        (N, d_expression), ``memory`` (N, d); ``wage_feature`` (N,) replaces the first persona
        feature (the wage in force) where it moved since `prepare`."""
        persona = population.persona
        if wage_feature is not None:
            shift = (wage_feature.to(persona) - population.wage_feature).unsqueeze(1)
            persona = persona + shift * self.persona.features.weight[:, 0]
        over_agents = population.over_agents
        *inner, last = self.blocks
        x = over_agents(lambda s, _: persona[s] + self.context(context[s]) + self.recall(memory[s]))  # (N, d)
        for block in inner:
            keys_values = over_agents(lambda s, _: block.keys_values(x[s], expression[s]))  # (N, 2d)
            x = over_agents(lambda s, rows: block(x[s], keys_values, rows))  # (N, d)
        # The last block's tokens go straight into the heads, chunk by chunk.
        keys_values = over_agents(lambda s, _: last.keys_values(x[s], expression[s]))  # (N, 2d)
        return over_agents(lambda s, rows: self.decide(last(x[s], keys_values, rows), memory[s]))

    def decide(self, x: torch.Tensor, memory: torch.Tensor) -> SurrogateOutput:
        """The heads and the memory update on the final tokens ``x`` (N, d)."""
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
        if graph.edge_type.numel() and int(graph.edge_type.max()) >= c.n_edge_types:
            raise ValueError(f"graph.edge_type: types must be < n_edge_types={c.n_edge_types}, got {int(graph.edge_type.max())}")

    def save(self, path: str | PathLike, meta: dict | None = None) -> None:
        """Write the config, weights and ``meta`` (plain values: the feature spec, training record) to ``path``."""
        torch.save({"config": asdict(self.config), "state_dict": self.state_dict(), "meta": meta or self.meta}, path)

    @classmethod
    def load(cls, path: str | PathLike, map_location: torch.device | str | None = "cpu") -> "SurrogatePopulation":
        """Rebuild a model written by ``save``, in eval mode (no dropout); only tensors and plain values are unpickled."""
        try:
            saved = torch.load(path, map_location=map_location, weights_only=True)
            model = cls(SurrogateConfig(**saved["config"]))
            model.load_state_dict(saved["state_dict"])
        except (RuntimeError, KeyError, TypeError, EOFError) as err:
            raise ValueError(f"{path}: not a surrogate model file written by SurrogatePopulation.save ({err})") from None
        model.meta = saved.get("meta", {})
        return model.eval()


@dataclass
class PreparedPopulation:
    """One population as `SurrogatePopulation.step` reads it, built once by `prepare`."""

    persona: torch.Tensor  # (N, d) persona embedding
    wage_feature: torch.Tensor  # (N,) the first persona feature it was built with
    chunks: list[tuple[slice, GraphRows]]  # consecutive agents and their graph rows
    n: int

    def over_agents(self, fn: Callable[[slice, GraphRows], torch.Tensor | tuple]) -> torch.Tensor | tuple:
        """``fn`` applied chunk by chunk; several chunks run only without autograd, so each
        result is written into its rows of one tensor."""
        if len(self.chunks) == 1:
            return fn(*self.chunks[0])
        out: list[torch.Tensor] = []
        for s, rows in self.chunks:
            part = fn(s, rows)
            fields = (part,) if isinstance(part, torch.Tensor) else part
            if not out:
                out = [f.new_empty((self.n, *f.shape[1:])) for f in fields]
            for o, f in zip(out, fields):
                o[s] = f
        return out[0] if isinstance(part, torch.Tensor) else type(part)(*out)


def hour_probabilities(output: SurrogateOutput) -> torch.Tensor:
    """(N, n_hour_bins) probability of each hour bin."""
    return torch.softmax(output.hour_logits, dim=-1)


def expected_hours(output: SurrogateOutput, bins: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) expected weekly hours, sum_b p_b * hours_b; ``bins`` defaults to 0, 10, ..., 80."""
    probs = hour_probabilities(output)  # (N, B)
    if bins is None:
        bins = HOURS_PER_BIN * torch.arange(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    return probs @ bins.to(probs)
