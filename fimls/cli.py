"""Command line: `fimls --stdio` (the language server), `fimls serve` (the shared daemon),
`fimls check`, `fimls complete`, `fimls make-test-model`."""

from __future__ import annotations

import argparse
import json
import os
import logging
import sys

from fimls import __version__
from fimls.settings import DEFAULT_MODEL, default_model

CHECK_PREFIX = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return '
CHECK_SUFFIX = "\n\n\nprint(fibonacci(10))\n"
SPEED_TOKENS = 32


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fimls", description="Inline code completions from a local DeepSeek-Coder model, over LSP.")
    parser.add_argument("--version", action="version", version=f"fimls {__version__}")
    parser.add_argument("--stdio", action="store_true", help="serve LSP over stdin/stdout (what editors start)")
    parser.add_argument("--tcp", action="store_true", help="serve LSP over TCP on 127.0.0.1")
    parser.add_argument("--port", type=int, default=2087, help="TCP port for --tcp (default 2087)")
    parser.add_argument("--log-file", help="write logs here instead of stderr")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command")

    model_help = f"Hub id or local directory (default: $FIMLS_MODEL or {DEFAULT_MODEL})"
    check = commands.add_parser("check", help="load the model, run one completion, print speed")
    check.add_argument("--model", default=None, help=model_help)
    check.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    check.add_argument("--gptq-backend", default="auto", help="GPTQ kernel (the gptqBackend setting; default auto)")
    check.add_argument("--json", action="store_true", help="print one JSON object")

    complete = commands.add_parser("complete", help="print the completion at FILE:LINE:COL")
    complete.add_argument("location", help="FILE:LINE:COL, line and column 1-based, column in characters")
    complete.add_argument("--model", default=None, help=model_help)
    complete.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    complete.add_argument("--root", default=None, help="workspace root the path is shown relative to (default: cwd)")
    complete.add_argument("--max-new-tokens", type=int, default=None)

    bench = commands.add_parser("bench", help="benchmarks; each prints one JSON object as its last line")
    benches = bench.add_subparsers(dest="bench", required=True)
    engine_bench = benches.add_parser("engine", help="replay typing a file: naive generate vs fimls, per keystroke")
    engine_bench.add_argument("--model", default=None, help="default: a random-weight DeepSeek-shaped GPTQ model sized for CPU")
    engine_bench.add_argument("--file", default=None, help="source file to replay (default: one shipped in bench/data)")
    engine_bench.add_argument("--keystrokes", type=int, default=40)
    engine_bench.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    engine_bench.add_argument("--json", action="store_true", help="print only the JSON object")

    gpu_bench = benches.add_parser("gpu", help="DeepSeek-Coder 1.3B/6.7B-shaped random GPTQ models vs physical limits and naive generate")
    gpu_bench.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    gpu_bench.add_argument("--small", action="store_true", help="small shapes and short prompts (to check it on a CPU)")
    gpu_bench.add_argument("--gptq-backend", default="auto", help="GPTQ kernel (the gptqBackend setting; default auto)")
    gpu_bench.add_argument("--json", action="store_true", help="print only the JSON object")

    lsp_bench = benches.add_parser("lsp", help="the real server over stdio, typing at 60 wpm: debounce and cache on vs off")
    lsp_bench.add_argument("--model", default=None, help="default: the offline test model")
    lsp_bench.add_argument("--file", default=None, help="source file to replay (default: one shipped in bench/data)")
    lsp_bench.add_argument("--keystrokes", type=int, default=150)
    lsp_bench.add_argument("--size-keystrokes", type=int, default=40, help="keystrokes typed per file size")
    lsp_bench.add_argument("--sizes", default="3,30000,300000,3000000", help="file sizes in bytes (3 = a three-line file)")
    lsp_bench.add_argument("--window-keystrokes", type=int, default=40, help="keystrokes per window of the two-window replay (0: skip it)")
    lsp_bench.add_argument("--windows-only", action="store_true", help="only the shared-daemon part: two windows, the hop, three windows")
    lsp_bench.add_argument("--json", action="store_true", help="print only the JSON object")

    peer_bench = benches.add_parser("peer", help="fimls beside llama.cpp's llama-server: same weights, same replay; and k typists")
    peer_bench.add_argument("--file", default=None, help="source file to replay (default: one shipped in bench/data)")
    peer_bench.add_argument("--keystrokes", type=int, default=40)
    peer_bench.add_argument("--llama-server", default=None, help="the llama-server binary (default: .venv/llama.cpp/llama-server)")
    peer_bench.add_argument("--typists", default="1,2,4,8", help="numbers of simulated typists sharing one llama-server")
    peer_bench.add_argument("--json", action="store_true", help="print only the JSON object")

    cpu_bench = benches.add_parser("cpu", help="the in-process engine on CPU beside llama.cpp: same shape and weights, prefill, decode, replay")
    cpu_bench.add_argument("--file", default=None, help="source file to replay (default: one shipped in bench/data)")
    cpu_bench.add_argument("--keystrokes", type=int, default=40)
    cpu_bench.add_argument("--repetitions", type=int, default=3, help="runs of each speed measure (median; llama-bench's mean)")
    cpu_bench.add_argument("--llama-cpp", default=None, help="folder with llama-bench, llama-quantize, llama-server (default: .venv/llama.cpp)")
    cpu_bench.add_argument("--json", action="store_true", help="print only the JSON object")

    soak_bench = benches.add_parser("soak", help="the real server under bursts, cancellations, file events and settings changes")
    soak_bench.add_argument("--model", default=None, help="default: the offline test model")
    soak_bench.add_argument("--seconds", type=float, default=600, help="length after a warm-up of 10%% (5-30 s)")
    soak_bench.add_argument("--seed", type=int, default=0)
    soak_bench.add_argument("--json", action="store_true", help="print only the JSON object")

    context_bench = benches.add_parser("context", help="index a workspace; time building the context per request")
    context_bench.add_argument("--repo", required=True, help="workspace directory")
    context_bench.add_argument("--samples", type=int, default=200)
    context_bench.add_argument("--ranker", default="fused", choices=["fused", "symbols", "imports", "jaccard", "bm25"])
    context_bench.add_argument("--budget", type=int, default=1024, help="context token budget")
    context_bench.add_argument("--json", action="store_true", help="print only the JSON object")

    evaluation = commands.add_parser("eval-context", help="model-free retrieval benchmark on any repository")
    eval_commands = evaluation.add_subparsers(dest="eval_command", required=True)
    make_cases = eval_commands.add_parser("make-cases", help="cases: uses of names defined in another file of the same repository")
    make_cases.add_argument("--repo", required=True)
    make_cases.add_argument("--out", required=True)
    make_cases.add_argument("--max", type=int, default=300)
    make_cases.add_argument("--seed", type=int, default=0)
    make_cases.add_argument("--resolver", choices=["fimls", "jedi", "typescript", "gopls"], default="fimls",
                            help="who gives the gold answers: fimls' import resolution (every language; an upper bound "
                            "for `imports`), or an analyser of the language: jedi (Python), the TypeScript language "
                            "service (TS/JS; $TYPESCRIPT names the typescript package), gopls (Go)")
    eval_run = eval_commands.add_parser("run", help="recall, mrr, noise and build time per ranker and budget")
    eval_run.add_argument("--repo", required=True)
    eval_run.add_argument("--cases", required=True)
    eval_run.add_argument("--budget", default="512,1024,2048")
    eval_run.add_argument("--ranker", default="none,jaccard,bm25,imports,symbols,fused")
    eval_run.add_argument("--json", action="store_true", help="print only the JSON object")

    serve = commands.add_parser("serve", help="the shared daemon that owns the model for every editor window (started on first use)")
    serve.add_argument("--socket", default=None, help="Unix socket path (default: daemon.sock in $XDG_RUNTIME_DIR/fimls)")
    serve.add_argument("--max-resident-models", type=int, default=1, help="most models held at once (default 1)")
    serve.add_argument("--idle-exit-s", type=float, default=600.0, help="exit after this long with no client (0: never)")
    serve.add_argument("--kv-sessions", choices=["document", "shared"], default="document",
                       help="a KV cache per document (default), or one for all (to measure the difference)")

    kit = commands.add_parser("gpu-kit", help="write the folder that runs fimls' CUDA checks on a GPU machine with no package index")
    kit.add_argument("directory")
    kit.add_argument("--python", default="3.12", help="the GPU machine's CPython (default 3.12)")
    kit.add_argument("--wheelhouse", default=None, help="wheel cache (default: gpu-kit-wheels in fimls' cache)")
    kit.add_argument("--offline", action="store_true", help="take every wheel from the cache; fetch nothing")

    make = commands.add_parser("make-test-model", help="build (or find cached) the small offline test model; print its path")
    make.add_argument("directory", nargs="?", default=None)
    make.add_argument("--seed", type=int, default=None, help="train under another seed (as FIMLS_TEST_MODEL_SEED does)")
    return parser


def _setup_logging(verbose: bool, log_file: str | None) -> None:
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # Other libraries' INFO lines (pygls logs every message it sends, document text included)
    # would put source code in the log: only with --verbose.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("fimls").setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Before anything imports a model library: fd 1 becomes stderr, our output keeps the real one.
    from fimls.stdio import reserve_stdout

    out = reserve_stdout()
    _setup_logging(args.verbose, args.log_file)
    if args.stdio or args.tcp:
        from fimls.lsp.server import serve

        return serve(stdio_out=out if args.stdio else None, tcp_port=args.port if args.tcp else None)
    if args.command == "check":
        return _check(args)
    if args.command == "complete":
        return _complete(args)
    if args.command == "bench":
        from fimls.bench import context_bench, cpu_bench, engine_bench, gpu_bench, lsp_bench, peer_bench, soak_bench

        benches = {
            "engine": engine_bench, "gpu": gpu_bench, "lsp": lsp_bench, "context": context_bench, "soak": soak_bench,
            "peer": peer_bench, "cpu": cpu_bench,
        }
        return benches[args.bench].main(args)
    if args.command == "eval-context":
        from fimls.bench.eval_context import main as eval_context

        return eval_context(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "gpu-kit":
        return _gpu_kit(args)
    if args.command == "make-test-model":
        from fimls.stdio import print_out
        from fimls.testmodel import SEED_ENV, ensure_test_model

        if args.seed is not None:
            os.environ[SEED_ENV] = str(args.seed)
        print_out(str(ensure_test_model(args.directory)))
        return 0
    _parser().print_help(sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fimls.engine.daemon import DaemonOptions, serve
    from fimls.engine.rundir import RunDirUnsafe, socket_path

    try:
        path = Path(args.socket) if args.socket else socket_path()
    except RunDirUnsafe as error:
        return _user_error(error)
    if args.max_resident_models < 1:
        return _user_error(ValueError("--max-resident-models must be at least 1"))
    return serve(DaemonOptions(path, args.max_resident_models, args.idle_exit_s, args.kv_sessions))


def _gpu_kit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fimls.gpu_kit import build
    from fimls.stdio import print_out

    try:
        manifest = build(Path(args.directory), args.python, Path(args.wheelhouse) if args.wheelhouse else None, args.offline)
    except RuntimeError as error:
        return _user_error(error)
    print_out(f"{args.directory}: {manifest['bytes'] / 2**20:.1f} MiB for CPython {args.python}; run it with run.sh OUTPUT_DIR")
    return 0


def _user_error(error: Exception) -> int:
    print(f"fimls: {error}", file=sys.stderr)
    return 2


def _settings(args: argparse.Namespace, **extra):
    """The commands run the model in their own process: they report on it, and answer as the
    in-process engine does."""
    from fimls.settings import Settings

    backend = getattr(args, "gptq_backend", "auto")
    return Settings(model=args.model or default_model(), device=args.device, backend="inprocess", gptq_backend=backend, **extra)


def _check(args: argparse.Namespace) -> int:
    from fimls.completion import load_engine
    from fimls.prompt import PromptParts
    from fimls.engine.fim import FimUnsupported
    from fimls.engine.loading import ModelUnavailable
    from fimls.stdio import print_out

    settings = _settings(args)
    try:
        engine = load_engine(settings)
    except (ModelUnavailable, FimUnsupported) as error:
        return _user_error(error)
    engine.session.reset()  # time a cold prompt, not one the warm-up left in the cache
    parts = PromptParts(header="#fibonacci.py\n", prefix=CHECK_PREFIX, suffix=CHECK_SUFFIX)
    completion = engine.complete(parts, max_new_tokens=32)
    gen = completion.generation
    # Decode speed over a fixed length: the real completion may end after a token or two.
    timed = engine.complete(parts, max_new_tokens=SPEED_TOKENS, stop_ids=frozenset()).generation
    report = {
        "model": settings.model,
        "device": str(engine.loaded.device),
        "dtype": str(engine.loaded.dtype).removeprefix("torch."),
        "kernel": engine.loaded.kernel,
        "tokenizer": engine.loaded.tokenizer.check.summary(),
        "load_s": round(engine.loaded.load_seconds, 3),
        "prompt_tokens": gen.prompt_tokens,
        "time_to_first_token_ms": round(gen.first_token_s * 1000, 2),
        "tokens_per_s": round((SPEED_TOKENS - 1) / (timed.total_s - timed.first_token_s), 1),
        "new_tokens": len(gen.token_ids),
        "completion": completion.text,
    }
    if _is_test_model(settings.model):
        report["note"] = TEST_MODEL_NOTE
    if args.json:
        print_out(json.dumps(report))
    else:
        for key, value in report.items():
            print_out(f"{key:>24}: {value!r}" if key == "completion" else f"{key:>24}: {value}")
    return 0


TEST_MODEL_NOTE = (
    "the offline test model is a toy (two layers, trained for about a minute on this CPU): its completion "
    "shows that loading, the tokenizer, the FIM template and decoding work end to end, not that it writes "
    "good code; a real checkpoint (the default model) does that"
)


def _is_test_model(model: str) -> bool:
    from fimls.testmodel import TEST_MODEL_ALIAS, is_test_model_dir

    return model == TEST_MODEL_ALIAS or is_test_model_dir(model)


def _parse_location(location: str) -> tuple[str, int, int]:
    path, line, col = location.rsplit(":", 2)
    return path, int(line), int(col)


def _complete(args: argparse.Namespace) -> int:
    from fimls.completion import complete_in_workspace, load_engine
    from fimls.engine.fim import FimUnsupported
    from fimls.engine.loading import ModelUnavailable
    from fimls.stdio import print_out

    try:
        path, line, col = _parse_location(args.location)
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except ValueError:
        return _user_error(ValueError(f"expected FILE:LINE:COL, got '{args.location}'"))
    except OSError as error:
        return _user_error(error)
    lines = text.splitlines(keepends=True)
    if not 1 <= line <= len(lines) + 1 or col < 1:
        return _user_error(ValueError(f"{path} has no line {line} column {col}"))
    line_text = lines[line - 1] if line <= len(lines) else ""
    if col - 1 > len(line_text.rstrip("\r\n")):
        return _user_error(ValueError(f"line {line} of {path} has no column {col}"))
    offset = sum(len(x) for x in lines[: line - 1]) + col - 1
    extra = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    settings = _settings(args, **extra)
    try:
        engine = load_engine(settings)
    except (ModelUnavailable, FimUnsupported) as error:
        return _user_error(error)
    shown, _ = complete_in_workspace(engine, settings, text, offset, path, args.root or os.getcwd())
    print_out(shown)
    return 0
