"""fimls: inline code completions from a local DeepSeek-Coder model over LSP."""

import os

__version__ = "0.1.0"

# gptqmodel sizes its CPU thread pool at import and, on a 2-core machine, its default of one worker
# makes a virtual pool that asks for two fail. It must be set before anything imports gptqmodel,
# and every entry point imports this package first.
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, ((os.cpu_count() or 2) + 1) // 2)))

# No network traffic except an explicit model download: the Hub client's usage telemetry stays
# off, as does that of any library honouring the DO_NOT_TRACK convention.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
