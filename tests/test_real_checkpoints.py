"""Replicas of the repositories users download load through fimls and complete, with what users
would otherwise find out the hard way checked: exact token ids, FIM ids, rope scaling in effect,
and act-order GPTQ kernels that compute what the checkpoint says.

The expected file contents below are written from the Hub's pages (docs/facts.md §2), not read from
fimls/checkpoints.py, which writes them.
"""

import json
import os
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from conftest import run_fimls
from gptq_reference import dense_twin
from replicas import REPLICAS, ensure_replica
from fimls.engine.model.engine import Engine
from fimls.engine.model.loading import load_model

pytestmark = pytest.mark.slow  # builds and loads model replicas

GPTQ_REPLICAS = [name for name, r in REPLICAS.items() if r.layout == "gptq"]
FILES = {
    "gptq": {"config.json", "generation_config.json", "model.safetensors", "quantize_config.json", "tokenizer.json", "tokenizer_config.json"},
    "dense-bin": {"config.json", "generation_config.json", "pytorch_model.bin", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"},
    "dense-sharded": {
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
        "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json",
    },
}
GROUP_SIZES = {"thebloke-1.3b-gptq-main": 128, "thebloke-1.3b-gptq-32g": 32, "thebloke-1.3b-gptq-64g": 64}
SAMPLE = "def fib(n):\n    if n < 2:\n        return n\n\treturn fib(n - 1)  # größe 1024\r\n"


@pytest.fixture(scope="module", params=list(REPLICAS))
def replica(request) -> tuple[str, Path]:
    return request.param, ensure_replica(request.param)


@pytest.fixture(scope="module")
def loaded(replica):
    name, path = replica
    return name, path, load_model(str(path), device="cpu", dtype="float32")


def test_files_are_the_hub_repositorys(replica):
    name, path = replica
    present = {p for p in os.listdir(path) if (path / p).is_file() and not p.startswith("fimls-")}
    assert present == FILES[REPLICAS[name].layout]
    tokenizer_config = (path / "tokenizer_config.json").read_bytes()
    assert len(tokenizer_config) == 793
    parsed = json.loads(tokenizer_config)
    assert parsed["tokenizer_class"] == "LlamaTokenizerFast"
    assert (parsed["add_bos_token"], parsed["add_eos_token"], parsed["legacy"], parsed["unk_token"]) == (True, False, True, None)
    assert parsed["pad_token"]["content"] == parsed["eos_token"]["content"] == "<｜end▁of▁sentence｜>"
    assert "added_tokens_decoder" not in parsed and "chat_template" not in parsed
    config = json.loads((path / "config.json").read_text())
    assert config["rope_scaling"] == {"factor": 4.0, "type": "linear"}  # the old key, as on the Hub
    assert (config["rope_theta"], config["max_position_embeddings"], config["vocab_size"]) == (100000, 16384, 32256)
    assert (config["bos_token_id"], config["eos_token_id"], config["torch_dtype"]) == (32013, 32014, "bfloat16")
    assert json.loads((path / "generation_config.json").read_text()) == {"_from_model_config": True, "bos_token_id": 32013, "eos_token_id": 32014}
    if name in GROUP_SIZES:
        quantize = {"bits": 4, "group_size": GROUP_SIZES[name], "damp_percent": 0.1, "desc_act": True, "sym": True,
                    "true_sequential": True, "model_name_or_path": None, "model_file_base_name": "model"}
        assert json.loads((path / "quantize_config.json").read_text()) == quantize
        assert config["quantization_config"] == {**quantize, "quant_method": "gptq"}  # no checkpoint_format
        from safetensors import safe_open

        with safe_open(str(path / "model.safetensors"), "pt") as weights:
            g_idx = weights.get_tensor("model.layers.0.mlp.down_proj.g_idx")
        assert not bool((g_idx[1:] >= g_idx[:-1]).all())  # act-order: groups permuted
    else:
        assert "quantization_config" not in config


def test_tokenizer_json_is_laid_out_as_deepseeks(replica):
    _, path = replica
    spec = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    steps = spec["pre_tokenizer"]["pretokenizers"]
    assert [s["type"] for s in steps] == ["Split", "Split", "Split", "Split", "Digits", "ByteLevel"]
    assert [s["pattern"]["Regex"] for s in steps[:4]] == ["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+"]
    assert all(s["behavior"] == "Isolated" for s in steps[:4]) and steps[4]["individual_digits"] is True
    assert {k: steps[5][k] for k in ("add_prefix_space", "trim_offsets", "use_regex")} == {
        "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    added = {t["id"]: (t["content"], t["special"]) for t in spec["added_tokens"]}
    assert sorted(added) == list(range(32000, 32022))
    assert [added[i][0] for i in range(32000, 32013)] == list("õ÷ÁýÀÿøúþüùöû")
    specials = {i for i, (_, special) in added.items() if special}
    assert specials == {32013, 32014, 32018, 32021}  # BOS, EOS, <pad>, <|EOT|>; FIM tokens are not special


def test_loads_through_fimls_with_exact_ids_and_fim_tokens(loaded):
    name, path, model = loaded
    raw = Tokenizer.from_file(str(path / "tokenizer.json"))
    assert model.tokenizer.check.exact
    assert model.tokenizer.encode(SAMPLE) == raw.encode(SAMPLE, add_special_tokens=False).ids
    engine = Engine(model)
    template = engine.template
    assert (template.bos_id, template.begin_id, template.hole_id, template.end_id) == (32013, 32016, 32015, 32017)
    assert 32014 in template.stop_ids
    expected_kernel = "dense" if REPLICAS[name].layout.startswith("dense") else model.kernel
    assert model.kernel == expected_kernel and (model.kernel == "dense") == (name not in GROUP_SIZES)
    from fimls.contract import PromptParts

    completion = engine.complete(
        PromptParts(header="#fib.py\n", prefix="def fib(n):\n    if n < 2:\n        return n\n    return ", suffix="\n"),
        max_new_tokens=8, stop_ids=frozenset(),
    )
    assert len(completion.generation.token_ids) == 8 and completion.text


def test_rope_scaling_linear_x4_and_theta_100000_are_in_effect(loaded):
    _, _, model = loaded
    config = model.model.config
    head_dim = config.hidden_size // config.num_attention_heads
    positions = torch.tensor([[0, 1, 7, 100, 4095, 16383]])
    probe = torch.zeros(1, positions.shape[1], head_dim)
    cos, sin = model.model.model.rotary_emb(probe, positions)
    # Explicit: position p rotates pair i by (p / 4) * 100000^(-2i/d).
    inverse = 1.0 / (100000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = (positions[0].double() / 4.0)[:, None] * inverse[None, :]
    expected = torch.cat([angles, angles], dim=-1)
    # float32 angles of up to 4096 radians carry about 3e-4 of rounding.
    torch.testing.assert_close(cos[0].double(), expected.cos(), atol=1e-3, rtol=0)
    torch.testing.assert_close(sin[0].double(), expected.sin(), atol=1e-3, rtol=0)
    unscaled = (positions[0].double()[:, None] * inverse[None, :]).cos()
    assert (cos[0, 3, : head_dim // 2].double() - unscaled[3]).abs().max() > 0.1  # the check tells them apart


@pytest.mark.parametrize("name", GPTQ_REPLICAS)
def test_act_order_gptq_logits_match_the_dequantized_dense_twin(name):
    """The kernel fimls picks computes what the checkpoint's codes, zeros, scales and g_idx say.
    Tolerance: 0.02 absolute on float32 logits (about 1.5% of their spread; measured 0.003-0.004).
    Reading the groups without g_idx must move them by ten times that tolerance at least."""
    path = ensure_replica(name)
    model = load_model(str(path), device="cpu", dtype="float32").model
    ids = torch.tensor([[32013, 32016] + Tokenizer.from_file(str(path / "tokenizer.json")).encode(SAMPLE).ids[1:]])
    with torch.no_grad():
        got = model(ids).logits[0].float()
        twin = dense_twin(path)(ids).logits[0]
        wrong = dense_twin(path, ignore_g_idx=True)(ids).logits[0]
    assert (got - twin).abs().max().item() <= 0.02
    assert torch.equal(got.argmax(-1), twin.argmax(-1))
    assert (wrong - twin).abs().max().item() > 10 * 0.02  # the check tells the two readings apart


def test_fimls_check_loads_and_completes_every_replica():
    for name in REPLICAS:
        result = run_fimls("check", "--model", str(ensure_replica(name)), "--device", "cpu", "--json")
        assert result.returncode == 0, (name, result.stderr[-2000:])
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["tokenizer"].startswith("exact: "), (name, report)
        assert report["new_tokens"] > 0 and report["completion"], (name, report)
        assert (report["kernel"] == "dense") == (name not in GROUP_SIZES), (name, report)


TEXT = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return self."  # the test model completes it


def _ready_or_error(client, after: int) -> dict:
    return client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"), timeout=300, after=after)


@pytest.mark.timeout(900)
def test_the_server_loads_and_serves_every_replica_and_refuses_a_mangling_tokenizer(tmp_path, test_model_dir):
    from lsp_client import LspClient

    # A checkpoint whose tokenizer.json was re-saved by a mangling transformers (see test_tokenizer).
    mangled = tmp_path / "resaved"
    mangled.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (mangled / name).write_bytes((test_model_dir / name).read_bytes())
    from transformers import LlamaTokenizer

    LlamaTokenizer.from_pretrained(test_model_dir).save_pretrained(mangled)

    workspace = tmp_path / "ws"
    workspace.mkdir()
    uri = (workspace / "main.py").as_uri()
    settings = {"device": "cpu", "maxNewTokens": 8, "debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0}
    client = LspClient(cwd=str(workspace))
    try:
        client.call("initialize", {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {},
                                   "initializationOptions": {"model": str(mangled), **settings}})
        client.notify("initialized", {})
        refused = _ready_or_error(client, 0)
        assert refused["state"] == "error", refused
        assert "tokenizer does not encode code faithfully" in refused["message"]
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": TEXT}})
        position = {"line": TEXT.count("\n"), "character": len(TEXT.split("\n")[-1])}
        request = {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 2}}
        assert client.call("textDocument/inlineCompletion", request, timeout=60)["result"] == []  # never served

        for name in REPLICAS:
            seen = len(client.notifications)
            path = str(ensure_replica(name))
            client.notify("workspace/didChangeConfiguration", {"settings": {"fimls": {"model": path, **settings}}})
            status = _ready_or_error(client, seen)
            assert status["state"] == "ready" and path in status["message"], (name, status)
            answer = client.call("textDocument/inlineCompletion", request, timeout=120)
            items = answer["result"]
            assert len(items) == 1 and items[0]["insertText"].strip() not in ("", "return"), (name, answer)
    finally:
        client.close()
