"""`fimls` with a simulated faulty accelerator, for tests on machines without a GPU.

While the file named by $FIMLS_TEST_FAULT exists, every forward pass of the (transformers) Llama
model raises: `torch.OutOfMemoryError` when the file says "oom", a RuntimeError otherwise. This
stands in for the GPU, a third-party component; fimls itself runs unchanged.
"""

import os
import sys
from pathlib import Path

import fimls  # noqa: F401  (sets GPTQMODEL_CPU_WORKERS before model libraries are imported)
import torch
from transformers.models.llama import modeling_llama

FAULT = Path(os.environ["FIMLS_TEST_FAULT"])
_forward = modeling_llama.LlamaModel.forward


def faulty_forward(self, *args, **kwargs):
    if FAULT.exists():
        if FAULT.read_text().strip() == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        raise RuntimeError("simulated kernel failure")
    return _forward(self, *args, **kwargs)


modeling_llama.LlamaModel.forward = faulty_forward

if __name__ == "__main__":
    from fimls.cli import main

    sys.exit(main(sys.argv[1:]))
