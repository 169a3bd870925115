"""The model card and loss curve of a tuned adapter."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def write_card(meta: dict, history: list[dict], out: Path) -> None:
    """`card.md` (what the adapter is, what it was tuned on, how well it fits held-out prompts)
    and `loss.png` (train and held-out KL over the optimiser steps)."""
    steps = [row["step"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    trained = [(row["step"], row["train_kl"]) for row in history if row["train_kl"] is not None]
    if trained:
        ax.plot(*zip(*trained), marker="o", label="train KL (mean over the steps since the last evaluation)")
    ax.plot(steps, [row["held_out_kl"] for row in history], marker="s", label="held-out KL")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("KL(target || model), nats")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=120)
    plt.close(fig)

    t, d, lora = meta["target"], meta["data"], meta["lora"]
    base, tuned = meta["held_out"]["base"], meta["held_out"]["tuned"]
    prompt = ", ".join(f"{k} {v}" for k, v in meta["prompt"].items())
    twins = d.get("twins", False)
    width = meta["bins"][1] - meta["bins"][0]

    def fit_row(name: str, row: dict) -> str:
        change = f" {row['held_out_contrast_rmse_bins'] * width:.1f} |" if twins else ""
        return f"| {name} | {row['held_out_kl']:.3f} | {row['held_out_js_bits']:.3f} | {row['bin_digit_mass']:.3f} |{change}"
    lines = [
        f"# Worker adapter for {meta['base_model']}",
        "",
        "A LoRA adapter that makes the model's scored hour choice (the first digit after `{\"hours\": `, read at "
        f"temperature {meta['reading_temperature']:g} as a run reads it) answer as a stated target population. It is a "
        "demonstration of the method: the tuned model answers as the population it was tuned on, and nothing it does is "
        "evidence about people.",
        "",
        "## Target",
        f"{t['kind']} workers: logit temperature {t['temperature']:g} over {t['hour_bins']} hour bins, habit (persistence) "
        f"{t['persistence']:g}, imitation (social pull) {t['social_pull']:g}, quasi-linear utility with elasticity "
        f"{t['elasticity']:g} (eta {t['eta']:g}), hours 0-{t['max_hours']:g}.",
        "",
        "## Data",
        f"{d['episodes']} episodes of {d['agents_per_episode']} census personas each (seeds {d['first_seed']} onward), random "
        f"mechanisms every year, a random last week shown at chance {d['explore']:g}; prompts: {prompt}; option order "
        f"shuffled per agent and episode. {d['train_prompts']} training prompts, {d['held_out_prompts']} held out (the last "
        f"{d['held_out_share']:.0%} of episodes: other personas, other mechanisms); {d['mean_prompt_tokens']:.0f} tokens a "
        "prompt on average."
        + (" Every decision is also shown as its twin: the same worker, week, memory and contacts under a second random "
           "mechanism, with the target's choice there; the prompt counts include the twins." if twins else ""),
        "",
        "## Adapter",
        f"Rank {lora['rank']}, alpha {lora['alpha']:g}, on the attention and MLP projections of the top {lora['layers']} "
        f"layers; AdamW at {lora['learning_rate']:g} (cosine over {lora['epochs']} epochs), {lora['batch']} "
        + ("decisions (each with its twin)" if twins else "prompts") + " a step, "
        + (f"a contrast term weighted {lora['contrast_weight']:g} (the squared error, in bins, of the change in expected "
           "hours between twins), " if twins else "")
        + f"early stopping on the held-out loss (patience {lora['patience']}), seed {lora['seed']}"
        + (f", a budget of {lora['max_steps']} steps" if lora.get("max_steps") else "")
        + f"; {lora['steps_run']} steps run ({lora['epochs_run']:g} epochs), the adapter kept from the evaluation with the "
        f"lowest held-out loss. Base model sha256 "
        f"{meta['base_model_sha256']}; adapter (GGUF) sha256 {meta['adapter_sha256']}.",
        "",
        "## Held-out fit",
        "| | KL (nats) | Jensen-Shannon (bits) | mass on bin digits |" + (" change in hours between twins, RMS error (h) |" if twins else ""),
        "|---|---|---|---|" + ("---|" if twins else ""),
        fit_row("base model", base),
        fit_row(f"tuned (step {tuned['step']})", tuned),
        "",
        "![loss](loss.png)",
        "",
        f"Compute time on {meta['device']}: {meta['wall_s']['frozen_layers'] / 60:.0f} min running the frozen layers once over "
        f"every prompt, {meta['wall_s']['training'] / 60:.0f} min of training (optimiser steps and held-out evaluations).",
        "",
    ]
    (out / "card.md").write_text("\n".join(lines))
