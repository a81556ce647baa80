"""The tokenizer loads as its tokenizer.json says, on every transformers version we allow, and is
checked against the `tokenizers` library before the model may serve (docs/facts.md §2)."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from transformers import LlamaTokenizer

from fimls.checkpoints import FILLER_CHARACTERS
from fimls.engine.model.loading import ModelUnavailable, load_model
from fimls.engine.model.tokenizer import CHECK_SAMPLE, load_tokenizer, self_check

REPO = Path(__file__).resolve().parent.parent

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (let i = 0; i < 10; i++) {\n\tconsole.log(`${i}`);\n}\r\n",
    "x = 1234567890  # 数字\nnaïve_café = {'größe': 3.5e-7}\n",
    "    \n\n\n        pass\n",
]


def _raw(model_dir) -> Tokenizer:
    return Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))


def test_loaded_tokenizer_passed_its_self_check(engine):
    check = engine.loaded.tokenizer.check
    assert check.exact, check.detail
    assert check.compared_with == "tokenizers.Tokenizer.from_file"
    assert check.sample_tokens > 50


@pytest.mark.parametrize("text", CODE)
def test_code_encodes_to_the_raw_tokenizers_ids_and_back(engine, test_model_dir, text):
    assert engine.encode(text) == _raw(test_model_dir).encode(text, add_special_tokens=False).ids
    assert engine.decode(engine.encode(text)) == text


def test_self_check_catches_the_metaspace_tokenizer_transformers_builds_from_deepseeks_files(test_model_dir):
    # What AutoTokenizer gives for DeepSeek-Coder's files on transformers 5.14-5.22 (tokenizer_config
    # names LlamaTokenizerFast); LlamaTokenizer builds the same on every version.
    mangled = LlamaTokenizer.from_pretrained(test_model_dir)
    check = self_check(mangled, str(Path(test_model_dir) / "tokenizer.json"))
    assert not check.exact
    assert "deffib(n):ifn<2:returnn" in check.detail


def test_a_tokenizer_saved_by_a_mangling_transformers_is_refused(test_model_dir, tmp_path):
    # A checkpoint re-saved after loading with a buggy transformers carries the Metaspace
    # tokenizer.json; its own file no longer round-trips code.
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(Path(test_model_dir) / name, tmp_path / name)
    LlamaTokenizer.from_pretrained(test_model_dir).save_pretrained(tmp_path)
    with pytest.raises(ModelUnavailable) as refused:
        load_model(str(tmp_path), device="cpu")
    message = str(refused.value)
    assert message.startswith(f"Refusing '{tmp_path}': its tokenizer does not encode code faithfully")
    assert message.endswith("completions would be garbage.") and message.count("\n") == 0


def test_filler_token_characters_decode_as_themselves(engine, test_model_dir):
    text = "# Größe über"
    ids = engine.encode(text)
    # Encoded as the model was trained: ö and ü are DeepSeek's added tokens 32011 and 32009 ...
    assert 32011 in ids and 32009 in ids
    assert ids == _raw(test_model_dir).encode(text, add_special_tokens=False).ids
    # ... which the layout's own byte-level decoder turns into U+FFFD; fimls gives the characters.
    assert _raw(test_model_dir).decode(ids) == "# Gr\ufffdße \ufffdber"
    assert engine.decode(ids) == text
    all_fillers = "".join(FILLER_CHARACTERS)
    assert engine.encode(all_fillers) == list(range(32000, 32013))
    assert engine.decode(engine.encode(f"a{all_fillers}b")) == f"a{all_fillers}b"


def test_special_tokens_are_dropped_and_fim_tokens_kept_on_decode(engine):
    assert engine.decode([32013, 32014]) == ""
    assert engine.decode([32016, 32015, 32017]) == "<｜fim▁begin｜><｜fim▁hole｜><｜fim▁end｜>"


def _declared_floor() -> str:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in dependencies if d.startswith("transformers")]
    return spec.split(">=")[1].split(",")[0]


FLOOR_SCRIPT = """
import json, sys
import fimls
import transformers
from transformers import AutoTokenizer
from fimls.engine.model.tokenizer import load_tokenizer, self_check
model = sys.argv[1]
auto = AutoTokenizer.from_pretrained(model)
print(json.dumps({
    "version": transformers.__version__,
    "auto_class": type(auto).__name__,
    "auto_exact": self_check(auto, model + "/tokenizer.json").exact,
    "fimls_exact": load_tokenizer(model, name="floor", local_only=True).check.exact,
}))
"""


def test_the_declared_transformers_floor_loads_the_tokenizer_exactly(test_model_dir, tmp_path):
    """pyproject's lowest transformers, installed beside the suite by the README's test command."""
    floor = _declared_floor()
    target = Path(sys.prefix) / "floor" / f"transformers-{floor}"
    assert (target / "transformers").is_dir(), (
        f"transformers {floor} (pyproject's floor) is not installed in {target}; run the README's test set-up command"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", FLOOR_SCRIPT, str(test_model_dir)], capture_output=True, text=True, env=env, timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["version"] == floor
    # At the floor, transformers' own choice mangles DeepSeek's files; fimls' does not.
    assert (found["auto_class"], found["auto_exact"]) == ("LlamaTokenizer", False)
    assert found["fimls_exact"] is True
    # And the whole path on the floor version: load, self-check, complete.
    check = subprocess.run(
        [sys.executable, "-m", "fimls", "check", "--model", str(test_model_dir), "--device", "cpu", "--json"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    report = json.loads(check.stdout.strip().splitlines()[-1])
    assert report["tokenizer"].startswith("exact: ")
    assert report["new_tokens"] > 0


def test_check_sample_covers_what_manglers_get_wrong():
    for needed in ("    ", "\t", "\n", "\r\n", "0", "größe", "名前"):
        assert needed in CHECK_SAMPLE


def test_tokenizer_loads_without_weights(test_model_dir, tmp_path):
    # What the server backend renders with: the model's tokenizer files only.
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(test_model_dir) / name, tmp_path / name)
    tokenizer = load_tokenizer(str(tmp_path), name="files only", local_only=True)
    assert tokenizer.check.exact and tokenizer.adds_bos and (tokenizer.bos_id, tokenizer.eos_id) == (32013, 32014)


def test_a_lone_surrogate_from_a_client_is_encoded_not_refused(engine):
    """JSON lets a client send "\\ud800"; the tokenizers library refuses such a string whole, which
    would fail every completion of a document holding one. It encodes as U+FFFD does."""
    tokenizer = engine.loaded.tokenizer
    assert tokenizer.encode("x = '\ud800'") == tokenizer.encode("x = '\ufffd\ufffd\ufffd'")
    assert tokenizer.count("a\udc00b") > 0
