"""GPTQ 4-bit checkpoints with random weights and DeepSeek-Coder's real shapes, written directly.

Speed does not depend on the weight values, so instead of quantizing (minutes to hours for 1.3B
and 6.7B) the packed tensors are filled with random 4-bit codes, symmetric zero points and small
scales. The result loads through the same transformers + optimum + gptqmodel path as a real
checkpoint; the tokenizer is the test model's (DeepSeek-Coder's added tokens and ids).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SHAPES = {
    # name: (hidden, layers, heads, intermediate)
    "deepseek-coder-1.3b": (2048, 24, 16, 5504),
    "deepseek-coder-6.7b": (4096, 32, 32, 11008),
    # Big enough on a 2-core CPU that prefill dominates a keystroke, small enough to bench in minutes.
    "cpu-medium": (1024, 8, 8, 2816),
    # An MLP width a group of 128 does not divide (as DeepSeek-Coder-V2-Lite's dense layer's 10944):
    # a shape some GPTQ kernels cannot serve.
    "ragged-groups": (128, 1, 4, 320),
}
GROUP_SIZE = 128
VOCAB_ROWS = 32256
SYMMETRIC_ZEROS = 0x77777777  # eight 4-bit zero points of 8, stored minus one as GPTQ v1 does


def write_random_gptq(shape: str, out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    import torch
    from safetensors.torch import save_file

    hidden, layers, heads, intermediate = SHAPES[shape]
    stamp = out / "fimls-random-gptq.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == {"shape": shape, "seed": seed}:
        return out
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}

    def quantized(name: str, in_features: int, out_features: int) -> None:
        groups = -(-in_features // GROUP_SIZE)  # the last group short where the width is ragged
        tensors[f"{name}.qweight"] = torch.randint(
            -(2**31), 2**31 - 1, (in_features // 8, out_features), dtype=torch.int32, generator=generator
        )
        tensors[f"{name}.qzeros"] = torch.full((groups, out_features // 8), SYMMETRIC_ZEROS, dtype=torch.int32)
        tensors[f"{name}.scales"] = torch.full((groups, out_features), 0.004, dtype=torch.float16)
        tensors[f"{name}.g_idx"] = torch.arange(in_features, dtype=torch.int32) // GROUP_SIZE

    def dense(name: str, *size: int, std: float = 0.02) -> None:
        tensors[name] = (torch.randn(*size, generator=generator) * std).to(torch.bfloat16)

    dense("model.embed_tokens.weight", VOCAB_ROWS, hidden)
    dense("lm_head.weight", VOCAB_ROWS, hidden)
    tensors["model.norm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
    for i in range(layers):
        prefix = f"model.layers.{i}"
        for norm in ("input_layernorm", "post_attention_layernorm"):
            tensors[f"{prefix}.{norm}.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            quantized(f"{prefix}.self_attn.{proj}", hidden, hidden)
        quantized(f"{prefix}.mlp.gate_proj", hidden, intermediate)
        quantized(f"{prefix}.mlp.up_proj", hidden, intermediate)
        quantized(f"{prefix}.mlp.down_proj", intermediate, hidden)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})

    config = json.loads((tokenizer_dir / "config.json").read_text())
    config.update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  num_key_value_heads=heads, intermediate_size=intermediate, head_dim=hidden // heads)
    config["quantization_config"]["group_size"] = GROUP_SIZE
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(tokenizer_dir / name, out / name)
    stamp.write_text(json.dumps({"shape": shape, "seed": seed}))
    return out


def write_dense_twin(gptq_dir: Path, out: Path) -> Path:
    """The same weights dequantized (scale x (code - zero), GPTQ v1's zero points stored minus
    one) into a plain float16 Llama checkpoint: what llama.cpp's converter and quantizer take,
    so fimls and llama.cpp run the same random model."""
    import torch
    from safetensors.torch import load_file, save_file

    stamp = out / "fimls-dense-twin.json"
    source = json.loads((gptq_dir / "fimls-random-gptq.json").read_text())
    if stamp.is_file() and json.loads(stamp.read_text()) == source:
        return out
    out.mkdir(parents=True, exist_ok=True)
    packed = load_file(str(gptq_dir / "model.safetensors"))
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    dense: dict[str, torch.Tensor] = {}
    for name, tensor in packed.items():
        if name.endswith(".qweight"):
            base = name.removesuffix(".qweight")
            codes = ((tensor.unsqueeze(1) >> shifts.view(1, 8, 1)) & 0xF).reshape(-1, tensor.shape[1])  # [in, out]
            zeros = ((packed[f"{base}.qzeros"].unsqueeze(2) >> shifts.view(1, 1, 8)) & 0xF).reshape(-1, codes.shape[1]) + 1
            group = packed[f"{base}.g_idx"].long()
            weight = packed[f"{base}.scales"].float()[group] * (codes - zeros[group]).float()
            dense[f"{base}.weight"] = weight.t().contiguous().to(torch.float16)
        elif not name.endswith((".qzeros", ".scales", ".g_idx")):
            dense[name] = tensor.to(torch.float16)
    save_file(dense, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((gptq_dir / "config.json").read_text())
    config.pop("quantization_config", None)
    config["torch_dtype"] = "float16"
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(gptq_dir / name, out / name)
    stamp.write_text(json.dumps(source))
    return out
