"""Worker adapters: a LoRA adapter directory made by `llm-economist tune`, and the one shipped for
the embedded model.

A directory holds the same weights twice: `adapter.gguf` for llama.cpp (the embedded server loads
it) and `adapter/` in peft's format (the transformers backend loads it; vLLM and SGLang serve it
with `--lora-modules`). `tune.json` says what it was tuned toward and on which prompts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

META = "tune.json"
GGUF = "adapter.gguf"
PEFT_DIR = "adapter"
SHIPPED = "tuned"  # the name that selects the shipped adapter
SHIPPED_DIR = Path(__file__).parent / "adapters" / "smollm2_bounded_social"


@dataclass(frozen=True)
class WorkerAdapter:
    """A tuned adapter directory, checked complete."""

    path: Path
    meta: dict

    @property
    def gguf(self) -> Path:
        return self.path / GGUF

    @property
    def peft_dir(self) -> Path:
        return self.path / PEFT_DIR

    @property
    def digest(self) -> str:
        """Identifies the weights in cache keys: a reply with another adapter is another reply."""
        return self.meta.get("adapter_sha256") or file_digest(self.gguf)

    @property
    def prompt(self) -> dict:
        """The prompt settings (decision format, memory, contacts) the adapter was tuned on."""
        return dict(self.meta.get("prompt", {}))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_worker_adapter(name: str | Path) -> WorkerAdapter:
    """The adapter `name` names: `tuned` for the shipped one, else a directory from `llm-economist tune`."""
    path = SHIPPED_DIR if str(name) == SHIPPED else Path(name)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not an adapter directory (make one with `llm-economist tune`, or use {SHIPPED!r})")
    missing = [n for n in (META, GGUF, PEFT_DIR) if not (path / n).exists()]
    if missing:
        raise FileNotFoundError(f"adapter directory {path} lacks {', '.join(missing)}; was it written by `llm-economist tune`?")
    return WorkerAdapter(path.resolve(), json.loads((path / META).read_text()))
