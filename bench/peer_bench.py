"""`fimls bench peer`: fimls side by side with llama.cpp's `llama-server` (the engine behind
llama.vim and llama.vscode), in one run, on the same weights and the same typing replay.

Per keystroke: (a) fimls local (the in-process engine), (b) fimls -> llama-server (the server
backend: fimls' prompt as token ids over /v1/completions), (c) llama-server's /infill called
exactly as llama.vim calls it (256 lines of prefix, the cursor line's start as `prompt`, 64 lines
of suffix, `cache_prompt`, its samplers), (d) the naive path (the full prompt through
`model.generate`). Then the team view: k typists against one llama-server through fimls.

The model is the offline test model: its dense weights in fimls, the same weights as a float32
GGUF in llama-server, both on this machine's CPU, 2 threads each.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from fimls.bench.llama_server import LlamaServer, default_llama_server
from fimls.bench.engine_bench import DEFAULT_FILE, keystroke_states
from fimls.lsp.stats import percentile

MAX_NEW_TOKENS = 16
TYPIST_PAUSE_S = 0.1  # between one answer and the typist's next keystroke


def infill_request(document: str, cursor: int, n_predict: int) -> dict:
    """The /infill request llama.vim sends for this cursor (autoload/llama.vim, llama#fim)."""
    lines = document.split("\n")
    row = document.count("\n", 0, cursor)
    column = cursor - (document.rfind("\n", 0, cursor) + 1)
    current = lines[row]
    line_prefix, line_suffix = current[:column], current[column:]
    indent = len(line_prefix) - len(line_prefix.lstrip())
    if not current.strip():
        indent, line_prefix, line_suffix = 0, "", ""
    return {
        "input_prefix": "\n".join(lines[max(0, row - 256) : row]) + "\n",
        "input_suffix": line_suffix + "\n" + "\n".join(lines[row + 1 : row + 1 + 64]) + "\n",
        "input_extra": [],
        "prompt": line_prefix,
        "n_predict": n_predict,
        "n_indent": indent,
        "top_k": 40,
        "top_p": 0.99,
        "stream": False,
        "samplers": ["top_k", "top_p", "infill"],
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 1000,
        "response_fields": ["content", "timings/prompt_n", "timings/predicted_n", "tokens_cached"],
    }


def _summary(latencies: list[float]) -> dict:
    return {"p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2)}


def _processed(counts: list[float]) -> dict:
    """Prompt tokens computed per keystroke: the mean (the first keystroke's whole prompt
    included) and the median (a keystroke in the middle of typing)."""
    return {"prompt_tokens_per_key": round(sum(counts) / len(counts), 1), "prompt_tokens_per_key_p50": percentile(counts, 50)}


def _fimls_pass(backend, settings, states, path: Path, server: LlamaServer | None = None) -> dict:
    from fimls.completion import complete_text

    latencies, processed = [], []
    for document, cursor in states:
        before = server.prompt_tokens_processed() if server else 0.0
        started = time.perf_counter()
        completion = complete_text(backend, settings, document, cursor, str(path), str(path.parent))
        latencies.append((time.perf_counter() - started) * 1000)
        generation = completion.completion.generation
        # The server's count where there is one (its stream may be closed before it reports).
        processed.append(server.prompt_tokens_processed() - before if server else generation.prompt_tokens - generation.reused_tokens)
    return {**_summary(latencies), **_processed(processed)}


def _infill_pass(server: LlamaServer, states) -> dict:
    latencies, processed, predicted = [], [], []
    for document, cursor in states:
        before = server.prompt_tokens_processed()
        started = time.perf_counter()
        answer = server.post("/infill", infill_request(document, cursor, MAX_NEW_TOKENS))
        latencies.append((time.perf_counter() - started) * 1000)
        processed.append(server.prompt_tokens_processed() - before)
        predicted.append(answer.get("timings/predicted_n", 0))
    return {**_summary(latencies), **_processed(processed), "predicted_tokens_per_key": round(sum(predicted) / len(predicted), 1)}


def _naive_pass(engine, settings, states, path: Path) -> dict:
    import torch

    from fimls.completion import build_prompt

    model, stops = engine.loaded.model, sorted(engine.template.stop_ids)
    latencies = []
    for document, cursor in states:
        started = time.perf_counter()
        prompt = build_prompt(engine, settings, document, cursor, str(path), str(path.parent))
        ids = torch.tensor([engine.render(prompt.parts)])
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW_TOKENS,
                           do_sample=False, eos_token_id=stops, pad_token_id=stops[0])
        latencies.append((time.perf_counter() - started) * 1000)
    return _summary(latencies)


def _typists(binary: Path, gguf: Path, tokenizer, window: int, settings, texts: list[str], k: int, keystrokes: int, path: Path) -> dict:
    """k typists, each its own fimls server backend, against one llama-server with k slots."""
    from fimls.completion import complete_text
    from fimls.engine.backends.server import ServerBackend, ServerOptions

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    with LlamaServer(binary, gguf, slots=k) as server:
        def typist(i: int) -> None:
            backend = ServerBackend(tokenizer, ServerOptions(url=server.url), name="peer", window=window)
            for document, cursor in keystroke_states(texts[i % len(texts)], keystrokes, start_fraction=0.3 + 0.08 * i):
                started = time.perf_counter()
                try:
                    complete_text(backend, settings, document, cursor, str(path), str(path.parent))
                except Exception:
                    with lock:
                        errors[0] += 1
                    continue
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(TYPIST_PAUSE_S)
            backend.close()

        threads = [threading.Thread(target=typist, args=(i,)) for i in range(k)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return {"k": k, **(_summary(latencies) if latencies else {"p50_ms": None, "p95_ms": None}), "errors": errors[0]}


def run(file: Path, keystrokes: int, binary: Path, typists: tuple[int, ...]) -> dict[str, Any]:
    from fimls.bench.gguf_export import write_gguf
    from fimls.backends import model_spec, tuning
    from fimls.engine.backends.inprocess import open_inprocess
    from fimls.engine.backends.server import ServerBackend, ServerOptions
    from fimls.engine.model.checkpoint import load_tokenizer_and_window
    from fimls.settings import Settings
    from fimls.testmodel import ensure_test_model

    if not binary.is_file():
        raise SystemExit(f"no llama-server at {binary}: `python -m fimls.bench.debian llama.cpp {binary.parent}` unpacks Debian's")
    model_dir = ensure_test_model()
    gguf = model_dir.parent / f"{model_dir.name}.gguf"
    if not gguf.is_file():
        write_gguf(model_dir / "dense", gguf)
    dense = str(model_dir / "dense")
    # No cross-file context: the replay is one file, as llama.vim's ring buffer would have nothing.
    settings = Settings(
        model=dense, device="cpu", max_new_tokens=MAX_NEW_TOKENS, context_tokens=0, speculative_tokens=0, backend="inprocess",
    )
    text = file.read_text(encoding="utf-8")
    states = keystroke_states(text, keystrokes)
    inprocess = open_inprocess(model_spec(settings), tuning(settings))
    tokenizer, window = load_tokenizer_and_window(dense)
    local = _fimls_pass(inprocess, settings, states, file)
    naive = _naive_pass(inprocess.engine, settings, states, file)
    with LlamaServer(binary, gguf) as server:
        backend = ServerBackend(tokenizer, ServerOptions(url=server.url), name="peer", window=window)
        through_server = _fimls_pass(backend, settings, states, file, server)
        backend.close()
    with LlamaServer(binary, gguf) as server:
        infill = _infill_pass(server, states)
    texts = [text] + [path.read_text(encoding="utf-8") for path in sorted(Path(__file__).parent.glob("*.py"))[:7]]
    team = [_typists(binary, gguf, tokenizer, window, settings, texts, k, keystrokes // 2, file) for k in typists]
    return {
        "bench": "peer",
        "model": "fimls:test-model (dense float32 in fimls; the same weights as float32 GGUF in llama-server)",
        "device": "cpu, 2 threads each",
        "llama_server": str(binary),
        "file": str(file),
        "keystrokes": len(states),
        "max_new_tokens": MAX_NEW_TOKENS,
        "local_p50_ms": local["p50_ms"], "local_p95_ms": local["p95_ms"],
        "server_p50_ms": through_server["p50_ms"], "server_p95_ms": through_server["p95_ms"],
        "infill_p50_ms": infill["p50_ms"], "infill_p95_ms": infill["p95_ms"],
        "naive_p50_ms": naive["p50_ms"], "naive_p95_ms": naive["p95_ms"],
        "local_prompt_tokens_per_key": local["prompt_tokens_per_key"],
        "server_prompt_tokens_per_key": through_server["prompt_tokens_per_key"],
        "infill_prompt_tokens_per_key": infill["prompt_tokens_per_key"],
        "local_prompt_tokens_per_key_p50": local["prompt_tokens_per_key_p50"],
        "server_prompt_tokens_per_key_p50": through_server["prompt_tokens_per_key_p50"],
        "infill_prompt_tokens_per_key_p50": infill["prompt_tokens_per_key_p50"],
        "infill_predicted_tokens_per_key": infill["predicted_tokens_per_key"],
        "server_minus_infill_p50_ms": round(through_server["p50_ms"] - infill["p50_ms"], 2),
        "local_over_infill_p50": round(local["p50_ms"] / infill["p50_ms"], 2),
        "naive_over_local_p50": round(naive["p50_ms"] / local["p50_ms"], 2),
        "typists": team,
    }


def main(args) -> int:
    from fimls.stdio import print_out

    typists = tuple(int(k) for k in args.typists.split(","))
    binary = Path(args.llama_server) if args.llama_server else default_llama_server()
    report = run(Path(args.file) if args.file else DEFAULT_FILE, args.keystrokes, binary, typists)
    if not args.json:
        for key, value in report.items():
            print_out(f"{key:>32}: {value}")
    print_out(json.dumps(report))
    return 0
