"""`fimls bench cpu` on its real parts: the GGUF twin holds the GPTQ checkpoint's own weights (as
gptqmodel's kernel computes with them), and one short run reports every figure the CPU-engine
issue names, for fimls and for llama.cpp side by side."""

from pathlib import Path

import pytest
import torch

from fimls.bench.cpu_bench import run
from fimls.bench.engine_bench import DEFAULT_FILE
from fimls.bench.random_gptq import write_dense_twin, write_random_gptq

pytestmark = pytest.mark.slow  # builds models, runs llama.cpp


def test_the_dense_twin_has_the_weights_gptqmodel_computes_with(test_model_dir, tmp_path):
    from safetensors.torch import load_file

    from fimls.engine.model.loading import load_model
    from fimls.testmodel import cache_root

    gptq = write_random_gptq("cpu-medium", cache_root() / "bench-cpu-medium", test_model_dir)
    twin = load_file(str(write_dense_twin(gptq, tmp_path / "twin") / "model.safetensors"))
    model = load_model(str(gptq), device="cpu").model
    probe = torch.randn(4, 1024, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    for name in ("model.layers.0.self_attn.q_proj", "model.layers.7.mlp.down_proj"):
        module = model.get_submodule(name)
        weight = twin[f"{name}.weight"]
        x = probe if weight.shape[1] == 1024 else torch.randn(4, weight.shape[1]).to(torch.bfloat16)
        with torch.inference_mode():
            torch.testing.assert_close(module(x).float(), x.float() @ weight.float().T, rtol=2e-2, atol=2e-2)
    assert "lm_head.weight" in twin and not any(key.endswith("qweight") for key in twin)


def test_a_short_run_reports_both_engines_side_by_side(tmp_path, llama_server_binary):
    # A short file: each side's first prompt is prefilled cold, which is most of this test's time.
    short = tmp_path / "short.py"
    short.write_text("".join(DEFAULT_FILE.read_text(encoding="utf-8").splitlines(keepends=True)[:30]), encoding="utf-8")
    report = run(short, keystrokes=3, binaries=Path(llama_server_binary).parent, repetitions=1, agreement_prompts=2)
    for side in ("fimls", "llamacpp"):
        assert report[f"{side}_decode_ms"] > 0 and report[f"{side}_prefill_tps"] > 0
        assert report[f"{side}_replay_p50_ms"] > 0
    assert report["decode_ratio"] == pytest.approx(report["fimls_decode_ms"] / report["llamacpp_decode_ms"], abs=0.01)
    assert report["fimls_kernel"] == "TorchAtenLinear" and report["keystrokes"] == 3
    assert report["lean_greedy_agreement"] == 1.0  # bit-identical logits: the same tokens, even on flat random ones
    assert all(entry["tokens_per_key"] > 0 for entry in report["replay"].values())
