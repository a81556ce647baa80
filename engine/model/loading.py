"""Load a causal LM and its tokenizer: GPTQ checkpoints through transformers + optimum +
gptqmodel with an explicit kernel, plain fp16/bf16/fp32 checkpoints too."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM, GPTQConfig

from fimls.contract import ModelUnavailable
from fimls.engine.model.checkpoint import load_checked_tokenizer, read_config, resolve_model_path
from fimls.engine.model.tokenizer import CodeTokenizer

log = logging.getLogger(__name__)

# gptqmodel's own `auto` picks TorchCpuAvx512Linear on CPU, which torch.compiles itself for ~50 s
# at load on a 2-core machine; the ATen int4 kernel loads in seconds and runs as fast here.
# On CUDA gptqmodel's `auto` picks Marlin/Machete, the fastest kernels that load.
_AUTO_BACKENDS = {"cpu": ["gptq_torch_aten", "gptq_torch"], "cuda": ["auto", "gptq_torch"]}


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


def _cannot_serve(model: Any, device: torch.device) -> RuntimeError | None:
    """The error a short forward raises, if any: twice, since gptqmodel repacks its weights for
    inference on the first call and its kernels refuse some shapes only then."""
    probe = torch.tensor([[model.config.bos_token_id or 0] * 2], device=device)
    try:
        with torch.inference_mode():
            for _ in range(2):
                model(input_ids=probe)
    except RuntimeError as error:
        return error
    return None


def refuse_made_up_weights(spec: str, report: dict[str, Any], shown: int = 3) -> None:
    """transformers fills a parameter the checkpoint lacks with fresh random values, and drops a
    tensor it cannot place, and only logs it: a model served that way writes plausible-looking
    garbage. Any such parameter or tensor refuses the model, naming what did not load."""
    problems = []
    for key, what in (
        ("missing_keys", "the checkpoint lacks weights the model needs"),
        ("unexpected_keys", "the checkpoint holds tensors that fit no part of the model"),
        ("mismatched_keys", "the checkpoint's weights have other shapes than the model's"),
    ):
        names = sorted(str(name if isinstance(name, str) else name[0]) for name in report.get(key) or ())
        if names:
            more = f" and {len(names) - shown} more" if len(names) > shown else ""
            problems.append(f"{what} ({len(names)}: {', '.join(names[:shown])}{more})")
    if problems:
        raise ModelUnavailable(
            f"Refusing '{spec}': {'; '.join(problems)}; serving it would make those weights up. Use a checkpoint "
            f"saved for this model's architecture, or re-download it if it is damaged."
        )


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
    config = read_config(path, offline=offline, trust_remote_code=trust_remote_code)
    quant = _gptq_config(config)
    torch_dtype = choose_dtype(dtype, torch_device)
    if quant is None and torch_device.type == "cpu" and dtype == "auto":
        # Dense weights on CPU: float32 matmuls are the fast, exact path there.
        torch_dtype = torch.float32

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
            kwargs["quantization_config"] = GPTQConfig(bits=int(quant.get("bits", 4)), backend=backend)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path,
                device_map=str(torch_device),
                dtype=torch_dtype,
                local_files_only=local_only,
                trust_remote_code=trust_remote_code,
                output_loading_info=True,
                **kwargs,
            )
        except (ImportError, ValueError, NotImplementedError, RuntimeError) as error:
            last_error = error
            log.warning("GPTQ kernel %s did not load on %s (%s); trying the next one", backend, torch_device, error)
            continue
        model, report = model
        refuse_made_up_weights(spec, report)
        model.eval()
        if backend is not None and (failure := _cannot_serve(model, torch_device)) is not None:
            # Some kernels load shapes they cannot multiply (a group that does not divide a
            # layer's width): the next kernel may, and a user should never see the traceback.
            last_error = failure
            log.warning("GPTQ kernel %s cannot serve %s on %s (%s); trying the next one", backend, spec, torch_device, failure)
            del model
            continue
        return LoadedModel(
            name=spec,
            model=model,
            tokenizer=tokenizer,
            device=torch_device,
            dtype=torch_dtype,
            kernel=_kernel_name(model),
            load_seconds=time.perf_counter() - started,
        )
    reason = (str(last_error).strip().splitlines() or [type(last_error).__name__])[0][:300]
    raise ModelUnavailable(f"Could not load '{spec}' on {torch_device}: no GPTQ kernel of {backends} serves it ({reason}).")
