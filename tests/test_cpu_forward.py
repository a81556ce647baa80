"""The lean CPU forward (engine/model/cpu_forward.py) against transformers' own forward on the test
model as users run it on a CPU (GPTQ int4, bfloat16): bit-identical logits, and so the same greedy
tokens, through the engine and through the decode functions, across KV reuse, cache growth and
speculative steps."""

import time
from types import SimpleNamespace

import pytest
import torch
from transformers import DynamicCache

from fimls.engine.model.cpu_forward import INITIAL_POSITIONS, GrowingCache, LeanLlama, supports
from fimls.engine.model.decode import KVSession, forward_tokens, generate
from fimls.contract import PromptParts

CODE = (
    "import os\n\n\ndef read_lines(path):\n    with open(path) as handle:\n        return handle.read().splitlines()\n\n\n"
    "def count_words(path):\n    total = 0\n    for line in read_lines(path):\n        total += len(line.split())\n"
    "    return total\n\n\ndef main():\n    "
)


def _prompt(engine, text: str, suffix: str = "\n") -> list[int]:
    return [32013, 32016] + engine.encode(text) + [32015] + engine.encode(suffix) + [32017]


def _plain_greedy(model, prompt: list[int], new_tokens: int) -> list[int]:
    """transformers' own greedy decoding, the reference every fimls path must reproduce."""
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, pad_token_id=0, eos_token_id=None,
        )
    return out[0, len(prompt):].tolist()


@pytest.fixture(scope="module")
def lean(engine):
    return LeanLlama(engine.loaded.model)


def test_the_engine_decodes_with_the_lean_forward_on_cpu(engine):
    assert engine.forward_kind == "lean"
    assert isinstance(engine.session.make_cache(), GrowingCache)
    assert "lean forward" in engine.describe()


@pytest.mark.parametrize("suffix", ["\n", "\n\n\nif __name__ == '__main__':\n    main()\n"])
def test_engine_completions_are_plain_greedy_decoding_token_for_token(engine, suffix):
    parts = PromptParts(header="#words.py\n", prefix=CODE, suffix=suffix)
    prompt = engine.render(parts)
    completion = engine.complete(parts, max_new_tokens=24, stop_ids=frozenset(), speculative_tokens=0)
    assert completion.generation.token_ids == _plain_greedy(engine.loaded.model, prompt, 24)


def test_logits_are_bit_identical_to_transformers_forward(engine, lean):
    """Prefill from nothing, prefill after cached positions (a keystroke's tail, through the
    boolean mask), a speculative-sized run, then one token at a time past the buffers' growth."""
    model, cpu = engine.loaded.model, torch.device("cpu")
    prompt = _prompt(engine, CODE * 8)
    assert len(prompt) > INITIAL_POSITIONS
    ours, theirs = lean.new_cache(), DynamicCache(config=model.config)
    for start, end in ((0, 300), (300, 303), (303, INITIAL_POSITIONS - 2), (INITIAL_POSITIONS - 2, len(prompt))):
        a = forward_tokens(lean, prompt[start:end], ours, start, cpu, keep=end - start)
        b = forward_tokens(model, prompt[start:end], theirs, start, cpu, keep=end - start)
        assert torch.equal(a, b), (start, end)
    for position in range(len(prompt), len(prompt) + 8):
        token = int(b[-1].argmax())
        a = forward_tokens(lean, [token], ours, position, cpu)
        b = forward_tokens(model, [token], theirs, position, cpu)
        assert torch.equal(a, b), position
    assert ours.get_seq_length() == theirs.get_seq_length() == len(prompt) + 8


def test_reuse_across_edits_and_cache_growth_give_plain_greedy_tokens(engine, lean):
    """Each edit rewinds the growing cache (DynamicCache's `crop`) and prefills only the changed
    tail; the last prompt is past the buffers' first size, so they grow with their contents kept."""
    session = KVSession(make_cache=lean.new_cache)
    kwargs = dict(max_new_tokens=10, stop_ids=frozenset(), device=torch.device("cpu"), clock=time.perf_counter)
    long_code = CODE.replace("def main():\n    ", "") * 8 + "def main():\n    "
    texts = [CODE, CODE + "print(", CODE + "return", long_code]
    reused = 0
    for text in texts:
        prompt = _prompt(engine, text)
        made = generate(lean, session, prompt, **kwargs)
        reused += made.reused_tokens
        assert made.token_ids == _plain_greedy(engine.loaded.model, prompt, 10)
        assert session.cache.get_seq_length() == len(session.tokens)
    assert reused > 0
    assert len(_prompt(engine, long_code)) > INITIAL_POSITIONS
    assert session.cache.capacity >= len(session.tokens) > INITIAL_POSITIONS


def test_speculative_steps_through_the_lean_forward_are_plain_greedy(engine, lean):
    repetitive = CODE + "total = count_words(os.path.join('a', 'b'))\n    total = count_words(os.path.join("
    prompt = _prompt(engine, repetitive)
    kwargs = dict(max_new_tokens=24, stop_ids=frozenset(), device=torch.device("cpu"), clock=time.perf_counter)
    session = KVSession(make_cache=lean.new_cache)
    fast = generate(lean, session, prompt, speculative_tokens=8, **kwargs)
    assert fast.drafted_tokens > 0  # drafts were proposed and verified in one forward each
    assert fast.token_ids == _plain_greedy(engine.loaded.model, prompt, 24)
    assert session.cache.get_seq_length() == len(session.tokens)


def test_growing_cache_crop_is_dynamic_caches():
    cache = GrowingCache(layers=1, kv_heads=1, head_dim=2, dtype=torch.float32, capacity=2)
    cache.reserve(5)
    cache.advance(5)
    assert cache.capacity == 8
    cache.crop(-2)  # drop two from the end, as decode.rewind asks
    assert cache.get_seq_length() == 3
    cache.crop(10)  # a longer maximum keeps everything
    assert cache.get_seq_length() == 3
    cache.crop(1)
    assert cache.get_seq_length() == 1


def test_models_it_does_not_reproduce_are_named_and_left_to_transformers():
    assert supports(SimpleNamespace(config=SimpleNamespace(model_type="gpt2"))) == "model type 'gpt2' is not llama"
    grouped = SimpleNamespace(model_type="llama", num_attention_heads=32, num_key_value_heads=8)
    assert supports(SimpleNamespace(config=grouped)) == "grouped-query attention"
    assert "gelu" in supports(SimpleNamespace(config=SimpleNamespace(model_type="llama", hidden_act="gelu")))
    with pytest.raises(ValueError, match="does not run this model"):
        LeanLlama(SimpleNamespace(config=SimpleNamespace(model_type="qwen2")))
