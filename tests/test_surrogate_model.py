"""Specification of the distilled population model: shapes, graph masking, heads, persistence, learning."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from llm_economist.personas.graph import SocialGraph, build_social_graph
from llm_economist.surrogate import (
    SurrogateConfig,
    SurrogatePopulation,
    expected_hours,
    hour_probabilities,
)

CONFIG = SurrogateConfig(n_persona_features=3, n_categories=(5, 7), n_context=4, d_model=32, n_heads=4, n_layers=2)
INPUTS = ("persona_num", "context", "neighbour_expression_input", "memory")


def chain_graph(n: int = 10, width: int = 3) -> SocialGraph:
    """Agents 0..n-2 on a path (0-1-2-...), agent n-1 isolated; rows padded with -1."""
    neighbours = torch.full((n, width), -1, dtype=torch.int64)
    edge_type = torch.full((n, width), -1, dtype=torch.int8)
    for i in range(n - 1):
        row = [j for j in (i - 1, i + 1) if 0 <= j < n - 1]
        neighbours[i, : len(row)] = torch.tensor(row)
        edge_type[i, : len(row)] = torch.tensor([(i + j) % 4 for j in row], dtype=torch.int8)
    return SocialGraph(neighbours, edge_type)


def census_like_graph(n: int = 200) -> SocialGraph:
    """Households of three plus coworker, friend and weak ties, as the census builder makes them."""
    rng = np.random.default_rng(0)
    return build_social_graph(
        household_id=np.arange(n) // 3,
        occupation=rng.integers(0, 5, n),
        state=rng.integers(0, 3, n),
        age=rng.integers(18, 80, n),
        education=rng.integers(0, 4, n),
        seed=0,
    )


def with_chunk_size(model: SurrogatePopulation, chunk_size: int) -> SurrogatePopulation:
    """The same weights, trainable, with another chunk size."""
    config = SurrogateConfig(**{**vars(model.config), "chunk_size": chunk_size})
    other = SurrogatePopulation(config).eval()
    other.load_state_dict(model.state_dict())
    return other


def make_inputs(model: SurrogatePopulation, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = model.config
    return {
        "persona_num": torch.randn(n, c.n_persona_features, generator=g),
        "persona_cat": torch.stack([torch.randint(0, k, (n,), generator=g) for k in c.n_categories], dim=1),
        "context": torch.randn(n, c.n_context, generator=g),
        "neighbour_expression_input": torch.rand(n, c.d_expression, generator=g) * 2 - 1,
        "memory": torch.randn(n, c.d_model, generator=g),
    }


def run(model, inputs, graph):
    return model(graph=graph, **inputs)


def perturbed(inputs: dict[str, torch.Tensor], agent: int) -> dict[str, torch.Tensor]:
    out = {k: v.clone() for k, v in inputs.items()}
    for name in INPUTS:
        out[name][agent] += 3.0
    out["persona_cat"][agent] = (out["persona_cat"][agent] + 1) % torch.tensor(CONFIG.n_categories)
    return out


def stacked(output) -> torch.Tensor:
    return torch.cat([output.hour_logits, output.channels, output.expression, output.memory], dim=1)


@pytest.fixture(params=["one_pass", "chunks_of_3"])
def model(request) -> SurrogatePopulation:
    """The model as trained (one pass), and frozen with tiny chunks, as the surrogate workers run
    it: then every forward that records no gradient goes chunk by chunk."""
    torch.manual_seed(0)
    if request.param == "one_pass":
        return SurrogatePopulation(CONFIG).eval()
    return SurrogatePopulation(SurrogateConfig(**{**vars(CONFIG), "chunk_size": 3})).eval().requires_grad_(False)


def test_output_shapes_on_a_built_social_graph(model):
    graph = census_like_graph()
    n = graph.n
    out = run(model, make_inputs(model, n), graph)
    assert out.hour_logits.shape == (n, CONFIG.n_hour_bins)
    assert out.channels.shape == (n, CONFIG.n_channels)
    assert out.expression.shape == (n, CONFIG.d_expression)
    assert out.memory.shape == (n, CONFIG.d_model)
    assert torch.isfinite(stacked(out)).all()


def test_agent_beyond_receptive_field_has_no_effect_and_zero_gradient(model):
    graph = chain_graph()
    inputs = make_inputs(model, graph.n)
    base = stacked(run(model, inputs, graph))
    far = 5  # agent 0 sees at most n_layers = 2 ties away
    moved = stacked(run(model, perturbed(inputs, far), graph))
    assert torch.equal(moved[0], base[0])
    assert not torch.allclose(moved[far], base[far])

    leaves = {k: (v.clone().requires_grad_(True) if k in INPUTS else v) for k, v in inputs.items()}
    stacked(run(model, leaves, graph))[0].sum().backward()
    for name in INPUTS:
        grad = leaves[name].grad
        assert torch.all(grad[far:] == 0), name
        assert grad[1].abs().sum() > 0, name


def test_real_neighbour_changes_the_output(model):
    graph = chain_graph()
    inputs = make_inputs(model, graph.n)
    base = stacked(run(model, inputs, graph))
    for name in INPUTS:
        changed = {k: v.clone() for k, v in inputs.items()}
        changed[name][1] += 1.0
        assert not torch.allclose(stacked(run(model, changed, graph))[0], base[0]), name


def test_one_layer_attends_to_direct_neighbours_only():
    torch.manual_seed(0)
    model = SurrogatePopulation(SurrogateConfig(**{**vars(CONFIG), "n_layers": 1})).eval()
    graph = chain_graph()
    inputs = make_inputs(model, graph.n)
    base = stacked(run(model, inputs, graph))
    assert torch.equal(stacked(run(model, perturbed(inputs, 2), graph))[0], base[0])
    assert not torch.allclose(stacked(run(model, perturbed(inputs, 1), graph))[0], base[0])


def test_padded_slots_have_no_effect(model):
    # Padded slots gather agent 0; every agent from 3 on has padding yet is beyond 0's reach.
    graph = chain_graph()
    assert (graph.neighbours[3:] == -1).any(dim=1).all()
    inputs = make_inputs(model, graph.n)
    base = stacked(run(model, inputs, graph))
    moved = stacked(run(model, perturbed(inputs, 0), graph))
    assert torch.equal(moved[3:], base[3:])
    # Widening every row with extra padding changes nothing either.
    wide = SocialGraph(
        torch.cat([graph.neighbours, torch.full((graph.n, 4), -1)], dim=1),
        torch.cat([graph.edge_type, torch.full((graph.n, 4), -1, dtype=torch.int8)], dim=1),
    )
    assert torch.allclose(stacked(run(model, inputs, wide)), base, atol=1e-6)


def test_isolated_agent_gets_a_finite_output_driven_by_itself_alone(model):
    graph = chain_graph()
    lone = graph.n - 1
    inputs = make_inputs(model, graph.n)
    base = stacked(run(model, inputs, graph))
    assert torch.isfinite(base[lone]).all()
    alone = SocialGraph(torch.full((1, 3), -1), torch.full((1, 3), -1, dtype=torch.int8))
    single = {k: v[lone : lone + 1] for k, v in inputs.items()}
    assert torch.allclose(stacked(run(model, single, alone))[0], base[lone], atol=1e-6)

    leaves = {k: (v.clone().requires_grad_(True) if k in INPUTS else v) for k, v in inputs.items()}
    stacked(run(model, leaves, graph))[lone].sum().backward()
    for name in INPUTS:
        assert torch.all(leaves[name].grad[:lone] == 0), name


def test_probabilities_sum_to_one_and_channels_lie_on_the_scale(model):
    graph = chain_graph()
    inputs = make_inputs(model, graph.n)
    inputs["context"] *= 100.0
    out = run(model, inputs, graph)
    probs = hour_probabilities(out)
    assert torch.allclose(probs.sum(dim=1), torch.ones(graph.n))
    assert (out.channels >= 1).all() and (out.channels <= 5).all()
    assert (out.expression.abs() <= 1).all()
    hours = expected_hours(out)
    assert hours.shape == (graph.n,) and (hours >= 0).all() and (hours <= 80).all()
    assert torch.allclose(expected_hours(out, torch.ones(CONFIG.n_hour_bins)), torch.ones(graph.n))


def test_init_memory_is_zero(model):
    assert torch.equal(model.init_memory(4), torch.zeros(4, CONFIG.d_model))


def test_wrong_input_shape_names_the_field(model):
    graph = chain_graph()
    inputs = make_inputs(model, graph.n)
    inputs["context"] = inputs["context"][:, :2]
    with pytest.raises(ValueError, match="context"):
        run(model, inputs, graph)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = SurrogatePopulation(replace(CONFIG, dropout=0.3)).eval()
    graph = chain_graph()
    inputs = make_inputs(model, graph.n)
    path = tmp_path / "surrogate.pt"
    model.save(path)
    loaded = SurrogatePopulation.load(path)  # ready for inference: dropout off
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(stacked(run(loaded, inputs, graph)), stacked(run(model, inputs, graph)))


def test_a_few_optimiser_steps_fit_hours_that_depend_on_persona_and_neighbour():
    torch.manual_seed(0)
    config = SurrogateConfig(n_persona_features=1, n_context=1, d_model=32, n_heads=4, n_layers=1)
    model = SurrogatePopulation(config)
    n = 128
    # A ring: each agent's single neighbour on the right.
    neighbours = ((torch.arange(n) + 1) % n).unsqueeze(1)
    graph = SocialGraph(
        torch.cat([neighbours, torch.full((n, 1), -1)], dim=1),
        torch.tensor([[2, -1]] * n, dtype=torch.int8),
    )
    g = torch.Generator().manual_seed(1)
    persona = torch.randn(n, 1, generator=g)
    expression = torch.rand(n, config.d_expression, generator=g) * 2 - 1
    target = 2 * (persona[:, 0] > 0).long() + 4 * (expression[neighbours[:, 0], 0] > 0).long()  # bins 0, 2, 4, 6
    inputs = dict(
        persona_num=persona,
        persona_cat=None,
        context=torch.zeros(n, 1),
        neighbour_expression_input=expression,
        memory=model.init_memory(n),
        graph=graph,
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(**inputs).hour_logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("make_graph", [chain_graph, census_like_graph])
def test_chunked_forward_equals_one_pass_without_gradients(make_graph):
    torch.manual_seed(0)
    model = SurrogatePopulation(CONFIG).eval()
    graph = make_graph()
    # Make a few agents isolated so chunks also hold agents that receive no message.
    neighbours, edge_type = graph.neighbours.clone(), graph.edge_type.clone()
    lonely = torch.tensor([0, graph.n // 2])
    neighbours[lonely], edge_type[lonely] = -1, -1
    graph = SocialGraph(neighbours, edge_type)
    inputs = make_inputs(model, graph.n)
    one_pass = with_chunk_size(model, graph.n)
    with torch.inference_mode():
        reference = stacked(run(one_pass, inputs, graph))
        for chunk_size in (1, 3, graph.n - 1) if graph.n <= 10 else (16, graph.n - 1):
            chunked = stacked(run(with_chunk_size(model, chunk_size), inputs, graph))
            assert torch.allclose(chunked, reference, atol=1e-5), chunk_size
    with torch.no_grad():
        assert torch.allclose(stacked(run(with_chunk_size(model, 3), inputs, graph)), reference, atol=1e-5)


def test_chunked_forward_equals_one_pass_with_gradients():
    torch.manual_seed(0)
    model = SurrogatePopulation(CONFIG).eval()
    graph = census_like_graph()
    inputs = make_inputs(model, graph.n)
    chunked, one_pass = with_chunk_size(model, 7), with_chunk_size(model, graph.n)

    def forward_backward(m):
        leaves = {k: (v.clone().requires_grad_(True) if k in INPUTS else v) for k, v in inputs.items()}
        out = stacked(run(m, leaves, graph))
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        return out.detach(), {k: leaves[k].grad for k in INPUTS}, {k: p.grad for k, p in m.named_parameters()}

    # While autograd records, the model makes one pass whatever chunk_size says (a chunk's
    # gather would have an N-row backward); outputs and gradients must not depend on it.
    out_c, grads_c, params_c = forward_backward(chunked)
    out_1, grads_1, params_1 = forward_backward(one_pass)
    assert torch.allclose(out_c, out_1, atol=1e-5)
    for name in INPUTS:
        assert torch.allclose(grads_c[name], grads_1[name], atol=1e-5), name
    for name in params_1:
        assert torch.allclose(params_c[name], params_1[name], atol=1e-4), name
    with torch.no_grad():  # and the chunked inference pass agrees with both
        assert torch.allclose(stacked(run(chunked, inputs, graph)), out_1, atol=1e-5)


def test_forward_creates_tensors_only_on_the_inputs_device(monkeypatch):
    model = SurrogatePopulation(CONFIG).eval()
    # Meta tensors carry shapes only: any tensor made on the CPU inside the forward would clash.
    meta = with_chunk_size(model, 4).to("meta")
    monkeypatch.setattr(meta, "_check_inputs", lambda *args: None)  # it reads values
    graph = chain_graph().to("meta")
    inputs = {k: v.to("meta") for k, v in make_inputs(model, graph.n).items()}
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            out = run(meta, inputs, graph)
        assert all(t.device.type == "meta" for t in out)
        assert out.memory.shape == (graph.n, CONFIG.d_model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forward_matches_cpu():
    model = SurrogatePopulation(CONFIG).eval()
    graph = census_like_graph()
    inputs = make_inputs(model, graph.n)
    chunked = with_chunk_size(model, 16)
    with torch.inference_mode():
        cpu = stacked(run(chunked, inputs, graph))
        gpu = stacked(run(chunked.cuda(), {k: v.cuda() for k, v in inputs.items()}, graph.to("cuda")))
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


def test_edge_type_outside_the_configured_types_is_rejected(model):
    graph = chain_graph()
    edge_type = graph.edge_type.clone()
    edge_type[0, 0] = CONFIG.n_edge_types
    with pytest.raises(ValueError, match="edge_type"):
        run(model, make_inputs(model, graph.n), SocialGraph(graph.neighbours, edge_type))


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match="chunk_size"):
        SurrogateConfig(n_persona_features=1, chunk_size=0)


def test_a_prepared_population_steps_as_the_forward_with_the_wage_in_force(model):
    """Prepared once, a population steps period after period as a full forward would, and a new
    first persona feature (the wage in force) gives what a forward with that feature gives."""
    graph = census_like_graph(60)
    inputs = make_inputs(model, graph.n)
    population = model.prepare(inputs["persona_num"], inputs["persona_cat"], graph)
    with torch.no_grad():
        stepped = model.step(population, inputs["context"], inputs["neighbour_expression_input"], inputs["memory"])
        torch.testing.assert_close(stacked(stepped), stacked(run(model, inputs, graph)), atol=1e-5, rtol=0)
        raised = inputs["persona_num"][:, 0] + torch.linspace(-1.0, 2.0, graph.n)
        moved = {**inputs, "persona_num": torch.cat([raised.unsqueeze(1), inputs["persona_num"][:, 1:]], dim=1)}
        stepped = model.step(population, inputs["context"], inputs["neighbour_expression_input"], inputs["memory"], raised)
        torch.testing.assert_close(stacked(stepped), stacked(run(model, moved, graph)), atol=1e-5, rtol=0)
        assert not torch.allclose(stacked(stepped), stacked(run(model, inputs, graph)), atol=1e-3)
