"""`fimls` with a simulated faulty accelerator, for tests on machines without a GPU.

While the file named by $FIMLS_TEST_FAULT exists, every forward pass of the model raises (at its
token embedding, the first operation of transformers' forward and of fimls' lean CPU forward):
`torch.OutOfMemoryError` when the file says "oom", a RuntimeError otherwise; when it says
"slow SECONDS", every forward pass takes that much longer instead, so a request is in flight for
as long as a test needs, whatever the model writes. This stands in for the GPU, a third-party
component; fimls itself runs unchanged.
"""

import os
import sys
import time
from pathlib import Path

import fimls  # noqa: F401  (sets GPTQMODEL_CPU_WORKERS before model libraries are imported)
import torch

FAULT = Path(os.environ["FIMLS_TEST_FAULT"])
_forward = torch.nn.Embedding.forward


def faulty_forward(self, *args, **kwargs):
    if FAULT.exists():
        fault = FAULT.read_text().strip()
        if fault.startswith("slow "):
            time.sleep(float(fault.split()[1]))
            return _forward(self, *args, **kwargs)
        if fault == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        raise RuntimeError("simulated kernel failure")
    return _forward(self, *args, **kwargs)


torch.nn.Embedding.forward = faulty_forward

if __name__ == "__main__":
    from fimls.cli import main

    sys.exit(main(sys.argv[1:]))
