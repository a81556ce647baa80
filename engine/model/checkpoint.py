"""A checkpoint's files without its weights: where it is (a directory, a Hub id or the test-model
alias), its config, and its tokenizer, self-checked: what a backend that completes elsewhere (the
daemon's client, a server's client) needs in an editor's process."""

from __future__ import annotations

import os
from typing import Any

from transformers import AutoConfig

from fimls.contract import ModelUnavailable
from fimls.engine.model.tokenizer import CodeTokenizer, TokenizerRefused, load_tokenizer
from fimls.testmodel import TEST_MODEL_ALIAS


def resolve_model_path(spec: str) -> str:
    """Turn the model setting into something `from_pretrained` takes: a directory or a Hub id."""
    if spec == TEST_MODEL_ALIAS:
        from fimls.testmodel import ensure_test_model  # imports the training stack only when asked

        return str(ensure_test_model())
    expanded = os.path.expanduser(spec)
    if os.path.isdir(expanded):
        return expanded
    # Hub ids are exactly `owner/name`; anything else that names a path must exist on disk.
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") != 1 or os.path.exists(expanded)
    if looks_like_path:
        raise ModelUnavailable(
            f"No model directory at '{spec}'; point fimls at a directory holding config.json and the "
            f"weights (for example one saved by `fimls make-test-model`), or at a Hugging Face model id."
        )
    return spec


def read_config(path: str, *, offline: bool, trust_remote_code: bool) -> dict[str, Any]:
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as local_error:
        if offline or os.path.isdir(path):
            where = "in that directory" if os.path.isdir(path) else "in the local Hugging Face cache (offline mode is on)"
            raise ModelUnavailable(
                f"Could not load model '{path}': no usable config.json {where}; download it once with network "
                f"access or set the model to a local directory."
            ) from local_error
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as remote_error:
            reason = str(remote_error).strip().splitlines()[0][:200]
            raise ModelUnavailable(
                f"Could not load model '{path}': it is not a local directory and fetching it from the "
                f"Hugging Face Hub failed ({reason}); set the model to a local directory "
                f"(--model /path/to/model or the `model` setting)."
            ) from remote_error
    return config.to_dict()


def load_checked_tokenizer(spec: str, path: str, *, local_only: bool, trust_remote_code: bool) -> CodeTokenizer:
    """The model's tokenizer, self-checked; a tokenizer that would mangle code is refused here,
    before any weights are read."""
    try:
        return load_tokenizer(path, name=spec, local_only=local_only, trust_remote_code=trust_remote_code)
    except TokenizerRefused as error:
        raise ModelUnavailable(str(error)) from error
    except (OSError, ValueError) as error:
        raise ModelUnavailable(f"Could not load the tokenizer of '{spec}': {str(error).splitlines()[0][:200]}") from error


def load_tokenizer_and_window(spec: str, *, offline: bool = False, trust_remote_code: bool = False) -> tuple[CodeTokenizer, int]:
    """The model's tokenizer, self-checked, and its context window, without reading its weights
    (for rendering prompts that a server completes)."""
    path = resolve_model_path(spec)
    config = read_config(path, offline=offline, trust_remote_code=trust_remote_code)
    local_only = offline or os.path.isdir(path)
    tokenizer = load_checked_tokenizer(spec, path, local_only=local_only, trust_remote_code=trust_remote_code)
    return tokenizer, int(config.get("max_position_embeddings") or 4096)
