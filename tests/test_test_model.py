"""The offline test model has DeepSeek-Coder's shape where fimls depends on it (docs/facts.md §1)."""

import json
import subprocess
import sys

import pytest

from fimls.engine.model.tokenizer import load_tokenizer

EXPECTED_ADDED = {
    32000: "õ", 32001: "÷", 32002: "Á", 32003: "ý", 32004: "À", 32005: "ÿ", 32006: "ø", 32007: "ú",
    32008: "þ", 32009: "ü", 32010: "ù", 32011: "ö", 32012: "û",
    32013: "<｜begin▁of▁sentence｜>", 32014: "<｜end▁of▁sentence｜>", 32015: "<｜fim▁hole｜>",
    32016: "<｜fim▁begin｜>", 32017: "<｜fim▁end｜>", 32018: "<pad>", 32019: "<|User|>",
    32020: "<|Assistant|>", 32021: "<|EOT|>",
}


def test_tokenizer_has_deepseek_added_tokens_at_their_ids(test_model_dir):
    tokenizer = load_tokenizer(str(test_model_dir), name="test model", local_only=True)
    assert len(tokenizer) == 32022
    for token_id, content in EXPECTED_ADDED.items():
        assert tokenizer.raw.id_to_token(token_id) == content
        assert tokenizer.token_id(content) == token_id
    assert (tokenizer.bos_id, tokenizer.eos_id) == (32013, 32014)
    # The FIM tokens are not special: skip_special_tokens must keep them, as in the real model.
    fim = [32016, 32015, 32017]
    assert tokenizer.decode(fim) == "<｜fim▁begin｜><｜fim▁hole｜><｜fim▁end｜>"
    assert tokenizer.decode([32013, 32014]) == ""
    # Like the real tokenizer, encoding prepends BOS.
    assert tokenizer.adds_bos and tokenizer.raw.encode("x = 1").ids[0] == 32013


def test_config_has_deepseek_coder_shape(test_model_dir):
    config = json.loads((test_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["vocab_size"] == 32256
    # TheBloke's config.json as it is on the Hub: the pre-transformers-5 key (`type`, not `rope_type`).
    assert config["rope_scaling"] == {"factor": 4.0, "type": "linear"}
    assert config["rope_theta"] == 100000
    assert config["max_position_embeddings"] == 16384
    assert (config["bos_token_id"], config["eos_token_id"]) == (32013, 32014)
    assert config["num_key_value_heads"] == config["num_attention_heads"]
    quant = config["quantization_config"]
    assert (quant["quant_method"], quant["bits"], quant["group_size"], quant["desc_act"]) == ("gptq", 4, 128, True)
    assert "checkpoint_format" not in quant


def test_model_loads_through_the_gptq_path(engine):
    # A gptqmodel kernel, not a dense nn.Linear, serves the attention projections.
    projection = engine.loaded.model.model.layers[0].self_attn.q_proj
    assert hasattr(projection, "qweight")
    assert engine.loaded.kernel == type(projection).__name__ != "Linear"


def test_second_build_is_cached(test_model_dir):
    from conftest import run_fimls

    import time

    started = time.monotonic()
    result = run_fimls("make-test-model", str(test_model_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(test_model_dir)
    assert result.stderr == ""  # nothing was built, nothing to say
    assert time.monotonic() - started < 20  # the build takes over a minute; a cache hit is an import


@pytest.mark.slow  # trains and quantizes a model
@pytest.mark.timeout(600)
def test_a_build_shows_its_steps_and_keeps_gptqmodels_output_in_its_log(tmp_path):
    # The real build with a few training steps on short samples: the same libraries say the same
    # things (gptqmodel's banner and quantization tables above all) in well under the full build's time.
    log, out = tmp_path / "build.log", tmp_path / "model"
    script = (
        "import sys; from fimls import testmodel; testmodel.TRAIN.update(steps=4, batch=2, seq_len=64)\n"
        "from fimls.cli import main; sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "--log-file", str(log), "make-test-model", str(out)],
        capture_output=True, text=True, timeout=540, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(out) and (out / "model.safetensors").is_file()
    lines = result.stderr.splitlines()
    assert all(line.startswith("fimls make-test-model: ") for line in lines), result.stderr[-3000:]
    steps = [line.removeprefix("fimls make-test-model: ").partition(" ...")[0] for line in lines]
    assert steps == ["loading torch and transformers", "training the tokenizer", "training the model", "quantizing it to 4-bit GPTQ"]
    assert " 25% 50% 75% 100% " in lines[2]
    details = log.read_text(errors="replace")
    assert "GPT-QModel" in details and "WARN" in details  # gptqmodel's banner and its warnings


def test_the_seed_names_another_model_and_the_corpus_is_the_same_on_every_python(monkeypatch):
    import sys

    from fimls import testmodel

    monkeypatch.delenv(testmodel.SEED_ENV, raising=False)  # the suite itself may run under another seed
    default = testmodel.default_dir()
    monkeypatch.setenv(testmodel.SEED_ENV, "7")
    assert testmodel.seed() == 7 and testmodel.default_dir() != default
    monkeypatch.setenv(testmodel.SEED_ENV, str(testmodel.DEFAULT_SEED))
    assert testmodel.default_dir() == default  # the default seed, spelled out, is the default model
    monkeypatch.setenv(testmodel.SEED_ENV, "seven")
    try:
        testmodel.seed()
    except ValueError as error:
        assert testmodel.SEED_ENV in str(error)
    else:
        raise AssertionError("a seed that is not an integer was accepted")
    monkeypatch.delenv(testmodel.SEED_ENV)
    # The bundled corpus, not the running interpreter's standard library: another Python builds the same.
    texts = testmodel._corpus()
    assert len(texts) > 400 and sum(map(len, texts)) > 5_000_000
    monkeypatch.setattr(sys, "version_info", (3, 99, 0, "final", 0))
    assert testmodel.default_dir() == default
