"""In-process generation with a local Hugging Face `transformers` model (a directory or a GGUF file).

There is no grammar here: a schema is described to the model in a system message and the reply
is checked after generation; a reply's fixed opening (`ChatRequest.answer_prefix`) is prefilled. Logprobs come from the raw logits (before temperature), like the
server's `top_logprobs`. Nothing is downloaded: the hub is switched to offline mode and files are
read with `local_files_only`. A worker adapter (peft) is loaded beside the model and answers the
requests that ask for it; the others are answered with it switched off.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from .backend import BackendError, Completion, Sampling
from .types import ChatRequest, TokenLogprob

SCHEMA_HINT = "Reply with one JSON object and nothing else. Its keys: {keys}."


class TransformersBackend:
    """A causal LM and its tokenizer, loaded on first use; one generation at a time."""

    name = "transformers"

    def __init__(self, model_path: str | Path | None = None, adapter: str | Path | None = None) -> None:
        if model_path is None:
            from .server import embedded_model_path

            model_path = embedded_model_path()
        self.path = Path(model_path)
        if not self.path.exists():
            raise FileNotFoundError(f"transformers_model: {self.path} does not exist")
        self.model_id = f"transformers:{self.path.name}"
        self.adapter = Path(adapter) if adapter is not None else None
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the tokenizer and the model (seconds for a GGUF file: its tensors are dequantised)."""
        with self._lock:
            if self._model is not None:
                return
            os.environ["HF_HUB_OFFLINE"] = "1"  # read before the hub client is first imported
            try:
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as e:
                raise ImportError(
                    "backend 'transformers' needs the optional extra: pip install 'llm-economist[transformers]'"
                ) from e
            if self.path.is_file():
                if self.path.suffix != ".gguf":
                    raise ValueError(f"transformers_model: {self.path} is a file but not a .gguf file")
                where, extra = str(self.path.parent), {"gguf_file": self.path.name}
            else:
                where, extra = str(self.path), {}
            try:
                tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
                model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, **extra)
            except ImportError as e:
                raise ImportError(f"loading {self.path} with transformers: {e}") from e
            if self.adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.adapter))
            model.eval()
            self._tokenizer, self._model = tokenizer, model

    async def generate(self, request: ChatRequest, sampling: Sampling) -> Completion:
        return await asyncio.to_thread(self._generate, request, sampling)

    def _generate(self, request: ChatRequest, sampling: Sampling) -> Completion:
        self.load()
        import torch

        messages = [{"role": role, "content": content} for role, content in request.messages]
        prefix = request.answer_prefix or ""
        if request.schema is not None and not prefix:
            hint = SCHEMA_HINT.format(keys=describe_keys(request.schema))
            if messages[0]["role"] == "system":
                messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + hint}
            else:
                messages.insert(0, {"role": "system", "content": hint})
        tok = self._tokenizer
        try:
            # A request that gives its reply's opening is sent as written, the opening prefilled, as the
            # embedded server gets it: the model then scores exactly the position `tune` fits.
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + prefix
            inputs = tok(text, return_tensors="pt", add_special_tokens=False)
        except ValueError as e:  # no chat template shipped with the model
            raise BackendError(f"{self.path.name}: cannot build the prompt ({e}); check llm.transformers_model",
                               kind="backend_error", retryable=False, fatal=True) from e
        prompt_len = int(inputs["input_ids"].shape[1])
        sample = sampling.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "do_sample": sample,
            "return_dict_in_generate": True,
            "output_logits": request.logprobs,
            "max_time": sampling.timeout_s,
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        }
        if sample:
            kwargs.update(temperature=sampling.temperature, top_k=0, top_p=1.0)
        plain = self._model.disable_adapter() if self.adapter is not None and not request.adapter else nullcontext()
        with self._lock, plain, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(sampling.seed)
            try:
                out = self._model.generate(**inputs, **kwargs)
            except (RuntimeError, ValueError) as e:
                raise BackendError(f"{self.path.name}: generation failed ({e})", kind="backend_error", retryable=False) from e
        generated = out.sequences[0, prompt_len:].tolist()
        eos = set(_as_list(self._model.generation_config.eos_token_id)) | {tok.eos_token_id}
        ended = bool(generated) and generated[-1] in eos
        logprobs = None
        if request.logprobs and out.logits:
            logprobs = self._token_logprobs(out.logits, generated, sampling.top_logprobs, eos)
            if prefix:
                logprobs = (TokenLogprob(prefix, 0.0, ()), *logprobs)
        return Completion(
            text=prefix + tok.decode(generated, skip_special_tokens=True),
            logprobs=logprobs,
            prompt_tokens=prompt_len,
            completion_tokens=len(generated),
            truncated=not ended and len(generated) >= sampling.max_tokens,
        )

    def _token_logprobs(self, logits: tuple, generated: list[int], top: int, eos: set) -> tuple[TokenLogprob, ...]:
        import torch

        tok = self._tokenizer
        rows = []
        for step, token_id in enumerate(generated):
            if token_id in eos:
                break
            logp = torch.log_softmax(logits[step][0].float(), dim=-1)  # (vocab,)
            alternatives = ()
            if top:
                values, ids = torch.topk(logp, top)
                alternatives = tuple((tok.decode([int(i)]), float(v)) for v, i in zip(values, ids))
            rows.append(TokenLogprob(tok.decode([token_id]), float(logp[token_id]), alternatives))
        return tuple(rows)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._model = self._tokenizer = None

    def __repr__(self) -> str:
        return f"TransformersBackend({str(self.path)!r}, loaded={self._model is not None})"


def describe_keys(schema: dict) -> str:
    """The top-level properties of an object schema in words: '"hours" (integer, 0 to 80), ...'."""
    parts = []
    for name, sub in (schema.get("properties") or {}).items():
        words = [sub["type"] if isinstance(sub.get("type"), str) else "/".join(sub.get("type") or ["value"])]
        if "enum" in sub:
            words.append("one of " + ", ".join(json.dumps(v) for v in sub["enum"]))
        if "minimum" in sub and "maximum" in sub:
            words.append(f"{sub['minimum']:g} to {sub['maximum']:g}")
        if "maxLength" in sub:
            words.append(f"at most {sub['maxLength']} characters")
        parts.append(f'"{name}" ({", ".join(words)})')
    return ", ".join(parts)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
