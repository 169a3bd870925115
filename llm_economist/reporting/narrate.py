"""First-person accounts of one agent's run, grounded in its trace rows.

The prompt lists the agent's persona and, step by step, what it did and what happened (hours,
income, tax, rebate, and for language-model workers its stated reasons and messages). The
written account is saved next to the facts it was given, so a reader can check every claim.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from ..llm import ChatRequest, LLMClient
from ..personas import persona_text, sample_population

MAX_FACT_ROWS = 24
SYSTEM_PROMPT = (
    "You write short first-person diaries for people in an economic simulation. Use only the facts given; "
    "do not invent numbers or events."
)


def agent_facts(run_dir: Path, agent: int, planner: str | None) -> tuple[str, pd.DataFrame, str, int]:
    """(planner label, the agent's trace rows, persona sentence, steps per year) from a finished run."""
    traces_path = run_dir / "traces.parquet"
    if not traces_path.is_file():
        raise FileNotFoundError(f"narrate: {traces_path} not found (the run must write traces)")
    traces = pd.read_parquet(traces_path)
    labels = list(dict.fromkeys(traces["planner"]))
    label = planner or labels[0]
    if label not in labels:
        raise ValueError(f"narrate: planner {label!r} is not in the traces; they have {labels}")
    rows = traces[(traces["planner"] == label) & (traces["agent_id"] == agent)].sort_values("step")
    if rows.empty:
        raise ValueError(f"narrate: agent {agent} has no trace rows (traced agents: 0..{traces['agent_id'].max()})")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    population = sample_population(config["population"]["n_agents"], config["seed"], config["population"]["income_model"])
    return label, rows, persona_text(population.table.iloc[agent]), config["economy"]["steps_per_year"]


def fact_lines(rows: pd.DataFrame, steps_per_year: int) -> list[str]:
    lines = []
    for row in rows.head(MAX_FACT_ROWS).itertuples():
        line = (
            f"Year {row.year + 1}, week {row.step % steps_per_year + 1}: worked {row.hours:.0f} h; yearly pace ${row.income:,.0f} earned, "
            f"${row.tax:,.0f} tax, ${row.transfer:,.0f} rebate"
        )
        if getattr(row, "reason", None):
            line += f'; my reason: "{row.reason}"'
        if getattr(row, "message", None):
            line += f'; I told my contacts: "{row.message}"'
        lines.append(line + ".")
    return lines


def narrate(run_dir: str | Path, agent: int, client: LLMClient, planner: str | None = None) -> Path:
    """Write `narrative_<planner>_agent_<id>.md` in the run directory and return its path."""
    run_dir = Path(run_dir)
    label, rows, persona, steps_per_year = agent_facts(run_dir, agent, planner)
    facts = fact_lines(rows, steps_per_year)
    prompt = f"I am {persona}\nWhat happened to me:\n" + "\n".join(facts) + "\nWrite my diary of these weeks in about 120 words."
    reply = client.complete(ChatRequest((("system", SYSTEM_PROMPT), ("user", prompt)), max_tokens=300, seed=agent, tag="narrate"))
    account = (reply.text or "").strip() or f"(the language model gave no usable text: {reply.error})"
    out = run_dir / f"narrative_{label}_agent_{agent}.md"
    out.write_text(
        f"# Agent {agent} under {label}\n\n*{persona}*\n\n## In their words\n\n{account}\n\n"
        "## The facts the account was written from\n\n" + "\n".join(f"- {f}" for f in facts) + "\n"
    )
    return out
