"""Command line: `fimls --stdio` (the language server), `fimls serve` (the shared daemon),
`fimls check`, `fimls complete`, `fimls make-test-model`, `fimls bench ...`, `fimls eval-context ...`.

`check` and `make-test-model` are watched by a person: they send what the model libraries print
to a log and show fimls' own lines and progress on the terminal (fimls/stdio.py)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import logging
import sys
from pathlib import Path

from fimls import __version__
from fimls.backends import model_spec, open_backend, tuning
from fimls.contract import ModelUnavailable, PromptParts
from fimls.settings import DEFAULT_MODEL, Settings, default_model
from fimls.stdio import Progress, details_log, divert_libraries, print_err, print_out, reserve_stdout
from fimls.testmodel import SEED_ENV, TEST_MODEL_ALIAS, ensure_test_model, is_test_model_dir

CHECK_PREFIX = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return '
CHECK_SUFFIX = "\n\n\nprint(fibonacci(10))\n"
SPEED_TOKENS = 32


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fimls", description="Inline code completions from a local DeepSeek-Coder model, over LSP.")
    parser.add_argument("--version", action="version", version=f"fimls {__version__}")
    parser.add_argument("--stdio", action="store_true", help="serve LSP over stdin/stdout (what editors start)")
    parser.add_argument("--tcp", action="store_true", help="serve LSP over TCP on 127.0.0.1")
    parser.add_argument("--port", type=int, default=2087, help="TCP port for --tcp (default 2087)")
    parser.add_argument("--log-file", help="write logs here instead of stderr (check and make-test-model: the model "
                        "libraries' output too, which otherwise goes to logs/COMMAND.log in fimls' cache)")
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
    context_bench.add_argument("--ranker", default="fused", choices=["fused", "symbols", "imports", "recent", "jaccard", "bm25"])
    context_bench.add_argument("--budget", type=int, default=1024, help="context token budget")
    context_bench.add_argument("--json", action="store_true", help="print only the JSON object")

    evaluation = commands.add_parser("eval-context", help="model-free retrieval benchmark on any repository")
    # The harness owns its options (one parser for `fimls eval-context` and `python -m
    # fimls.bench.eval_context`); its module imports only the standard library at its top.
    from fimls.bench.eval_context import add_arguments as eval_context_arguments

    eval_context_arguments(evaluation)

    serve = commands.add_parser("serve", help="the shared daemon that owns the model for every editor window (started on first use)")
    serve.add_argument("--socket", default=None, help="Unix socket path (default: daemon.sock in $XDG_RUNTIME_DIR/fimls)")
    serve.add_argument("--max-resident-models", type=int, default=1, help="most models held at once (default 1)")
    serve.add_argument("--idle-exit-s", type=float, default=600.0, help="exit after this long with no client (0: never)")
    serve.add_argument("--kv-sessions", choices=["document", "shared"], default="document",
                       help="a KV cache per document (default), or one for all (to measure the difference)")

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
    out = reserve_stdout()
    _setup_logging(args.verbose, args.log_file)
    if args.stdio or args.tcp:
        # Each command imports what it runs, after the stdout guard above and not before: the
        # model libraries print at import, and `fimls --help` should not wait for them.
        from fimls.lsp.server import serve

        return serve(stdio_out=out if args.stdio else None, tcp_port=args.port if args.tcp else None)
    if args.command == "check":
        return _check(args)
    if args.command == "complete":
        return _complete(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "eval-context":
        from fimls.bench.eval_context import main as eval_context  # lab code, only for this command

        return eval_context(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "make-test-model":
        return _make_test_model(args)
    _parser().print_help(sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    # The daemon's modules only for `fimls serve` (see `main`).
    from fimls.engine.daemon.service import DaemonOptions, serve
    from fimls.engine.daemon.rundir import RunDirUnsafe, socket_path

    try:
        path = Path(args.socket) if args.socket else socket_path()
    except RunDirUnsafe as error:
        return _user_error(error)
    if args.max_resident_models < 1:
        return _user_error(ValueError("--max-resident-models must be at least 1"))
    return serve(DaemonOptions(path, args.max_resident_models, args.idle_exit_s, args.kv_sessions))


# What the benchmarks import and fimls itself does not: the `bench` extra (pyproject.toml).
BENCH_EXTRA = frozenset({"gguf", "psutil"})


def _bench(args: argparse.Namespace) -> int:
    try:
        # Only the benchmark asked for: each imports what it alone needs.
        return importlib.import_module(f"fimls.bench.{args.bench}_bench").main(args)
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in BENCH_EXTRA:
            raise
        return _user_error(RuntimeError(
            f"`fimls bench {args.bench}` needs {missing}, which fimls installs only for its benchmarks: "
            "pip install 'fimls[bench]'"
        ))


def _user_error(error: Exception) -> int:
    """One sentence for the person running fimls; with the libraries' output diverted, where it went."""
    log = details_log()
    print_err(f"fimls: {error}" + (f" (log: {log})" if log is not None else ""))
    return 2


def _divert_libraries(args: argparse.Namespace) -> None:
    """What the model libraries print (banners, quantization tables, warnings, their progress bars)
    goes to a log, `--log-file` or one per command in fimls' cache, so that the terminal shows
    fimls' own lines only."""
    from fimls.testmodel import cache_root  # light, but not needed to start `fimls --stdio`

    log = Path(args.log_file) if args.log_file else cache_root() / "logs" / f"{args.command}.log"
    try:
        divert_libraries(log, append=bool(args.log_file))
    except OSError as error:
        print_err(f"fimls: cannot write the log {log} ({error.strerror}); the libraries' output stays here")


def _failed(what: str, error: Exception) -> int:
    """An error nobody foresaw: one sentence here, the traceback in the log."""
    logging.getLogger("fimls.cli").error("%s failed", what, exc_info=error)
    first_line = (str(error).strip().splitlines() or [""])[0]
    return _user_error(RuntimeError(f"{what} failed: {type(error).__name__}{': ' if first_line else ''}{first_line}"))


def _make_test_model(args: argparse.Namespace) -> int:
    if args.seed is not None:
        os.environ[SEED_ENV] = str(args.seed)
    _divert_libraries(args)
    try:
        path = ensure_test_model(args.directory, progress=Progress("fimls make-test-model").step)
    except Exception as error:
        return _failed("building the test model", error)
    print_out(str(path))
    return 0


def _settings(args: argparse.Namespace, **extra):
    """The commands run the model in their own process: they report on it, and answer as the
    in-process engine does."""
    backend = getattr(args, "gptq_backend", "auto")
    return Settings(model=args.model or default_model(), device=args.device, backend="inprocess", gptq_backend=backend, **extra)


def _check(args: argparse.Namespace) -> int:
    _divert_libraries(args)
    try:
        return _run_check(args, _settings(args), Progress("fimls check"))
    except ModelUnavailable as error:
        return _user_error(error)
    except Exception as error:
        return _failed("the check", error)


def _run_check(args: argparse.Namespace, settings, progress) -> int:
    from fimls.engine.backends.inprocess import open_inprocess  # torch and the model code (see `main`)

    if settings.model == TEST_MODEL_ALIAS:
        ensure_test_model(progress=progress.step)  # a build's steps shown here; loading then finds it built
    with progress.step(f"loading {settings.model}"):
        engine = open_inprocess(model_spec(settings), tuning(settings)).engine  # the model itself is what is checked
    with progress.step("completing"):
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
    return model == TEST_MODEL_ALIAS or is_test_model_dir(model)


def _parse_location(location: str) -> tuple[str, int, int]:
    path, line, col = location.rsplit(":", 2)
    return path, int(line), int(col)


def _complete(args: argparse.Namespace) -> int:
    from fimls.completion import complete_in_workspace  # the context's parsers and index (see `main`)

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
        backend = open_backend(settings)
    except ModelUnavailable as error:
        return _user_error(error)
    shown, _ = complete_in_workspace(backend, settings, text, offset, path, args.root or os.getcwd())
    print_out(shown)
    return 0
