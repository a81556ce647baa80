"""`fimls bench cpu`: the in-process engine on a CPU beside llama.cpp, in one run, on the same
model shape and the same random weights.

The `cpu-medium` shape (hidden 1024, 8 layers, intermediate 2816, GPTQ 4-bit group 128) runs in
fimls as users run a GPTQ checkpoint (gptqmodel's ATen int4 kernel, bfloat16, the lean CPU
forward; transformers' forward beside it for the before/after ratio). The same weights,
dequantized, are written as GGUF and quantized by llama.cpp's own `llama-quantize` to Q4_0, twice:
with llama-quantize's default output tensor (Q6_K) and with the output tensor left float16, as
the GPTQ checkpoint keeps its lm_head. llama.cpp's prefill and decode are `llama-bench`'s own
figures; the keystroke replay runs fimls' completion path against the in-process engine and
against `llama-server` (fimls' server backend, the CPU choice for a model llama.cpp serves).
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from fimls.bench.engine_bench import DEFAULT_FILE, keystroke_states
from fimls.bench.llama_server import LlamaServer, default_llama_server
from fimls.bench.peer_bench import _summary

SHAPE = "cpu-medium"
PROMPT_TOKENS = 256
DECODE_TOKENS = 64
MAX_NEW_TOKENS = 16
THREADS = 2
AGREEMENT_PROMPTS = 16


def _models(binaries: Path) -> dict[str, Path]:
    """The GPTQ checkpoint and its GGUF twins (made once, cached beside the test model)."""
    from fimls.bench.gguf_export import write_gguf
    from fimls.bench.random_gptq import write_dense_twin, write_random_gptq
    from fimls.testmodel import cache_root, ensure_test_model

    root = cache_root()
    gptq = write_random_gptq(SHAPE, root / f"bench-{SHAPE}", ensure_test_model())
    f16 = root / f"bench-{SHAPE}-f16.gguf"
    if not f16.is_file():
        write_gguf(write_dense_twin(gptq, root / f"bench-{SHAPE}-dense"), f16, dtype="f16")
    out = {"gptq": gptq}
    for name, extra in (("q4_0", []), ("q4_0_f16_head", ["--output-tensor-type", "f16"])):
        path = root / f"bench-{SHAPE}-{name}.gguf"
        if not path.is_file():
            subprocess.run([str(binaries / "llama-quantize"), *extra, str(f16), str(path), "Q4_0", str(THREADS)],
                           check=True, capture_output=True)
        out[name] = path
    return out


def _llama_bench(binaries: Path, gguf: Path, repetitions: int) -> dict[str, float]:
    result = subprocess.run(
        [str(binaries / "llama-bench"), "-m", str(gguf), "-t", str(THREADS), "-p", str(PROMPT_TOKENS), "-n", str(DECODE_TOKENS),
         "-d", f"0,{PROMPT_TOKENS}", "-r", str(repetitions), "-o", "json"],
        check=True, capture_output=True, text=True,
    )
    rows = json.loads(result.stdout)
    # A cold prompt's prefill; decoding after PROMPT_TOKENS cached positions, as fimls' is timed.
    prefill = next(row for row in rows if row["n_prompt"] and not row["n_gen"] and not row.get("n_depth"))
    decode = next(row for row in rows if row["n_gen"] and not row["n_prompt"] and row.get("n_depth") == PROMPT_TOKENS)
    return {"prefill_tps": round(prefill["avg_ts"], 1), "decode_ms": round(1000 / decode["avg_ts"], 3)}


def _cold_greedy(engine, prompt: list[int], new_tokens: int):
    """`new_tokens` greedy tokens after `prompt`, nothing cached, through the engine's decode path."""
    from fimls.engine.model.decode import generate

    engine.sessions.reset()
    return generate(engine.forward, engine.session, prompt, max_new_tokens=new_tokens, stop_ids=frozenset(),
                    device=engine.loaded.device, clock=time.perf_counter)


def _engine_speed(engine, repetitions: int) -> dict[str, float]:
    """llama-bench's two measures, on the engine's own decode path: a cold prompt of
    PROMPT_TOKENS prefilled, and DECODE_TOKENS generated one at a time."""
    rng = random.Random(0)
    prefills, decodes = [], []
    for _ in range(repetitions):
        made = _cold_greedy(engine, [rng.randrange(100, 32000) for _ in range(PROMPT_TOKENS)], DECODE_TOKENS + 1)
        prefills.append(PROMPT_TOKENS / made.first_token_s)
        decodes.append((made.total_s - made.first_token_s) * 1000 / DECODE_TOKENS)
    engine.sessions.reset()
    return {"prefill_tps": round(statistics.median(prefills), 1), "decode_ms": round(statistics.median(decodes), 3)}


def _replay(backend, settings, states, path: Path) -> dict[str, float]:
    from fimls.completion import complete_text

    latencies, made = [], []
    for document, cursor in states:
        started = time.perf_counter()
        completion = complete_text(backend, settings, document, cursor, str(path), str(path.parent))
        latencies.append((time.perf_counter() - started) * 1000)
        made.append(len(completion.completion.generation.token_ids))
    return {**_summary(latencies), "tokens_per_key": round(sum(made) / len(made), 1)}


def _agreement(lean, plain, prompts: int) -> float:
    """Share of greedy completions (random prompts, MAX_NEW_TOKENS each) the lean forward makes
    token for token as transformers' forward does. Random weights give flat logits, where any
    difference in rounding would show as a different pick: the lean forward's logits are meant
    to be bit-identical, so this is 1.0 or a bug."""
    rng = random.Random(1)
    same = 0
    for _ in range(prompts):
        prompt = [rng.randrange(100, 32000) for _ in range(64)]
        same += _cold_greedy(lean, prompt, MAX_NEW_TOKENS).token_ids == _cold_greedy(plain, prompt, MAX_NEW_TOKENS).token_ids
    return round(same / prompts, 3)


def run(file: Path, keystrokes: int, binaries: Path, repetitions: int, agreement_prompts: int = AGREEMENT_PROMPTS) -> dict[str, Any]:
    import torch

    from fimls.engine.backends.inprocess import InProcessBackend
    from fimls.engine.backends.server import ServerBackend, ServerOptions
    from fimls.engine.model.engine import Engine
    from fimls.engine.model.checkpoint import load_tokenizer_and_window
    from fimls.engine.model.loading import load_model
    from fimls.settings import Settings

    if not (binaries / "llama-bench").is_file():
        raise SystemExit(f"no llama.cpp in {binaries}: `python -m fimls.bench.debian llama.cpp {binaries}` unpacks Debian's")
    torch.set_num_threads(THREADS)
    models = _models(binaries)
    loaded = load_model(str(models["gptq"]), device="cpu")
    engines = {
        "lean": Engine(loaded, speculative_tokens=0),
        "transformers": Engine(loaded, speculative_tokens=0, cpu_forward="transformers"),
        "lean_speculative": Engine(loaded, speculative_tokens=8),
    }
    for engine in engines.values():
        engine.warm_up()
    speed = {name: _engine_speed(engines[name], repetitions) for name in ("lean", "transformers")}
    agreement = _agreement(engines["lean"], engines["transformers"], prompts=agreement_prompts)
    llama = {name: _llama_bench(binaries, models[name], repetitions) for name in ("q4_0", "q4_0_f16_head")}

    # One file, no cross-file context: both sides get the same prompt for each keystroke.
    settings = Settings(model=str(models["gptq"]), device="cpu", max_new_tokens=MAX_NEW_TOKENS, context_tokens=0, backend="inprocess")
    states = keystroke_states(file.read_text(encoding="utf-8"), keystrokes)
    replay = {name: _replay(InProcessBackend(engine), settings, states, file) for name, engine in engines.items()}
    tokenizer, window = load_tokenizer_and_window(str(models["gptq"]))
    for name in ("q4_0", "q4_0_f16_head"):
        with LlamaServer(binaries / "llama-server", models[name]) as server:
            # A cold prompt takes llama-server seconds on 2 cores: past the editor's stall limit.
            options = ServerOptions(url=server.url, timeout_s=300, stall_s=120)
            backend = ServerBackend(tokenizer, options, name=SHAPE, window=window)
            _replay(backend, settings, states[:2], file)  # its first prompt, as the engines' warm-up
            replay[f"llamacpp_{name}"] = _replay(backend, settings, states, file)
            backend.close()

    fimls, best = speed["lean"], llama["q4_0"]
    return {
        "bench": "cpu",
        "shape": f"{SHAPE} (random weights: hidden 1024, 8 layers, 8 heads, intermediate 2816)",
        "device": f"cpu ({torch.backends.cpu.get_cpu_capability()}), {THREADS} threads each",
        "fimls_kernel": loaded.kernel,
        "fimls_dtype": str(loaded.dtype),
        "llamacpp": str(binaries),
        "prompt_tokens": PROMPT_TOKENS, "decode_tokens": DECODE_TOKENS, "repetitions": repetitions,
        "fimls_decode_ms": fimls["decode_ms"],
        "fimls_prefill_tps": fimls["prefill_tps"],
        "llamacpp_decode_ms": best["decode_ms"],
        "llamacpp_prefill_tps": best["prefill_tps"],
        "decode_ratio": round(fimls["decode_ms"] / best["decode_ms"], 2),
        "prefill_ratio": round(fimls["prefill_tps"] / best["prefill_tps"], 2),
        # llama.cpp with the lm_head kept float16, as the GPTQ checkpoint keeps it.
        "llamacpp_f16_head_decode_ms": llama["q4_0_f16_head"]["decode_ms"],
        "llamacpp_f16_head_prefill_tps": llama["q4_0_f16_head"]["prefill_tps"],
        "decode_ratio_f16_head": round(fimls["decode_ms"] / llama["q4_0_f16_head"]["decode_ms"], 2),
        "transformers_forward_decode_ms": speed["transformers"]["decode_ms"],
        "transformers_forward_prefill_tps": speed["transformers"]["prefill_tps"],
        "lean_over_transformers_decode": round(speed["transformers"]["decode_ms"] / fimls["decode_ms"], 2),
        "lean_greedy_agreement": agreement,
        "keystrokes": len(states),
        "max_new_tokens": MAX_NEW_TOKENS,
        "fimls_replay_p50_ms": replay["lean"]["p50_ms"],
        "llamacpp_replay_p50_ms": replay["llamacpp_q4_0"]["p50_ms"],
        "replay_ratio": round(replay["lean"]["p50_ms"] / replay["llamacpp_q4_0"]["p50_ms"], 2),
        "fimls_speculative_replay_p50_ms": replay["lean_speculative"]["p50_ms"],
        "speculative_replay_ratio": round(replay["lean_speculative"]["p50_ms"] / replay["llamacpp_q4_0"]["p50_ms"], 2),
        "replay": replay,
    }


def main(args) -> int:
    from fimls.stdio import print_out

    binaries = Path(args.llama_cpp) if args.llama_cpp else default_llama_server().parent
    report = run(Path(args.file) if args.file else DEFAULT_FILE, args.keystrokes, binaries, args.repetitions)
    if not args.json:
        for key, value in report.items():
            print_out(f"{key:>34}: {value}")
    print_out(json.dumps(report))
    return 0
