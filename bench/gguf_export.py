"""A dense Llama checkpoint with a byte-level BPE tokenizer (the test model's `dense/` weights,
say) written as GGUF, for llama.cpp's `llama-server`, with the `gguf` package.

llama.cpp's own `convert_hf_to_gguf.py` refuses a BPE tokenizer whose pre-tokenizer it does not
know by hash; the test model's tokenizer has DeepSeek-Coder's pre-tokenizer sequence but its own
vocabulary, so the file is written here directly, with `tokenizer.ggml.pre` `deepseek-coder`
(docs/facts.md §4). The same model then runs in fimls and in llama.cpp.
"""

from __future__ import annotations

import json
from pathlib import Path

# Hugging Face Llama tensor names -> GGUF's, per layer and for the whole model.
_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_MODEL_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}


def _unrotate(weight, heads: int):
    """Hugging Face stores q/k with the rotary halves split (rotate_half); GGUF's Llama expects
    Meta's interleaved pairs, as convert_hf_to_gguf.py writes them."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_gguf(checkpoint: Path, out: Path, *, dtype: str = "f32") -> Path:
    """`checkpoint`: a folder with config.json, model.safetensors, tokenizer.json and
    tokenizer_config.json of a LlamaForCausalLM. `dtype`: f32 or f16 tensors."""
    import gguf
    import numpy
    from safetensors.numpy import load_file

    config = json.loads((checkpoint / "config.json").read_text())
    tokenizer = json.loads((checkpoint / "tokenizer.json").read_text(encoding="utf-8"))
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    hidden = config["hidden_size"]
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(checkpoint.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    rope = config.get("rope_scaling") or config.get("rope_parameters") or {}
    writer.add_rope_freq_base(float(config.get("rope_theta") or rope.get("rope_theta", 10000.0)))
    if (rope.get("type") or rope.get("rope_type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)

    # The vocabulary: the BPE's tokens, the added ones at their ids, padding rows up to the matrix.
    rows = config["vocab_size"]
    vocab = tokenizer["model"]["vocab"]
    tokens = [f"[PAD{i}]" for i in range(rows)]
    types = [gguf.TokenType.UNUSED] * rows
    for text, token_id in vocab.items():
        tokens[token_id], types[token_id] = text, gguf.TokenType.NORMAL
    for added in tokenizer["added_tokens"]:
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED
    merges = [" ".join(m) if isinstance(m, list) else m for m in tokenizer["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("deepseek-coder")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    token_config = json.loads((checkpoint / "tokenizer_config.json").read_text(encoding="utf-8"))
    by_text = {text: i for i, text in enumerate(tokens)}

    def content(entry):
        return entry["content"] if isinstance(entry, dict) else entry

    writer.add_bos_token_id(by_text[content(token_config["bos_token"])])
    writer.add_eos_token_id(by_text[content(token_config["eos_token"])])
    writer.add_add_bos_token(bool(token_config.get("add_bos_token", True)))
    writer.add_add_eos_token(False)
    fim_keys = gguf.Keys.Tokenizer
    for key, text in ((fim_keys.FIM_PRE_ID, "<｜fim▁begin｜>"), (fim_keys.FIM_SUF_ID, "<｜fim▁hole｜>"), (fim_keys.FIM_MID_ID, "<｜fim▁end｜>")):
        if text in by_text:
            writer.add_uint32(key, by_text[text])

    tensors = load_file(str(checkpoint / "model.safetensors"))
    target = numpy.float32 if dtype == "f32" else numpy.float16
    for name, tensor in sorted(tensors.items()):
        if name in _MODEL_TENSORS:
            gguf_name = _MODEL_TENSORS[name]
        else:
            _, _, layer, rest = name.split(".", 3)
            gguf_name = f"blk.{layer}.{_LAYER_TENSORS[rest]}"
            if rest == "self_attn.q_proj.weight":
                tensor = _unrotate(tensor, heads)
            elif rest == "self_attn.k_proj.weight":
                tensor = _unrotate(tensor, kv_heads)
        # Norm weights stay float32, as llama.cpp expects of 1-D tensors.
        writer.add_tensor(gguf_name, tensor.astype(numpy.float32 if tensor.ndim == 1 else target))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
