"""The CUDA path, on a real GPU: skipped where CUDA is absent (CI has no GPU). The GPU kit's run.sh
runs this file on a lent H100/H200, standalone (it needs nothing from tests/ but fimls itself).

The test model is FIMLS_TEST_MODEL_DIR where set (the kit carries one), else the one fimls builds."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)")

BACKEND = os.environ.get("FIMLS_GPU_TEST_BACKEND", "auto")  # the kernel the kit's warm-up built
TEXT = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return self.\n"
CURSOR = (9, len("    return self."))  # where the test model completes (see tests/test_daemon.py)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    from fimls.testmodel import ensure_test_model

    return ensure_test_model()


@pytest.fixture(scope="module")
def engine(model_dir):
    """What a user gets on CUDA: static cache, the decode step under CUDA graphs, warmed up."""
    from fimls.engine.model.engine import open_engine
    from fimls.contract import ModelSpec

    engine = open_engine(ModelSpec(str(model_dir), device="cuda", gptq_backend=BACKEND), max_cached_tokens=4096)
    assert engine.static_cache and engine.decode_forward is not None, "the CUDA fast path is off"
    return engine


def _keystrokes(count: int = 12):
    """Prompt parts of typing a function body a character at a time."""
    from fimls.contract import PromptParts

    body = "    total = 0\n    for value in values:\n        total += value\n    return total\n"
    head = "import os\n\n\ndef summed(values):\n"
    return [PromptParts(header="#app/sums.py\n", prefix=head + body[:i], suffix="\n\ndef main():\n    pass\n") for i in range(1, count + 1)]


def test_kv_reuse_under_cuda_graphs_is_identical_to_a_full_recompute(engine):
    reused, recomputed = [], []
    for parts in _keystrokes():
        completion = engine.complete(parts, max_new_tokens=16, session="typed")
        reused.append((completion.generation.token_ids, completion.generation.reused_tokens))
    for parts in _keystrokes():
        engine.sessions.reset()  # nothing cached: every prompt prefilled from scratch
        recomputed.append(engine.complete(parts, max_new_tokens=16, session="typed").generation.token_ids)
    assert [ids for ids, _ in reused] == recomputed
    assert sum(cached for _, cached in reused[1:]) > 0, "the keystrokes reused nothing"


def test_a_cancel_stops_the_graphed_decode_within_one_step(engine):
    parts = _keystrokes()[-1]
    asked = [0]

    def cancelled() -> bool:  # asked once per decode step: cancelled from the fifth on
        asked[0] += 1
        return asked[0] >= 5

    completion = engine.complete(parts, max_new_tokens=200, stop_ids=frozenset(), cancelled=cancelled)
    assert completion.generation.stop_reason == "cancelled"
    assert len(completion.generation.token_ids) <= 6, asked  # the step after the cancel at most
    after = engine.complete(parts, max_new_tokens=8, stop_ids=frozenset())
    assert len(after.generation.token_ids) == 8  # the session is usable after it


def test_out_of_memory_from_a_real_allocation_is_reported_and_recovered_from(engine):
    parts = _keystrokes()[-1]
    expected = engine.complete(parts, max_new_tokens=8, session="oom").generation.token_ids
    engine.sessions.reset()
    hog = []
    try:
        torch.cuda.empty_cache()  # blocks the allocator keeps would serve the prefill without a real allocation
        free, _total = torch.cuda.mem_get_info()
        chunk = 256 * 2**20
        while free > 2 * 2**20:  # take the GPU's memory for real, leaving under 2 MB
            size = chunk if free - chunk > 2 * 2**20 else free - 2 * 2**20
            try:
                hog.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                chunk //= 2
                if chunk < 2**20:
                    break
            free, _total = torch.cuda.mem_get_info()
        long_parts = type(parts)(header=parts.header, prefix=parts.prefix * 60, suffix=parts.suffix)
        with pytest.raises(torch.OutOfMemoryError):
            engine.complete(long_parts, max_new_tokens=8, session="oom")
        assert engine.sessions.cached_tokens == 0  # every cache dropped with the failure
    finally:
        hog.clear()
        torch.cuda.empty_cache()
    assert engine.complete(parts, max_new_tokens=8, session="oom").generation.token_ids == expected


def test_auto_picks_a_marlin_family_kernel_on_hopper_and_says_which(model_dir):
    from fimls.engine.model.loading import load_model

    if torch.cuda.get_device_capability(0)[0] != 9:
        pytest.skip("Marlin-family kernels are the expectation on an H100/H200 (compute capability 9.x)")
    loaded = load_model(str(model_dir), device="cuda", gptq_backend="auto")
    assert any(name in loaded.kernel for name in ("Marlin", "Machete")), loaded.kernel
    from fimls.engine.model.engine import Engine

    assert loaded.kernel in Engine(loaded).describe()  # what the status and `fimls check` show


def test_a_completion_over_stdio_on_cuda_equals_fimls_complete(model_dir):
    from lsp_client import LspClient

    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        (workspace / "main.py").write_text(TEXT)
        env = {**os.environ}
        env.pop("FIMLS_MODEL", None)
        cli = subprocess.run(
            [sys.executable, "-m", "fimls", "complete", f"main.py:{CURSOR[0] + 1}:{CURSOR[1] + 1}", "--model", str(model_dir),
             "--device", "cuda", "--max-new-tokens", "12"],
            capture_output=True, text=True, cwd=workspace, env=env, timeout=300,
        )
        assert cli.returncode == 0, cli.stderr[-3000:]
        completion = cli.stdout.removesuffix("\n")
        assert completion, "the test model completes this position; the comparison would prove nothing"
        line = TEXT.splitlines()[CURSOR[0]]
        expected = line[: CURSOR[1]] + completion + line[CURSOR[1]:]  # the item spans the whole line

        client = LspClient(env={"XDG_RUNTIME_DIR": folder}, cwd=folder)
        try:
            client.call("initialize", {
                "processId": None, "rootUri": workspace.as_uri(), "capabilities": {},
                "initializationOptions": {"model": str(model_dir), "device": "cuda", "maxNewTokens": 12, "backend": "inprocess",
                                          "gptqBackend": BACKEND, "debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0},
            })
            client.notify("initialized", {})
            status = client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"), timeout=300)
            assert status["state"] == "ready" and "cuda" in status["message"], status
            uri = (workspace / "main.py").as_uri()
            client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": TEXT}})
            request = client.request("textDocument/inlineCompletion", {
                "textDocument": {"uri": uri}, "position": {"line": CURSOR[0], "character": CURSOR[1]},
                "context": {"triggerKind": 2},
            })
            answer = client.wait_for([request], timeout=120)[request]
            assert [item["insertText"] for item in answer["result"]] == [expected]
        finally:
            client.close()
