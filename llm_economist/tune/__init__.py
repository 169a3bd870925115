"""Tuning the worker language model toward a stated behaviour (`llm-economist tune`)."""

from .adapter import tune as tune_adapter
from .examples import TuneDataError, make_examples
from .export import write_gguf_lora
from .lora import LoraSettings

__all__ = ["LoraSettings", "TuneDataError", "make_examples", "tune_adapter", "write_gguf_lora"]
