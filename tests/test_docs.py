"""The documentation: the site builds with warnings as errors, and every code block in the pages and
the README either runs here or says why not.

A block runs when its language is one this file knows how to run: `python` (executed), `bash`
(run with the environment's commands on PATH) or `yaml` (loaded as a run config). Any other block,
and any block that needs a server, a GPU or a long study, is preceded by an HTML comment
`<!-- not run: REASON -->`. Blocks of one page run in order in one scratch directory that sees the
repository's `experiments/`, so what they write stays out of the working tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from llm_economist.planner_factory import load_config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the environment's commands: llm-economist, mkdocs
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
RUNNABLE = ("python", "bash", "yaml")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->$")
FENCE = re.compile(r"^\s*```(?P<lang>[\w-]*)\s*$")
BLOCK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    not_run: str | None  # the reason given, or None when the block runs

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    """The page's fenced code blocks, each with the `not run` reason of the line before it."""
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: code block never closed"
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        reason = NOT_RUN.match(before)
        code = textwrap.dedent("\n".join(lines[i + 1 : end]))
        blocks.append(Block(page, i + 1, opening["lang"], code, reason["reason"] if reason else None))
        i = end + 1
    return blocks


def environment() -> dict[str, str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", MPLBACKEND="Agg", NO_MKDOCS_2_WARNING="1")
    env.pop("PYTHONPATH", None)
    return env


def run_block(block: Block, cwd: Path) -> None:
    if block.lang == "yaml":
        config = cwd / f"block_{block.line}.yaml"
        config.write_text(block.code)
        load_config(config)
        return
    command = [sys.executable, "-c", block.code] if block.lang == "python" else ["bash", "-euo", "pipefail", "-c", block.code]
    done = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert done.returncode == 0, f"{block.where}: exit {done.returncode}\n{block.code}\n--- output ---\n{done.stdout[-3000:]}{done.stderr[-3000:]}"


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    configuration = (site / "reference" / "configuration" / "index.html").read_text()
    assert "population.n_agents" in configuration and "max_consecutive_fallbacks" in configuration  # generated
    assert "llm-economist distill calibrate" in (site / "reference" / "cli" / "index.html").read_text()
    assert "llm_economist.mechanisms.Mechanism" in (site / "reference" / "api" / "mechanisms" / "index.html").read_text()


def test_every_code_block_runs_here_or_says_why_not():
    silent = [f"{b.where} ({b.lang or 'no language'})" for page in PAGES for b in code_blocks(page)
              if b.not_run is None and b.lang not in RUNNABLE]
    assert not silent, "code blocks neither run nor marked `<!-- not run: REASON -->`:\n" + "\n".join(silent)


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if any(b.not_run is None and b.lang in RUNNABLE for b in code_blocks(p))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_code_blocks_of_a_page_run(page, tmp_path):
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")
    for block in code_blocks(page):
        if block.not_run is None and block.lang in RUNNABLE:
            run_block(block, tmp_path)
