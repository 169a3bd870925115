"""LoRA tuning of a worker language model so that its scored hour distribution matches a target's.

The distribution is read as at run time: the chat prompt, then the reply's fixed opening
`{"hours": ` (`workers.prompts.HOURS_PREFIX`, which the embedded server is handed as the start of
its answer), and the model's next-token logits at the digits that name
the hour bins, tempered by the run's sampling temperature (`workers.llm.hour_distribution`).
The loss is the KL divergence from the target distribution to that one, plus a small term that
keeps the bin digits the likely next tokens at all (so the reply format holds without a grammar
and every bin stays among the alternatives a server reports). With twin examples (the same
decision under two mechanisms, `tune.examples`) a contrast term adds the squared error of the
change in expected hours between the twins, in bins: the KL alone is dominated by who the worker
is and what it did last week, and a small model can fit those while missing most of the response
to the mechanism, which is what a planner acts on.

Cost on CPUs: only the top `layers` decoder layers carry adapters, so the frozen layers below run
once per prompt and their output (the residual stream entering the first tuned layer) is kept on
disk; each epoch then runs only the tuned layers forward and backward.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..economy.labour import jensen_shannon
from ..workers.prompts import HOURS_PREFIX

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TOP_LOGPROBS = 20  # alternatives a server reports per token (llm.types.LLMSettings.top_logprobs)


@dataclass(frozen=True)
class LoraSettings:
    """How the adapter is shaped and fitted."""

    rank: int = 8
    alpha: float = 16.0
    layers: int = 8  # the top decoder layers that carry adapters
    learning_rate: float = 1e-3
    epochs: int = 4
    batch: int = 8  # prompts per optimiser step
    patience: int = 2  # held-out evaluations without improvement before stopping
    format_weight: float = 0.1  # weight of -log P(a bin digit) in the loss
    contrast_weight: float = 0.0  # weight of the twins' squared error in the change of expected hours (bins); > 0 makes twins
    evaluations_per_epoch: int = 2
    seed: int = 0
    max_steps: int | None = None  # a budget: stop after this many optimiser steps, the schedule unchanged

    def __post_init__(self) -> None:
        for name in ("rank", "layers", "epochs", "batch", "patience", "evaluations_per_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"tune: {name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"tune: max-steps must be >= 1, got {self.max_steps}")
        if not (self.alpha > 0 and self.learning_rate > 0 and self.format_weight >= 0 and self.contrast_weight >= 0):
            raise ValueError("tune: alpha and learning-rate must be positive, format-weight and contrast-weight >= 0")


def load_base(path: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """The tokenizer and causal LM (float32) from a Hugging Face directory or a GGUF file, offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    where, extra = (str(path.parent), {"gguf_file": path.name}) if path.is_file() else (str(path), {})
    tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
    model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype=torch.float32, **extra)
    return tokenizer, model.to(device).eval()


def prompt_ids(tokenizer: Any, messages: Sequence[Sequence[str]]) -> list[int]:
    """Token ids of the chat prompt followed by the answer prefix, up to the hour digit."""
    chat = [{"role": role, "content": content} for role, content in messages]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) + HOURS_PREFIX
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def bin_token_ids(tokenizer: Any, bins: Sequence[int]) -> list[int]:
    """The token of each bin's first digit (bins are 0, 10, ..., so each has its own digit)."""
    ids = []
    for b in bins:
        found = tokenizer(str(b)[0], add_special_tokens=False)["input_ids"]
        if len(found) != 1:
            raise ValueError(f"the tokenizer splits the digit {str(b)[0]!r} into {found}; scored choice needs one token per digit")
        ids.append(found[0])
    return ids


def read_distribution(logits: torch.Tensor, bin_ids: Sequence[int], temperature: float) -> torch.Tensor:
    """(..., B) the hour distribution a run reads from next-token logits (..., V): the server's top
    alternatives, the bin digits among them weighted exp(logprob / temperature); NaN where no bin
    digit is among them (a run reads no distribution there)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    kept = torch.zeros_like(logp, dtype=torch.bool).scatter_(-1, logp.topk(TOP_LOGPROBS, dim=-1).indices, True)
    at_bins = logp[..., list(bin_ids)]
    weights = torch.where(kept[..., list(bin_ids)], (at_bins - at_bins.max(-1, keepdim=True).values) / temperature, -math.inf)
    return torch.softmax(weights, dim=-1)


class LayerStack:
    """The decoder as three parts: embeddings and frozen layers, the tuned layers, and the head."""

    def __init__(self, model: Any, first_tuned: int) -> None:
        self.model = model
        self.inner = model.get_decoder()
        self.first = first_tuned

    def _run(self, hidden: torch.Tensor, layers) -> torch.Tensor:
        from transformers.masking_utils import create_causal_mask

        positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        mask = create_causal_mask(config=self.inner.config, inputs_embeds=hidden, attention_mask=None, past_key_values=None,
                                  position_ids=positions)
        rotary = self.inner.rotary_emb(hidden, position_ids=positions)
        for layer in layers:
            hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary, position_ids=positions)
        return hidden

    @torch.no_grad()
    def frozen(self, ids: list[int]) -> torch.Tensor:
        """(L, d) the residual stream entering the first tuned layer."""
        device = next(self.model.parameters()).device
        hidden = self.inner.embed_tokens(torch.tensor([ids], device=device))
        return self._run(hidden, self.inner.layers[: self.first])[0]

    def next_logits(self, frozen: torch.Tensor) -> torch.Tensor:
        """(V,) logits of the token after the prompt, from the frozen stream through the tuned layers."""
        hidden = self._run(frozen.unsqueeze(0), self.inner.layers[self.first :])
        return self.model.lm_head(self.inner.norm(hidden[:, -1]))[0]


def loss_terms(logits: torch.Tensor, target: torch.Tensor, bin_ids: list[int], temperature: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """KL(target || model's tempered bin distribution), -log P(the next token is a bin digit), and
    the model's expected bin index minus the target's."""
    logp = torch.log_softmax(logits, dim=-1)
    at_bins = logp[bin_ids]
    model_logq = torch.log_softmax(at_bins / temperature, dim=-1)
    kl = (target * (target.clamp_min(1e-12).log() - model_logq)).sum()
    index = torch.arange(len(bin_ids), dtype=logits.dtype, device=logits.device)
    return kl, -torch.logsumexp(at_bins, dim=-1), (model_logq.exp() - target) @ index


def peft_config(settings: LoraSettings, n_layers: int):
    from peft import LoraConfig

    return LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0, target_modules=list(TARGET_MODULES),
                      layers_to_transform=list(range(n_layers - settings.layers, n_layers)))


def fit(model: Any, frozen: Callable[[int], torch.Tensor], train: list[int], held_out: list[int], targets: torch.Tensor,
        bin_ids: list[int], temperature: float, settings: LoraSettings, checkpoint: Path,
        progress: Callable[[str, int, int], None] | None = None, twins: Sequence[int] | None = None) -> list[dict]:
    """Fit the adapters of the peft `model` on the train examples; evaluate the held-out ones
    `evaluations_per_epoch` times an epoch, keep the best adapter weights (lowest held-out loss),
    stop after `patience` evaluations without improvement. `twins[i]` is the row of example i's
    twin (-1: none); a batch holds `batch` examples, each with its twin. Resumes from `checkpoint`
    when it exists. Returns the history."""
    stack = LayerStack(model, model.config.num_hidden_layers - settings.layers)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    twins = list(twins) if twins is not None else [-1] * len(targets)
    train_units, held_units = ([[i] + ([twins[i]] if twins[i] >= 0 else []) for i in rows if not 0 <= twins[i] < i] for rows in (train, held_out))
    steps_per_epoch = math.ceil(len(train_units) / settings.batch)
    total = steps_per_epoch * settings.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    state = {"step": 0, "history": [], "best": None, "best_loss": math.inf, "since_best": 0, "train_s": 0.0}
    if checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(saved["adapter"], strict=False)
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        state = saved["state"]
    evaluate_every = max(1, steps_per_epoch // settings.evaluations_per_epoch)
    device = params[0].device

    def unit_terms(unit: list[int]) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None, list[torch.Tensor]]:
        """KLs, format terms, the twins' squared error in the change of expected bin (None unpaired), logits."""
        logits = [stack.next_logits(frozen(i).to(device)) for i in unit]
        terms = [loss_terms(x, targets[i].to(device), bin_ids, temperature) for x, i in zip(logits, unit)]
        contrast = (terms[0][2] - terms[1][2]) ** 2 if len(unit) == 2 else None
        return [t[0] for t in terms], [t[1] for t in terms], contrast, logits

    def evaluate() -> dict:
        model.eval()
        kls, jss, valid, contrasts = [], [], [], []
        with torch.no_grad():
            for unit in held_units:
                kl, invalid, contrast, logits = unit_terms(unit)
                kls += [float(k) for k in kl]
                valid += [math.exp(-float(v)) for v in invalid]
                if contrast is not None:
                    contrasts.append(float(contrast))
                for i, x in zip(unit, logits):
                    js = float(jensen_shannon(targets[i].cpu(), read_distribution(x, bin_ids, temperature).cpu()))
                    jss.append(1.0 if math.isnan(js) else js)  # no distribution read: as far as two distributions can be
        row = {"held_out_kl": sum(kls) / len(kls), "held_out_js_bits": sum(jss) / len(jss), "bin_digit_mass": sum(valid) / len(valid)}
        if contrasts:  # root mean square error of the change between twins, in bins
            row["held_out_contrast_rmse_bins"] = math.sqrt(sum(contrasts) / len(contrasts))
        row["held_out_loss"] = row["held_out_kl"] + settings.contrast_weight * row.get("held_out_contrast_rmse_bins", 0.0) ** 2
        return row

    if not state["history"]:
        state["history"].append({"step": 0, "epoch": 0.0, "train_kl": None, **evaluate()})
        state["best_loss"] = state["history"][-1]["held_out_loss"]
    last = min(total, settings.max_steps or total)
    while state["step"] < last and state["since_best"] < settings.patience:
        started = time.perf_counter()
        step = state["step"]
        epoch, within = divmod(step, steps_per_epoch)
        order = torch.randperm(len(train_units), generator=torch.Generator().manual_seed(settings.seed * 1000 + epoch)).tolist()
        batch = [train_units[k] for k in order[within * settings.batch : (within + 1) * settings.batch]]
        prompts = sum(map(len, batch))
        model.train()
        optimiser.zero_grad()
        kl_sum = 0.0
        for unit in batch:
            kl, invalid, contrast, _ = unit_terms(unit)
            loss = sum(k + settings.format_weight * v for k, v in zip(kl, invalid)) / prompts
            if contrast is not None:
                loss = loss + settings.contrast_weight * contrast / len(batch)
            loss.backward()
            kl_sum += sum(float(k.detach()) for k in kl)
        optimiser.step()
        schedule.step()
        state["step"] = step + 1
        state.setdefault("train_kls", []).append(kl_sum / prompts)
        if progress is not None:
            progress("train", state["step"], total)
        row_due = state["step"] % evaluate_every == 0 or state["step"] == last
        if row_due:
            recent = state["train_kls"][-evaluate_every:]
            row = {"step": state["step"], "epoch": state["step"] / steps_per_epoch, "train_kl": sum(recent) / len(recent), **evaluate()}
            state["history"].append(row)
            if row["held_out_loss"] < state["best_loss"] - 1e-4:
                state["best_loss"], state["since_best"] = row["held_out_loss"], 0
                state["best"] = {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}
            else:
                state["since_best"] += 1
        state["train_s"] = state.get("train_s", 0.0) + time.perf_counter() - started
        if row_due:
            adapter = {k: v for k, v in model.state_dict().items() if "lora_" in k}
            tmp = checkpoint.with_suffix(".tmp")
            torch.save({"adapter": adapter, "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(), "state": state}, tmp)
            tmp.replace(checkpoint)
    if state["best"] is not None:
        model.load_state_dict(state["best"], strict=False)
    state["history"][-1]["train_s"] = state.get("train_s", 0.0)
    return state["history"]
