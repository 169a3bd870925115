"""A peft LoRA adapter of a Llama-architecture model as a GGUF LoRA file that llama.cpp applies.

llama.cpp names tensors by block (`blk.{i}.attn_q.weight`) and stores each adapter as the pair
`<name>.lora_a` (rank x in) and `<name>.lora_b` (out x rank), with `adapter.lora.alpha` in the
metadata, so that W' = W + (alpha / rank) B A as in peft. Its query and key weights are stored
with the rows of each head interleaved for its rotary embedding (the permutation llama.cpp's
converter applies), so B's rows get the same permutation there.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

# peft module path inside a Llama decoder layer -> llama.cpp tensor name inside block i
GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"layers\.(\d+)\.(.+)\.lora_([AB])\.weight$")


def rotary_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a query or key projection (heads x head_dim, ...) in llama.cpp's order: within
    each head, the two halves that rotate together interleaved."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def gguf_tensors(state: dict[str, torch.Tensor], heads: int, kv_heads: int) -> dict[str, np.ndarray]:
    """llama.cpp's names and float32 arrays of every adapter pair in a peft state dict."""
    out = {}
    for key, value in state.items():
        found = _KEY.search(key)
        if found is None:
            raise ValueError(f"adapter tensor {key!r} is not a LoRA weight of a decoder layer")
        layer, module, part = found.groups()
        if module not in GGUF_NAMES:
            raise ValueError(f"adapter tensor {key!r}: llama.cpp has no tensor for module {module!r}")
        value = value.detach().float().cpu()
        if part == "B" and module in ("self_attn.q_proj", "self_attn.k_proj"):
            value = rotary_rows(value, heads if module == "self_attn.q_proj" else kv_heads)
        out[f"blk.{layer}.{GGUF_NAMES[module]}.weight.lora_{part.lower()}"] = value.numpy()
    return out


def write_gguf_lora(state: dict[str, torch.Tensor], alpha: float, heads: int, kv_heads: int, path: str | Path,
                    architecture: str = "llama") -> Path:
    """Write the adapter pairs of `state` (peft names) as a GGUF LoRA adapter at `path`."""
    import gguf

    path = Path(path)
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for name, array in sorted(gguf_tensors(state, heads, kv_heads).items()):
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
