"""`fimls bench engine`: replay typing a real file, one completion request per keystroke, through
the naive path (the full prompt through `model.generate` every time) and through the fimls
engine (KV reuse), on the same model and inputs in the same run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fimls.lsp.stats import percentile

DEFAULT_FILE = Path(__file__).parent / "data" / "replay_sample.py"


def keystroke_states(text: str, keystrokes: int, start_fraction: float = 0.6) -> list[tuple[str, int]]:
    """(document, cursor) after each keystroke of retyping whole lines from `start_fraction` of the
    file on: the retyped lines are removed, then typed back one character at a time (leading
    indentation comes from the editor's auto-indent, as it would)."""
    lines = text.splitlines(keepends=True)
    first = int(len(lines) * start_fraction)
    while first < len(lines) and not lines[first].strip():
        first += 1
    region_start = sum(len(line) for line in lines[:first])
    states: list[tuple[str, int]] = []
    offset = region_start
    for line in lines[first:]:
        indent = len(line) - len(line.lstrip(" \t"))
        typed_end = offset + indent
        for end in range(offset + indent + 1, offset + len(line) + 1):
            typed_end = end
            region_end = offset + len(line)
            document = text[:typed_end] + text[region_end:]
            states.append((document, typed_end))
            if len(states) == keystrokes:
                return states
        offset += len(line)
    return states


def _bench_fimls(engine, keystroke_parts, max_new_tokens, candidates: int = 1) -> dict[str, Any]:
    engine.session.reset()
    latencies, total, computed, outputs, drafted, accepted = [], 0, 0, [], 0, 0
    for parts in keystroke_parts:
        started = time.perf_counter()
        completion = engine.complete(parts, max_new_tokens=max_new_tokens, candidates=candidates)
        latencies.append((time.perf_counter() - started) * 1000)
        gen = completion.generation
        total += gen.prompt_tokens
        computed += gen.prompt_tokens - gen.reused_tokens
        outputs.append(gen.token_ids)
        drafted, accepted = drafted + gen.drafted_tokens, accepted + gen.accepted_tokens
    return {
        "spec_drafted": drafted,
        "spec_acceptance": round(accepted / drafted, 4) if drafted else None,
        "prompt_tokens_total": total,
        "prefill_tokens_computed": computed,
        "reuse_ratio": round(1 - computed / total, 4),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "outputs": outputs,
    }


def _bench_naive(engine, keystroke_parts, max_new_tokens) -> dict[str, Any]:
    import torch

    model, device = engine.loaded.model, engine.loaded.device
    stops = sorted(engine.template.stop_ids)
    latencies, outputs = [], []
    for parts in keystroke_parts:
        started = time.perf_counter()
        ids = torch.tensor([engine.render(parts)], device=device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                do_sample=False, eos_token_id=stops, pad_token_id=stops[0],
            )
        new = out[0, ids.shape[1] :].tolist()
        latencies.append((time.perf_counter() - started) * 1000)
        outputs.append([t for t in new if t not in stops][: len(new)])
    return {"p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2), "outputs": outputs}


def run(model: str | None, file: Path, keystrokes: int, device: str, max_new_tokens: int = 16) -> dict[str, Any]:
    from fimls.context.window import window_parts
    from fimls.engine.model.engine import Engine
    from fimls.engine.model.loading import load_model
    from fimls.settings import Settings
    from fimls.testmodel import cache_root, ensure_test_model

    shape = "given"
    if model is None:
        from fimls.bench.random_gptq import write_random_gptq

        shape = "cpu-medium (random weights: hidden 1024, 8 layers, intermediate 2816, GPTQ 4-bit g128)"
        model = str(write_random_gptq("cpu-medium", cache_root() / "bench-cpu-medium", ensure_test_model()))
    settings = Settings(model=model, device=device)
    engine = Engine(load_model(model, device=device), speculative_tokens=settings.speculative_tokens)
    engine.warm_up()
    text = file.read_text(encoding="utf-8")
    states = keystroke_states(text, keystrokes)
    # Each keystroke's prompt parts once, for every pass: the layout only matters when rendering.
    keystroke_parts = [
        window_parts(document, cursor, file.name, engine.count_tokens,
                     prefix_tokens=settings.prefix_tokens, suffix_tokens=settings.suffix_tokens)
        for document, cursor in states
    ]
    layouts = {}
    for layout in ("line-in-middle", "psm"):
        engine.layout = layout
        layouts[layout] = _bench_fimls(engine, keystroke_parts, max_new_tokens)
    engine.layout = settings.prompt_layout
    engine.speculative_tokens = 0
    no_spec = _bench_fimls(engine, keystroke_parts, max_new_tokens)
    engine.speculative_tokens = settings.speculative_tokens
    # What an invoked request costs: 3 candidates from one prefill, against 1, on the same keystrokes.
    sampled = keystroke_parts[:: max(1, len(keystroke_parts) // 10)]
    one, three = _bench_fimls(engine, sampled, max_new_tokens), _bench_fimls(engine, sampled, max_new_tokens, candidates=3)
    naive = _bench_naive(engine, keystroke_parts, max_new_tokens)
    ours = layouts[settings.prompt_layout]
    identical = sum(a == b for a, b in zip(ours["outputs"], naive["outputs"])) / len(states)
    return {
        "bench": "engine",
        "model": settings.model,
        "shape": shape,
        "device": str(engine.loaded.device),
        "kernel": engine.loaded.kernel,
        "file": str(file),
        "keystrokes": len(states),
        "max_new_tokens": max_new_tokens,
        "layout": settings.prompt_layout,
        "prompt_tokens_total": ours["prompt_tokens_total"],
        "prefill_tokens_computed": ours["prefill_tokens_computed"],
        "reuse_ratio": ours["reuse_ratio"],
        "p50_ms": ours["p50_ms"],
        "p95_ms": ours["p95_ms"],
        "naive_p50_ms": naive["p50_ms"],
        "naive_p95_ms": naive["p95_ms"],
        "speedup_p50": round(naive["p50_ms"] / ours["p50_ms"], 2),
        "outputs_identical_to_naive": round(identical, 4),
        "speculative_tokens": settings.speculative_tokens,
        "spec_acceptance": ours["spec_acceptance"],
        "spec_drafted": ours["spec_drafted"],
        "no_spec_p50_ms": no_spec["p50_ms"],
        "no_spec_p95_ms": no_spec["p95_ms"],
        "candidates_keystrokes": len(sampled),
        "one_candidate_p50_ms": one["p50_ms"],
        "three_candidates_p50_ms": three["p50_ms"],
        "three_candidates_cost_ratio": round(three["p50_ms"] / one["p50_ms"], 2),
        "layouts": {name: {k: v for k, v in r.items() if k != "outputs"} for name, r in layouts.items()},
    }


def main(args) -> int:
    from fimls.stdio import print_out

    report = run(args.model, Path(args.file) if args.file else DEFAULT_FILE, args.keystrokes, args.device)
    if not args.json:
        for key, value in report.items():
            print_out(f"{key:>28}: {value}")
    print_out(json.dumps(report))
    return 0
