"""Load a causal LM and its tokenizer: GPTQ checkpoints through transformers + optimum +
gptqmodel with an explicit kernel, plain fp16/bf16/fp32 checkpoints too."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from fimls.engine.tokenizer import CodeTokenizer, TokenizerRefused, load_tokenizer
from fimls.testmodel import TEST_MODEL_ALIAS

log = logging.getLogger(__name__)

# gptqmodel's own `auto` picks TorchCpuAvx512Linear on CPU, which torch.compiles itself for ~50 s
# at load on a 2-core machine; the ATen int4 kernel loads in seconds and runs as fast here.
# On CUDA gptqmodel's `auto` picks Marlin/Machete, the fastest kernels that load.
_AUTO_BACKENDS = {"cpu": ["gptq_torch_aten", "gptq_torch"], "cuda": ["auto", "gptq_torch"]}


class ModelUnavailable(RuntimeError):
    """The model could not be had; the message is one sentence a user can act on."""


@dataclass
class LoadedModel:
    name: str
    model: Any
    tokenizer: CodeTokenizer
    device: torch.device
    dtype: torch.dtype
    kernel: str
    load_seconds: float

    @property
    def context_window(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 4096))


def choose_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("device is set to cuda, but PyTorch sees no CUDA GPU; set device to auto or cpu.")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def choose_dtype(setting: str, device: torch.device) -> torch.dtype:
    if setting != "auto":
        return getattr(torch, setting)
    return torch.float16 if device.type == "cuda" else torch.bfloat16


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


def _read_config(path: str, *, offline: bool, trust_remote_code: bool) -> dict[str, Any]:
    from transformers import AutoConfig

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


def _gptq_config(config: dict[str, Any]) -> dict[str, Any] | None:
    quant = config.get("quantization_config")
    if isinstance(quant, dict) and str(quant.get("quant_method", "")).lower() == "gptq":
        return quant
    return None


def _kernel_name(model: Any) -> str:
    """The class of the first GPTQ kernel module (the ones holding packed `qweight`), or "dense"."""
    for module in model.modules():
        if hasattr(module, "qweight"):
            return type(module).__name__
    return "dense"


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
    config = _read_config(path, offline=offline, trust_remote_code=trust_remote_code)
    local_only = offline or os.path.isdir(path)
    tokenizer = load_checked_tokenizer(spec, path, local_only=local_only, trust_remote_code=trust_remote_code)
    return tokenizer, int(config.get("max_position_embeddings") or 4096)


def load_model(
    spec: str,
    *,
    device: str = "auto",
    gptq_backend: str = "auto",
    dtype: str = "auto",
    offline: bool = False,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load `spec` (Hub id, local directory or the test-model alias) ready for inference."""
    started = time.perf_counter()
    torch_device = choose_device(device)
    path = resolve_model_path(spec)
    config = _read_config(path, offline=offline, trust_remote_code=trust_remote_code)
    quant = _gptq_config(config)
    torch_dtype = choose_dtype(dtype, torch_device)
    if quant is None and torch_device.type == "cpu" and dtype == "auto":
        # Dense weights on CPU: float32 matmuls are the fast, exact path there.
        torch_dtype = torch.float32

    from transformers import AutoModelForCausalLM

    local_only = offline or os.path.isdir(path)
    tokenizer = load_checked_tokenizer(spec, path, local_only=local_only, trust_remote_code=trust_remote_code)

    backends = [None]
    if quant is not None:
        backends = (
            _AUTO_BACKENDS.get(torch_device.type, ["auto"]) if gptq_backend == "auto" else [gptq_backend]
        )
    last_error: Exception | None = None
    for backend in backends:
        kwargs: dict[str, Any] = {}
        if backend is not None:
            from transformers import GPTQConfig

            kwargs["quantization_config"] = GPTQConfig(bits=int(quant.get("bits", 4)), backend=backend)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path,
                device_map=str(torch_device),
                dtype=torch_dtype,
                local_files_only=local_only,
                trust_remote_code=trust_remote_code,
                **kwargs,
            )
        except (ImportError, ValueError, NotImplementedError, RuntimeError) as error:
            last_error = error
            log.warning("GPTQ kernel %s did not load on %s (%s); trying the next one", backend, torch_device, error)
            continue
        model.eval()
        return LoadedModel(
            name=spec,
            model=model,
            tokenizer=tokenizer,
            device=torch_device,
            dtype=torch_dtype,
            kernel=_kernel_name(model),
            load_seconds=time.perf_counter() - started,
        )
    raise ModelUnavailable(f"Could not load '{spec}' on {torch_device} with GPTQ kernels {backends}: {last_error}")
