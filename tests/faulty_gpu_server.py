"""`fimls` with a simulated faulty accelerator, for tests on machines without a GPU.

While the file named by $FIMLS_TEST_FAULT exists, every forward pass of the model raises (at its
token embedding, the first operation of transformers' forward and of fimls' lean CPU forward): `torch.OutOfMemoryError` when the file says "oom", a RuntimeError otherwise. This
stands in for the GPU, a third-party component; fimls itself runs unchanged.
"""

import os
import sys
from pathlib import Path

import fimls  # noqa: F401  (sets GPTQMODEL_CPU_WORKERS before model libraries are imported)
import torch

FAULT = Path(os.environ["FIMLS_TEST_FAULT"])
_forward = torch.nn.Embedding.forward


def faulty_forward(self, *args, **kwargs):
    if FAULT.exists():
        if FAULT.read_text().strip() == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        raise RuntimeError("simulated kernel failure")
    return _forward(self, *args, **kwargs)


torch.nn.Embedding.forward = faulty_forward

if __name__ == "__main__":
    from fimls.cli import main

    sys.exit(main(sys.argv[1:]))
