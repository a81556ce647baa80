"""An act-order GPTQ checkpoint turned back into a dense model by hand, from the format's
definition (GPTQ v1, as AutoGPTQ and TheBloke wrote it), without gptqmodel: the reference the
quantized model's kernels are checked against.

Per linear layer: `qweight` int32 [in/8, out] packs eight 4-bit codes along the input dimension,
lowest bits first; `qzeros` int32 [groups, out/8] packs the zero points the same way along the
output dimension, stored minus one; `scales` [groups, out]; `g_idx` [in] names each input row's
group, which act-order permutes. W[i, o] = scales[g, o] * (code[i, o] - (zero[g, o] + 1)), g = g_idx[i].
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def unpack(packed: torch.Tensor, dim: int, bits: int = 4) -> torch.Tensor:
    shifts = torch.arange(0, 32, bits, dtype=torch.int32)
    per_word = 32 // bits
    if dim == 0:
        codes = (packed.unsqueeze(1) >> shifts.view(1, -1, 1)) & (2**bits - 1)
        return codes.reshape(packed.shape[0] * per_word, packed.shape[1])
    codes = (packed.unsqueeze(2) >> shifts.view(1, 1, -1)) & (2**bits - 1)
    return codes.reshape(packed.shape[0], packed.shape[1] * per_word)


def dequantize(qweight, qzeros, scales, g_idx, *, ignore_g_idx: bool = False) -> torch.Tensor:
    """The nn.Linear weight [out, in] in float32. `ignore_g_idx` reads groups in storage order,
    as a kernel that forgot act-order would."""
    codes = unpack(qweight, 0).float()
    zeros = unpack(qzeros, 1).float() + 1
    groups = g_idx.long()
    if ignore_g_idx:
        groups = torch.arange(codes.shape[0]) // (codes.shape[0] // scales.shape[0])
    return (scales.float()[groups] * (codes - zeros[groups])).T.contiguous()


def dense_twin(model_dir: Path, *, ignore_g_idx: bool = False):
    """A float32 LlamaForCausalLM holding the checkpoint's weights, dequantized by hand."""
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    config = json.loads((model_dir / "config.json").read_text())
    config.pop("quantization_config")
    model = LlamaForCausalLM(LlamaConfig(**config)).float().eval()
    tensors = load_file(str(model_dir / "model.safetensors"))
    state = {}
    for name, tensor in tensors.items():
        if name.endswith(".qweight"):
            base = name[: -len(".qweight")]
            state[f"{base}.weight"] = dequantize(
                tensor, tensors[f"{base}.qzeros"], tensors[f"{base}.scales"], tensors[f"{base}.g_idx"],
                ignore_g_idx=ignore_g_idx,
            )
        elif not name.endswith((".qzeros", ".scales", ".g_idx", ".bias")):
            state[name] = tensor.float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    return model
