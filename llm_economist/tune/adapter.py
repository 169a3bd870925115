"""`llm-economist tune`: make the examples, cache the frozen layers, fit the adapter, and save it
where workers load it (a peft directory and a GGUF LoRA file), with its card and loss curve.

An adapter directory holds:
- `adapter/` (peft: `adapter_config.json`, `adapter_model.safetensors`), for the transformers
  backend and servers that serve LoRA adapters (vLLM, SGLang);
- `adapter.gguf`, the same weights for llama.cpp (the embedded server);
- `tune.json`: base model, target population, prompt settings, data sizes, seeds, held-out
  figures; `card.md`, the model card; `history.csv` and `loss.png`, the loss curve.
Work in progress (`examples.parquet`, `activations/`, `checkpoint.pt`) lets a stopped run resume.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from ..config import RunConfig, dump_config
from ..economy.labour import llm_hour_bins
from ..llm.adapter import GGUF, META, PEFT_DIR, file_digest
from .examples import check_target, make_examples, prompt_fingerprint, twin_index
from .export import write_gguf_lora
from .lora import LayerStack, LoraSettings, bin_token_ids, fit, load_base, peft_config, prompt_ids

CHUNK = 64  # prompts per file of cached activations
# What shapes the prompt text; an adapter is only meaningful on prompts built with the same settings.
PROMPT_SETTINGS = ("decision_format", "memory", "neighbours", "satisfaction")

Progress = Callable[[str, int, int], None]


def prompt_settings(config: RunConfig) -> dict:
    return {name: getattr(config.workers, name) for name in PROMPT_SETTINGS}


def _activations(stack: LayerStack, ids: list[list[int]], folder: Path, progress: Progress | None) -> tuple[list[torch.Tensor], float]:
    """The frozen layers' output for every prompt, computed once and kept in `folder` by chunks, and
    the seconds computing them took over all resumed parts (in `folder/seconds.json`)."""
    folder.mkdir(exist_ok=True)
    timing = folder / "seconds.json"
    seconds = json.loads(timing.read_text())["seconds"] if timing.is_file() else 0.0
    out: list[torch.Tensor] = []
    for start in range(0, len(ids), CHUNK):
        path = folder / f"chunk_{start // CHUNK:05d}.pt"
        if path.is_file():
            chunk = torch.load(path)
        else:
            started = time.perf_counter()
            chunk = [stack.frozen(x).cpu() for x in ids[start : start + CHUNK]]
            tmp = path.with_suffix(".tmp")
            torch.save(chunk, tmp)
            tmp.replace(path)
            seconds += time.perf_counter() - started
            timing.write_text(json.dumps({"seconds": seconds}))
        out.extend(chunk)
        if progress is not None:
            progress("frozen layers", len(out), len(ids))
    return out, seconds


def tune(config: RunConfig, out: str | Path, base_model: str | Path, episodes: int = 40, explore: float = 0.35,
         held_out: float = 0.1, settings: LoraSettings = LoraSettings(), device: str = "cpu",
         progress: Progress | None = None) -> dict:
    """Tune an adapter toward the config's target population; returns the saved `tune.json`."""
    check_target(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base_model = Path(base_model)
    examples = make_examples(config, episodes, explore, held_out, out, pairs=settings.contrast_weight > 0)
    tokenizer, model = load_base(base_model, device)
    bins = llm_hour_bins(config.economy.max_hours)
    bin_ids = bin_token_ids(tokenizer, bins)
    ids = [prompt_ids(tokenizer, json.loads(m)) for m in examples["messages"]]
    n_layers = model.config.num_hidden_layers
    if not 1 <= settings.layers <= n_layers:
        raise ValueError(f"tune: layers must be in [1, {n_layers}] for this model, got {settings.layers}")
    frozen, frozen_s = _activations(LayerStack(model, n_layers - settings.layers), ids, out / "activations", progress)

    from peft import get_peft_model, get_peft_model_state_dict

    torch.manual_seed(settings.seed)
    peft_model = get_peft_model(model, peft_config(settings, n_layers))
    targets = torch.tensor(examples["target"].tolist(), dtype=torch.float32)
    train = [i for i, s in enumerate(examples["split"]) if s == "train"]
    held = [i for i, s in enumerate(examples["split"]) if s == "held_out"]
    history = fit(peft_model.base_model.model, frozen.__getitem__, train, held, targets, bin_ids, config.llm.temperature,
                  settings, out / "checkpoint.pt", progress, twin_index(examples))

    peft_model.peft_config["default"].base_model_name_or_path = base_model.name  # not this machine's path
    peft_model.save_pretrained(str(out / PEFT_DIR))
    state = get_peft_model_state_dict(peft_model)
    write_gguf_lora(state, settings.alpha, model.config.num_attention_heads, model.config.num_key_value_heads, out / GGUF)
    pd.DataFrame(history).to_csv(out / "history.csv", index=False)
    best = min(history, key=lambda row: row["held_out_loss"])
    meta = {
        "base_model": base_model.name,
        "base_model_sha256": file_digest(base_model) if base_model.is_file() else None,
        "adapter_sha256": file_digest(out / GGUF),
        "target": {"kind": config.workers.kind, "temperature": config.workers.temperature, "hour_bins": config.workers.hour_bins,
                   "persistence": config.workers.persistence, "social_pull": config.workers.social_pull,
                   "elasticity": config.economy.elasticity, "eta": config.economy.eta, "max_hours": config.economy.max_hours},
        "prompt": prompt_settings(config),
        "prompt_fingerprint": prompt_fingerprint(examples),
        "reading_temperature": config.llm.temperature,
        "bins": list(bins),
        "data": {"episodes": episodes, "explore": explore, "held_out_share": held_out, "agents_per_episode": config.population.n_agents,
                 "twins": bool(examples["twin"].any()),
                 "train_prompts": len(train), "held_out_prompts": len(held), "first_seed": config.seed,
                 "mean_prompt_tokens": sum(map(len, ids)) / len(ids)},
        "lora": {**settings.__dict__, "steps_run": history[-1]["step"], "epochs_run": round(history[-1]["epoch"], 2)},
        "held_out": {"base": history[0], "tuned": best},
        "wall_s": {"frozen_layers": round(frozen_s, 1), "training": round(history[-1].get("train_s", 0.0), 1)},
        "device": device,
        "config": dump_config(config),
    }
    (out / META).write_text(json.dumps(meta, indent=2))
    from .card import write_card

    write_card(meta, history, out)
    return meta
