"""The metadata files of the DeepSeek-Coder checkpoints users download, as they are on the Hub
(docs/facts.md §2), with a small model's dimensions put in where the real ones would not fit.

The test model and the replicas of each real repository are written from here, so the files
fimls is tested against are the files users load: the same keys, the same old-style values
(`rope_scaling` with `type`, no `checkpoint_format`), the same tokenizer_config.json to the byte.
"""

from __future__ import annotations

import json
from typing import Any

from tokenizers import Regex, pre_tokenizers

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
FIM_HOLE, FIM_BEGIN, FIM_END = "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>"
# 32000-32012: the 13 byte characters that never occur in UTF-8 text, which the real BPE therefore
# never learnt and which were added afterwards.
FILLER_CHARACTERS = ["õ", "÷", "Á", "ý", "À", "ÿ", "ø", "ú", "þ", "ü", "ù", "ö", "û"]
# 32013-32021, (string, special) as tokenizer.json marks them: the FIM tokens are not special, so
# skip_special_tokens keeps them.
NAMED_TOKENS = [
    (BOS, True), (EOS, True), (FIM_HOLE, False), (FIM_BEGIN, False), (FIM_END, False),
    ("<pad>", True), ("<|User|>", False), ("<|Assistant|>", False), ("<|EOT|>", True),
]
BASE_VOCAB = 32000
VOCAB_ROWS = 32256

# tokenizer.json's pre-tokenizer (llama.cpp calls it `deepseek-coder`): newlines alone (a real CR and
# LF in the pattern, as in the file), letters with one leading space, punctuation with one leading
# space, CJK runs, single digits, then bytes.
PRE_TOKENIZER_SPLITS = ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+"]


def pre_tokenizer():
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(pattern), "isolated") for pattern in PRE_TOKENIZER_SPLITS]
        + [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )


def _added_token(content: str) -> dict[str, Any]:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def tokenizer_config_json() -> str:
    """tokenizer_config.json of every DeepSeek-Coder v1 base repository (793 bytes): it names
    `LlamaTokenizerFast` for a byte-level BPE, and has no `added_tokens_decoder` and no chat template."""
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": _added_token(BOS),
        "clean_up_tokenization_spaces": False,
        "eos_token": _added_token(EOS),
        "legacy": True,
        "model_max_length": 16384,
        "pad_token": _added_token(EOS),
        "sp_model_kwargs": {},
        "unk_token": None,
        "tokenizer_class": "LlamaTokenizerFast",
    }
    return json.dumps(config, indent=2, ensure_ascii=False)


def special_tokens_map_json() -> str:
    """special_tokens_map.json, which only the official deepseek-ai repositories ship."""
    def token(content: str) -> dict[str, Any]:
        return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

    return json.dumps({"bos_token": token(BOS), "eos_token": token(EOS), "pad_token": token(EOS)}, indent=2, ensure_ascii=False)


def generation_config_json() -> str:
    return json.dumps({"_from_model_config": True, "bos_token_id": 32013, "eos_token_id": 32014}, indent=2)


def quantize_config(group_size: int) -> dict[str, Any]:
    """TheBloke's quantize_config.json; every branch is act-order (`desc_act`, hence `g_idx`)."""
    return {
        "bits": 4, "group_size": group_size, "damp_percent": 0.1, "desc_act": True, "sym": True,
        "true_sequential": True, "model_name_or_path": None, "model_file_base_name": "model",
    }


def quantize_config_json(group_size: int) -> str:
    return json.dumps(quantize_config(group_size), indent=2)


def config_json(dims: dict[str, int], *, gptq_group_size: int | None) -> str:
    """config.json as TheBloke's GPTQ repositories (with `quantization_config`, no
    `checkpoint_format`) or the official dense ones have it, for a model of `dims`
    (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads)."""
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "bos_token_id": 32013,
        "eos_token_id": 32014,
        "hidden_act": "silu",
        "hidden_size": dims["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": dims["intermediate_size"],
        "max_position_embeddings": 16384,
        "model_type": "llama",
        "num_attention_heads": dims["num_attention_heads"],
        "num_hidden_layers": dims["num_hidden_layers"],
        "num_key_value_heads": dims["num_attention_heads"],
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"factor": 4.0, "type": "linear"},
        "rope_theta": 100000,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.35.0",
        "use_cache": True,
        "vocab_size": VOCAB_ROWS,
    }
    if gptq_group_size is not None:
        config["pad_token_id"] = 0
        config["quantization_config"] = {**quantize_config(gptq_group_size), "quant_method": "gptq"}
    return json.dumps(dict(sorted(config.items())), indent=2)
