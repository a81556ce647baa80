"""The Llama forward pass for the CPU written out as a few tensor operations per layer, with the
model's own weights and kernels (gptqmodel's int4 modules, the embedding, the norms' weights, the
rotary embedding), called by the decode path in place of transformers' forward.

Why, measured (`python -m fimls.bench.cpu_profile`, 2-core CPU, cpu-medium shape): transformers'
forward spent a quarter of a decode step between operators (mask building, cache bookkeeping,
per-module dispatch, gptqmodel's module wrapper), and its dynamic cache copied every layer's keys
and values at each token (`cat`), a cost that grows with the context. Here the cache is a buffer
that grows by doubling, the int4 kernel is called directly (q/k/v and gate/up as one matmul each
where that is bit-identical, checked at load), and each remaining operation is transformers'
own, in its order and dtype (RMSNorm's float32 round trip, the rotary embedding module, SDPA with
the mask transformers would pass): the logits are bit-identical to transformers' forward
(tests/test_cpu_forward.py), so greedy decoding gives the same tokens.

A faster attention for one query (two float32 matmuls, 2-3x faster than the CPU flash kernel
at 1,500 positions) was measured and left out: its rounding differs, and on random weights a
third of greedy completions then differed from transformers' in some token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

INITIAL_POSITIONS = 512


@dataclass
class LeanOutput:
    logits: torch.Tensor


class GrowingCache:
    """Keys and values per layer in buffers of `capacity` positions, doubled when full; the first
    `length` are filled. `crop` is DynamicCache's (a negative count drops that many from the end),
    so `decode.rewind` and the sessions treat it as they treat a dynamic cache."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype, capacity: int = INITIAL_POSITIONS):
        self.length = 0
        self.keys = [torch.empty(1, kv_heads, capacity, head_dim, dtype=dtype) for _ in range(layers)]
        self.values = [torch.empty(1, kv_heads, capacity, head_dim, dtype=dtype) for _ in range(layers)]

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, max_length: int) -> None:
        self.length = max(0, self.length + max_length) if max_length < 0 else min(self.length, max_length)

    def reserve(self, positions: int) -> None:
        if positions <= self.capacity:
            return
        capacity = self.capacity
        while capacity < positions:
            capacity *= 2
        for buffers in (self.keys, self.values):
            for layer, old in enumerate(buffers):
                grown = old.new_empty(old.shape[0], old.shape[1], capacity, old.shape[3])
                grown[:, :, : self.length].copy_(old[:, :, : self.length])
                buffers[layer] = grown

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Put a layer's new keys and values after the filled positions; the layer's keys and
        values up to and including them. `advance` moves `length` once every layer has written."""
        end = self.length + keys.shape[2]
        self.keys[layer][:, :, self.length : end].copy_(keys)
        self.values[layer][:, :, self.length : end].copy_(values)
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, tokens: int) -> None:
        self.length += tokens


def supports(model: Any) -> str | None:
    """None if `model` is a Llama this forward reproduces; otherwise why not (it then runs
    through transformers' own forward)."""
    config = model.config
    if getattr(config, "model_type", None) != "llama":
        return f"model type {getattr(config, 'model_type', None)!r} is not llama"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r} is not silu"
    if getattr(config, "pretraining_tp", 1) not in (None, 1):
        return "pretraining_tp > 1"
    heads = config.num_attention_heads
    if (getattr(config, "num_key_value_heads", None) or heads) != heads:
        # transformers packs grouped queries its own way for one query; DeepSeek-Coder 1.3B and
        # 6.7B have as many key/value heads as query heads.
        return "grouped-query attention"
    return None


def _int4_kernel(module: Any) -> bool:
    """gptqmodel's ATen int4 module, transformed for inference: its matmul can be called directly.
    Not where a group does not divide the input width (the kernel refuses it; the module's own
    call pads it)."""
    return (
        getattr(module, "linear_mode", None) == "inference"
        and module.in_features % module.group_size == 0
        and getattr(module, "scales_and_zeros", None) is not None
        and getattr(module, "bias", None) is None
        and not getattr(module, "adapter", None)
        and module._ret_idx_is_identity()
    )


def _projections(modules: Sequence[Any], dtype: torch.dtype) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """One call giving each module's output for the same input (q, k, v; gate, up).

    gptqmodel's module wrapper costs ~37 us a call on a 2-core CPU (56 calls a step): its ATen
    int4 kernel is called directly, the modules' packed weights put side by side as one matmul
    where that gives bit-identical outputs (checked here, once). Anything else calls the modules.
    """
    probe = torch.randn(3, modules[0].in_features, generator=torch.Generator().manual_seed(0)).to(dtype)
    separate = [module(probe) for module in modules]  # also makes gptqmodel pack for inference
    if not all(_int4_kernel(module) for module in modules) or len({module.group_size for module in modules}) != 1:
        return lambda x: [module(x) for module in modules]
    kernel = torch.ops.aten._weight_int4pack_mm_for_cpu
    group = modules[0].group_size
    sizes = [module.out_features for module in modules]
    packed = torch.cat([module.qweight for module in modules], 0)
    scales = torch.cat([module.scales_and_zeros for module in modules], 1)
    if not torch.equal(kernel(probe, packed, group, scales), torch.cat(separate, -1)):
        weights = [(module.qweight, module.scales_and_zeros) for module in modules]
        return lambda x: [kernel(x.reshape(-1, x.shape[-1]), w, group, s).view(*x.shape[:-1], -1) for w, s in weights]
    return lambda x: kernel(x.reshape(-1, x.shape[-1]), packed, group, scales).view(*x.shape[:-1], -1).split(sizes, -1)


def _rms_norm(x: torch.Tensor, norm: Any) -> torch.Tensor:
    # transformers' LlamaRMSNorm, step for step: the same rounding, so the same tokens.
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * x.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LeanLlama:
    """Callable like the model's forward for the keywords `decode.forward_tokens` passes."""

    def __init__(self, model: Any):
        reason = supports(model)
        if reason:
            raise ValueError(f"the lean CPU forward does not run this model: {reason}")
        config = model.config
        self.embed = model.model.embed_tokens
        self.layers = list(model.model.layers[: config.num_hidden_layers])
        self.norm = model.model.norm
        self.lm_head = model.lm_head
        self.rotary = model.model.rotary_emb
        self.heads = config.num_attention_heads  # as many key/value heads: `supports` checked
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scaling = self.head_dim**-0.5
        self.dtype = self.embed.weight.dtype
        with torch.inference_mode():
            self.qkv = [
                _projections([layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj], self.dtype)
                for layer in self.layers
            ]
            self.output = [_projections([layer.self_attn.o_proj], self.dtype) for layer in self.layers]
            self.gate_up = [_projections([layer.mlp.gate_proj, layer.mlp.up_proj], self.dtype) for layer in self.layers]
            self.down = [_projections([layer.mlp.down_proj], self.dtype) for layer in self.layers]

    def new_cache(self) -> GrowingCache:
        return GrowingCache(len(self.layers), self.heads, self.head_dim, self.dtype)

    def _attention(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, start: int) -> torch.Tensor:
        """SDPA called as transformers calls it for each case (no mask for one query, `is_causal`
        for a prompt from position 0, a boolean mask for a run after cached positions), so the
        same kernel gets the same inputs and gives the same numbers."""
        tokens, positions = q.shape[2], keys.shape[2]
        if tokens == 1:
            return F.scaled_dot_product_attention(q, keys, values, scale=self.scaling)
        if start == 0:
            return F.scaled_dot_product_attention(q, keys, values, is_causal=True, scale=self.scaling)
        visible = torch.ones(tokens, positions, dtype=torch.bool).tril_(start)[None, None]
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=visible, scale=self.scaling)

    @torch.inference_mode()
    def __call__(
        self,
        input_ids: torch.Tensor,
        past_key_values: GrowingCache,
        position_ids: torch.Tensor,
        logits_to_keep: int = 1,
        **_: Any,
    ) -> LeanOutput:
        cache = past_key_values
        tokens = input_ids.shape[1]
        start = cache.length
        if int(position_ids[0, 0]) != start:
            raise ValueError(f"tokens at position {int(position_ids[0, 0])} fed to a cache of {start} positions")
        cache.reserve(start + tokens)
        x = self.embed(input_ids)
        cos, sin = self.rotary(x, position_ids)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        split = (1, tokens, -1, self.head_dim)
        for index, layer in enumerate(self.layers):
            h = _rms_norm(x, layer.input_layernorm)
            q, k, v = (part.reshape(split).transpose(1, 2) for part in self.qkv[index](h))
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            keys, values = cache.write(index, k, v)
            out = self._attention(q, keys, values, start)
            x = x + self.output[index](out.transpose(1, 2).reshape(1, tokens, -1))[0]
            h = _rms_norm(x, layer.post_attention_layernorm)
            gate, up = self.gate_up[index](h)
            x = x + self.down[index](F.silu(gate) * up)[0]
        cache.advance(tokens)
        return LeanOutput(self.lm_head(_rms_norm(x[:, -logits_to_keep:], self.norm)))
