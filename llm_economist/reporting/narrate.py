"""First-person accounts of one agent's run, grounded in its trace rows.

The prompt lists the agent's persona and, step by step, what it did and what happened (hours,
income, tax, rebate, and for language-model workers its stated reasons and messages). The
written account is saved next to the facts it was given, so a reader can check every claim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import LLMConfig, RunConfig
from ..llm import ChatReply, ChatRequest, LLMClient, LLMError
from ..personas import persona_text, sample_population
from .report import NoRunError, require_files

MAX_FACT_ROWS = 24
MAX_TOKENS = 300  # room for the ~120 words asked for
SYSTEM_PROMPT = (
    "You write short first-person diaries for people in an economic simulation. Use only the facts given; "
    "do not invent numbers or events."
)
# A sentence ends at . ! or ?, perhaps inside quotes or brackets, before a space or the end of the text.
SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")


@dataclass(frozen=True)
class AgentRecord:
    """What an account is written from: whose run it is and the facts of it, one line per step."""

    run_dir: Path  # the directory whose traces were read; the narrative is written there
    agent: int
    planner: str
    persona: str
    facts: list[str]


def embedded_model(llm: LLMConfig) -> bool:
    """True when the config leaves the writing to the tiny model shipped with the package."""
    return not llm.base_urls if llm.backend == "openai" else llm.transformers_model is None


def model_label(llm: LLMConfig) -> str:
    """The model as the progress line names it."""
    if embedded_model(llm):
        return "the embedded SmolLM2-135M"
    return llm.transformers_model if llm.backend == "transformers" else f"{llm.model} at {llm.base_urls[0]}"


def agent_record(run_dir: Path, config: RunConfig, agent: int, planner: str | None) -> AgentRecord:
    """The agent's persona and trace facts under `planner` (default: the first in the traces).

    A comparison over seeds keeps each seed's traces in `seed_<s>/`; its first seed is read.
    """
    first_seed = run_dir / f"seed_{config.seed}"
    if not (run_dir / "traces.parquet").is_file() and first_seed.is_dir():
        run_dir = first_seed
    traces_path = run_dir / "traces.parquet"
    if not traces_path.is_file() and not config.output.traces:
        raise NoRunError(f"{run_dir}: the run wrote no traces (output.traces = false); rerun it with --set output.traces=true")
    require_files(run_dir, "traces.parquet")
    traces = pd.read_parquet(traces_path)
    labels = list(dict.fromkeys(traces["planner"]))
    label = planner or labels[0]
    if label not in labels:
        raise ValueError(f"--planner {label}: not in this run; its planners are {', '.join(labels)}")
    mine = traces[traces["planner"] == label]
    rows = mine[mine["agent_id"] == agent].sort_values("step")
    if rows.empty:
        traced = f"{mine['agent_id'].min()}..{mine['agent_id'].max()}"
        raise ValueError(f"--agent {agent}: no trace rows under {label}; the traced agents are {traced}")
    # Traces hold no persona columns: the population is sampled again, exactly as the run sampled it.
    pop = config.population
    population = sample_population(pop.n_agents, config.seed, pop.income_model)
    persona = persona_text(population.table.iloc[agent])
    return AgentRecord(run_dir, agent, label, persona, fact_lines(rows, config.economy.steps_per_year))


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


class NoUsableText(LLMError):
    """The model gave no text to narrate with: the command fails, though the facts are written."""


def whole_sentences(text: str) -> str:
    """`text` up to the end of its last complete sentence ("" when none is complete)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else ""


def account_text(reply: ChatReply, max_tokens: int) -> str:
    """The model's account, ended at a full sentence with a note when it ran into the length limit."""
    text = (reply.text or "").strip()
    if not text:
        return f"(the language model gave no usable text: {reply.error or 'an empty reply'})"
    # A reply served from the cache keeps its token count but not the flag.
    if not (reply.truncated or reply.completion_tokens >= max_tokens):
        return text
    kept = whole_sentences(text) or f"{text} …"
    return (
        f"{kept}\n\n*The model's text was cut at the length limit ({max_tokens} tokens), so it is shown up to its last "
        "complete sentence (or up to “…”). Rerun with a larger `--max-tokens` to give it more room.*"
    )


def embedded_caveat(run_dir: Path, agent: int) -> str:
    return (
        "> **Caveat:** this account was written by the embedded SmolLM2-135M, a tiny local model, and may be "
        "inaccurate; the facts listed below are the record. To have a real model write it, name one: "
        f"`llm-economist narrate {run_dir} --agent {agent} --set 'llm.base_urls=[http://HOST:PORT/v1]' "
        "--set llm.model=MODEL` (or set `llm.base_urls` and `llm.model` in the run's config.yaml).\n\n"
    )


def narrate(record: AgentRecord, config: RunConfig, client: LLMClient, max_tokens: int = MAX_TOKENS) -> Path:
    """Write `narrative_<planner>_agent_<id>.md` next to the traces it tells of and return its path."""
    prompt = (f"I am {record.persona}\nWhat happened to me:\n" + "\n".join(record.facts)
              + "\nWrite my diary of these weeks in about 120 words.")
    request = ChatRequest((("system", SYSTEM_PROMPT), ("user", prompt)), max_tokens=max_tokens, seed=record.agent, tag="narrate")
    reply = client.complete(request)
    account = account_text(reply, max_tokens)
    caveat = embedded_caveat(record.run_dir, record.agent) if embedded_model(config.llm) else ""
    out = record.run_dir / f"narrative_{record.planner}_agent_{record.agent}.md"
    out.write_text(
        f"# Agent {record.agent} under {record.planner}\n\n*{record.persona}*\n\n## In their words\n\n{caveat}{account}\n\n"
        "## The facts the account was written from\n\n" + "\n".join(f"- {f}" for f in record.facts) + "\n"
    )
    if not (reply.text or "").strip():
        raise NoUsableText(f"the language model gave no usable text ({reply.error or 'an empty reply'}); {out} holds the facts alone")
    return out
