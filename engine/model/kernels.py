"""Build gptqmodel's CUDA GPTQ kernels once, before any model loads, so that no JIT compile lands
on a keystroke or inside a timed run: Marlin first (what `gptqBackend: auto` picks on Hopper),
then ExLlamaV2, then Triton (nothing to build). `MAX_JOBS` is the machine's cores and
`TORCH_CUDA_ARCH_LIST` the GPU present, so nvcc builds one architecture with every core. The
builds land in gptqmodel's own cache (~/.cache/gptqmodel), where every later load finds them."""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
import traceback
from pathlib import Path

import torch

log = logging.getLogger(__name__)

# (the gptqBackend setting to use when this kernel is the best that built, how to build it)
CHOICES = (
    ("auto", "gptqmodel.utils.marlin", "prewarm_marlin_extension", True),  # auto picks Marlin once it is built
    ("gptq_exllama_v2", "gptqmodel.utils.exllamav2", "prewarm_exllamav2_gptq_extension", False),
    ("gptq_triton", None, None, False),
)


def build_environment() -> dict[str, str]:
    """The variables the build reads, set for this machine unless the user set them."""
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 1))
    if torch.cuda.is_available() and "TORCH_CUDA_ARCH_LIST" not in os.environ:
        major, minor = torch.cuda.get_device_capability(0)
        os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
    return {name: os.environ.get(name, "") for name in ("MAX_JOBS", "TORCH_CUDA_ARCH_LIST")}


def warm_kernels(report_path: Path) -> int:
    """Build the first kernel that builds; write what was tried, how long each took and the
    `gptqBackend` to use to `report_path`. 0 if some GPU kernel is usable."""
    report: dict = {"environment": build_environment(), "tried": [], "gptq_backend": None}
    if not torch.cuda.is_available():
        report["gptq_backend"] = "auto"
        report["tried"].append({"kernel": "none", "ok": True, "why": "no CUDA device: nothing to build"})
        report_path.write_text(json.dumps(report, indent=1) + "\n")
        return 0
    for backend, module, function, takes_dtype in CHOICES:
        started = time.perf_counter()
        entry = {"kernel": backend if module is None else function.removeprefix("prewarm_"), "gptq_backend": backend}
        try:
            if module is not None:
                build = getattr(importlib.import_module(module), function)
                # float16: what fimls runs GPTQ models in on CUDA (engine/model/loading.py)
                built = build(torch.float16) if takes_dtype else build()
                if not built:
                    raise RuntimeError("the extension did not load after its build")
            entry["ok"] = True
        except Exception as error:  # a kernel that cannot be built here: say why, take the next
            entry["ok"] = False
            entry["why"] = f"{type(error).__name__}: {error}"[:2000]
            log.warning("GPTQ kernel %s unavailable (%s); trying the next one", backend, entry["why"])
            log.debug("%s", traceback.format_exc())
        entry["seconds"] = round(time.perf_counter() - started, 1)
        report["tried"].append(entry)
        print(json.dumps(entry), flush=True)
        if entry["ok"]:
            report["gptq_backend"] = backend
            break
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["gptq_backend"] else 1
