"""`fimls bench gpu`: random-weight GPTQ models with DeepSeek-Coder-1.3B and 6.7B shapes, timed
against the physical limits of the device and against naive `model.generate`.

For each shape: cold time to first token at 2K and 4K prompt tokens, keystroke time to first
token with KV reuse, decode ms/token, and a 32-token single-line completion end to end. With
`--device cpu --small` it runs the same code on small shapes and short prompts, to check it on a
machine without a GPU.
"""

from __future__ import annotations

import gc
import json
import random
import time
from typing import Any

# Hardware ceilings for the floor columns (docs/facts.md §3: one H100, batch 1). A floor is a lower
# bound on time: bytes that must move over bandwidth, or FLOPs over peak rate, whichever is larger.
CEILINGS = {"cuda": {"bytes_per_s": 3.0e12, "flops_per_s": 8.0e14, "name": "H100 (3 TB/s, 800 TFLOP/s bf16)"}}
FULL_SHAPES = ["deepseek-coder-1.3b", "deepseek-coder-6.7b"]
SMALL_SHAPES = ["cpu-medium"]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _params(shape: str) -> tuple[int, int, int, int]:
    from fimls.bench.random_gptq import SHAPES

    return SHAPES[shape]


def floors_ms(shape: str, context: int, prefill_tokens: int, device_type: str) -> dict[str, float] | None:
    ceiling = CEILINGS.get(device_type)
    if ceiling is None:
        return None
    hidden, layers, _, intermediate = _params(shape)
    linear_params = layers * (4 * hidden * hidden + 3 * hidden * intermediate)
    weight_bytes = linear_params * 0.5 + linear_params / 128 * 2 * 1.0625  # int4 + fp16 scales/zeros per group of 128
    head_bytes = 32256 * hidden * 2  # the fp16 lm_head row block is read at every step
    kv_bytes = 2 * layers * context * hidden * 2
    decode = (weight_bytes + head_bytes + kv_bytes) / ceiling["bytes_per_s"] * 1000
    attention_flops = 2 * layers * prefill_tokens**2 * hidden  # causal QK^T and AV, half the square each
    flops = 2 * linear_params * prefill_tokens + attention_flops + 2 * 32256 * hidden
    prefill = max(flops / ceiling["flops_per_s"], (weight_bytes + kv_bytes) / ceiling["bytes_per_s"]) * 1000
    return {"decode_ms_per_token": round(decode, 3), f"prefill_{prefill_tokens}_ms": round(prefill, 3)}


def _timed(fn, device) -> tuple[Any, float]:
    _sync(device)
    started = time.perf_counter()
    result = fn()
    _sync(device)
    return result, (time.perf_counter() - started) * 1000


def bench_shape(shape: str, device: str, prompt_lengths: list[int], decode_tokens: int = 64, gptq_backend: str = "auto") -> dict[str, Any]:
    import torch

    from fimls.bench.random_gptq import write_random_gptq
    from fimls.backends import model_spec, tuning
    from fimls.engine.backends.inprocess import open_inprocess
    from fimls.engine.model.decode import generate
    from fimls.settings import Settings
    from fimls.testmodel import cache_root, ensure_test_model

    path = write_random_gptq(shape, cache_root() / f"bench-{shape}", ensure_test_model())
    # What a user gets (static cache and CUDA graphs on CUDA, warmed up), without speculation:
    # random weights repeat themselves, which would flatter prompt-lookup drafts.
    settings = Settings(model=str(path), device=device, speculative_tokens=0, backend="inprocess", gptq_backend=gptq_backend)
    engine = open_inprocess(model_spec(settings), tuning(settings)).engine
    model, dev = engine.loaded.model, engine.loaded.device
    forward = engine.forward  # what the engine decodes with (the lean forward on CPU)
    rng = random.Random(0)
    no_stops: frozenset[int] = frozenset()

    def run(prompt, new_tokens):
        return generate(forward, engine.session, prompt, max_new_tokens=new_tokens, stop_ids=no_stops,
                        device=dev, decode_forward=engine.decode_forward,
                        clock=lambda: (_sync(dev), time.perf_counter())[1])

    report: dict[str, Any] = {
        "shape": shape,
        "kernel": engine.loaded.kernel,
        "dtype": str(engine.loaded.dtype),
        "cuda_graphs": engine.decode_forward is not None,
        "static_cache": engine.static_cache,
        "forward": engine.forward_kind,
    }
    for length in prompt_lengths:
        prompt = [rng.randrange(100, 32000) for _ in range(length)]
        engine.session.reset()
        cold = run(prompt, 1)
        report[f"cold_ttft_{length}_ms"] = round(cold.first_token_s * 1000, 2)
        # A keystroke: the last 3 tokens change, the rest is reused from the cache.
        keystroke = prompt[:-3] + [rng.randrange(100, 32000) for _ in range(3)]
        warm = run(keystroke, 1)
        report[f"keystroke_ttft_{length}_ms"] = round(warm.first_token_s * 1000, 2)
        report[f"keystroke_reused_{length}"] = warm.reused_tokens
    length = prompt_lengths[0]
    prompt = [rng.randrange(100, 32000) for _ in range(length)]
    engine.session.reset()
    run(prompt, 1)
    decoded = run(prompt[:-3] + [11, 12, 13], decode_tokens)
    report["decode_ms_per_token"] = round((decoded.total_s - decoded.first_token_s) * 1000 / (decode_tokens - 1), 3)
    single_line = run(prompt[:-2] + [21, 22], 32)
    report["completion_32_tokens_ms"] = round(single_line.total_s * 1000, 2)

    ids = torch.tensor([prompt[:-2] + [21, 22]], device=dev)
    generate_kwargs = dict(attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.inference_mode():
        _, naive_ttft = _timed(lambda: model.generate(ids, max_new_tokens=1, min_new_tokens=1, **generate_kwargs), dev)
        _, naive_32 = _timed(lambda: model.generate(ids, max_new_tokens=32, min_new_tokens=32, **generate_kwargs), dev)
    report["naive_ttft_ms"] = round(naive_ttft, 2)
    report["naive_completion_32_tokens_ms"] = round(naive_32, 2)
    report["speedup_keystroke_ttft"] = round(naive_ttft / report[f"keystroke_ttft_{length}_ms"], 2)
    report["speedup_completion_32"] = round(naive_32 / report["completion_32_tokens_ms"], 2)
    limits = floors_ms(shape, length, prompt_lengths[-1], dev.type)
    report["physical_floor"] = limits
    return report


def run(device: str, small: bool, gptq_backend: str = "auto") -> dict[str, Any]:
    import torch

    from fimls.engine.model.loading import choose_device

    dev = choose_device(device)
    shapes = SMALL_SHAPES if small else FULL_SHAPES
    lengths = [256, 512] if small else [2048, 4096]
    results = []
    for shape in shapes:
        results.append(bench_shape(shape, device, lengths, gptq_backend=gptq_backend))
        # The shape's engine is gone with bench_shape's frame; give its GPU memory back before
        # the next, larger model loads.
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return {
        "bench": "gpu",
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "ceilings": CEILINGS.get(dev.type, {}).get("name"),
        "small": small,
        "prompt_lengths": lengths,
        "weights": "random (speed does not depend on the values), GPTQ 4-bit group 128",
        "shapes": results,
    }


def main(args) -> int:
    from fimls.stdio import print_out

    report = run(args.device, args.small, args.gptq_backend)
    if not args.json:
        for shape in report["shapes"]:
            for key, value in shape.items():
                print_out(f"{shape['shape']:>22} {key:>32}: {value}")
    print_out(json.dumps(report))
    return 0
