"""Where one decode step's time goes on the CPU (the CPU-engine issue's first part): the model as
the in-process engine runs it (a prompt prefilled, then one token at a time into the cache), its
decode steps under torch's profiler, the operators' own time put in groups (the int4 matmuls,
attention, the cache update, sampling, the rest of the tensor work) and what is left of the
step's wall time: Python and transformers between the operators.

    python -m fimls.bench.cpu_profile [--shape cpu-medium|test-model] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from typing import Any

# Operator names to the group they belong to; the first pattern found in a name decides.
GROUPS = (
    ("int4 matmul", ("int4", "gptq", "dequant", "woq", "_weight_int")),
    ("dense matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("attention", ("scaled_dot_product", "flash_attention", "softmax", "aten::bmm")),
    ("cache update", ("index_copy", "aten::cat", "index_put", "copy_", "slice_scatter")),
    ("sampling", ("argmax", "topk", "multinomial", "sort")),
)


def _group(name: str) -> str:
    for group, patterns in GROUPS:
        if any(pattern in name for pattern in patterns):
            return group
    return "other tensor work"


def profile(shape: str, prompt_tokens: int = 256, steps: int = 32, forward: str = "lean") -> dict[str, Any]:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from fimls.backends import model_spec, tuning
    from fimls.engine.backends.inprocess import open_inprocess
    from fimls.engine.model.decode import decode_one_token, prefill, pick_next_token
    from fimls.settings import Settings
    from fimls.testmodel import cache_root, ensure_test_model

    if shape == "test-model":
        path = ensure_test_model()
    else:
        from fimls.bench.random_gptq import write_random_gptq

        path = write_random_gptq(shape, cache_root() / f"bench-{shape}", ensure_test_model())
    settings = Settings(model=str(path), device="cpu", speculative_tokens=0, backend="inprocess", cpu_forward=forward)
    engine = open_inprocess(model_spec(settings), tuning(settings)).engine
    model, device = engine.forward, engine.loaded.device
    rng = random.Random(0)
    prompt = [rng.randrange(100, 32000) for _ in range(prompt_tokens)]

    def decode(cache, token: int, position: int, count: int) -> list[float]:
        walls = []
        for offset in range(count):
            started = time.perf_counter()
            logits = decode_one_token(model, token, cache, position + offset, device, forward=engine.decode_forward)
            token = pick_next_token(logits, 0.0, 1.0)
            walls.append(time.perf_counter() - started)
        return walls

    session = engine.session
    session.reset()
    session.reuse(prompt)  # makes the cache the engine would use (static on CUDA, dynamic here)
    with torch.inference_mode():
        cache = session.cache
        logits = prefill(model, prompt, cache, 0, device)
        first = pick_next_token(logits, 0.0, 1.0)
        decode(cache, first, len(prompt), 8)  # warm-up, outside the profile
        with torch_profile(activities=[ProfilerActivity.CPU]) as profiler:
            walls = decode(cache, first, len(prompt) + 8, steps)
    own_us: dict[str, float] = defaultdict(float)
    top = []
    for event in profiler.key_averages():
        own_us[_group(event.key)] += event.self_cpu_time_total
        top.append((event.self_cpu_time_total, event.key, event.count))
    step_ms = sum(walls) / len(walls) * 1000
    groups_ms = {group: round(us / steps / 1000, 3) for group, us in sorted(own_us.items(), key=lambda kv: -kv[1])}
    operators_ms = sum(own_us.values()) / steps / 1000
    # The profiler's own cost is in the walls it measured; the unprofiled step is timed beside.
    with torch.inference_mode():
        plain = decode(cache, first, len(prompt) + 8 + steps, steps)
    return {
        "bench": "cpu_profile", "shape": shape, "forward": engine.forward_kind, "kernel": engine.loaded.kernel, "dtype": str(engine.loaded.dtype),
        "threads": torch.get_num_threads(), "context_tokens": prompt_tokens + 8, "steps": steps,
        "decode_step_ms": round(sum(plain) / len(plain) * 1000, 3),
        "profiled_step_ms": round(step_ms, 3),
        "operators_ms": groups_ms,
        # Of the profiled step: what ran outside any operator (Python, transformers, the profiler).
        "between_operators_ms": round(step_ms - operators_ms, 3),
        "top_operators": [
            {"name": name, "self_ms_per_step": round(us / steps / 1000, 3), "calls_per_step": count // steps}
            for us, name, count in sorted(top, reverse=True)[:12]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="cpu-medium", choices=["cpu-medium", "test-model"])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--forward", default="lean", choices=["lean", "transformers"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = profile(args.shape, steps=args.steps, forward=args.forward)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
