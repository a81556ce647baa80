"""Reusing the KV cache of the last prompt gives what a full recompute gives."""

import time

import torch
from transformers import DynamicCache

from fimls.engine.model.decode import KVSession, generate, prefill

BASE = "import os\n\n\ndef load(path):\n    with open(path) as handle:\n        return handle.read()\n\n\ndef save(path, text):\n    "
EDITS = [
    BASE,
    BASE + "with",  # typing
    BASE + "with open(",
    BASE + "with ope",  # backspace
    BASE.replace("def load", "def load_text"),  # an edit far above the cursor
    BASE + "with open(path, 'w') as f:\n        ",  # a line break
    BASE,  # undo everything
    "#other.py\nclass Other:\n    pass\n",  # another file
    BASE + "with",  # and back
]


def _prompt(engine, text):
    return [32013, 32016] + engine.encode(text) + [32015, 32017]


def test_reuse_matches_full_recompute_across_edits(engine):
    model, device = engine.loaded.model, engine.loaded.device
    config = model.config
    reused_session = KVSession(make_cache=lambda: DynamicCache(config=config))
    reused_total = 0
    for text in EDITS:
        prompt = _prompt(engine, text)
        reused = reused_session.reuse(prompt)
        reused_total += reused
        logits = prefill(model, prompt[reused:], reused_session.cache, reused, device)
        reused_session.tokens.extend(prompt[reused:])
        full = prefill(model, prompt, DynamicCache(config=config), 0, device)
        torch.testing.assert_close(logits.float(), full.float(), atol=2e-2, rtol=2e-2)
        assert int(logits.argmax()) == int(full.argmax())
    assert reused_total > 0  # the sequence really exercised reuse


def test_generation_with_reuse_equals_generation_from_scratch(engine):
    model, device = engine.loaded.model, engine.loaded.device
    config = model.config
    warm = KVSession(make_cache=lambda: DynamicCache(config=config))
    for text in EDITS:
        prompt = _prompt(engine, text)
        kwargs = dict(max_new_tokens=8, stop_ids=engine.template.stop_ids, device=device, clock=time.perf_counter)
        with_reuse = generate(model, warm, prompt, **kwargs)
        cold = generate(model, KVSession(make_cache=lambda: DynamicCache(config=config)), prompt, **kwargs)
        assert with_reuse.token_ids == cold.token_ids
        # The session knows exactly which tokens its cache holds: the last new token is never fed.
        out = with_reuse.token_ids
        assert warm.tokens == prompt + (out if with_reuse.stop_reason == "eos" else out[:-1])
        assert warm.cache.get_seq_length() == len(warm.tokens)


def test_static_cache_reuse_matches_full_recompute(engine):
    """The CUDA fast path's fixed-buffer cache, rewound instead of cropped, gives the same logits
    (checked here on CPU, without the compiler)."""
    from transformers import StaticCache

    model, device = engine.loaded.model, engine.loaded.device
    config = model.config
    session = KVSession(make_cache=lambda: StaticCache(config=config, max_cache_len=512))
    for text in EDITS:
        prompt = _prompt(engine, text)
        reused = session.reuse(prompt)
        logits = prefill(model, prompt[reused:], session.cache, reused, device)
        session.tokens.extend(prompt[reused:])
        full = prefill(model, prompt, DynamicCache(config=config), 0, device)
        torch.testing.assert_close(logits.float(), full.float(), atol=2e-2, rtol=2e-2)
        assert int(session.cache.get_seq_length()) == len(session.tokens)


def test_static_cache_engine_generates_what_the_dynamic_one_does(test_model_dir):
    from fimls.contract import PromptParts
    from fimls.engine.model.engine import Engine
    from fimls.engine.model.loading import load_model

    loaded = load_model(str(test_model_dir), device="cpu", dtype="float32")
    dynamic = Engine(loaded, speculative_tokens=4)
    static = Engine(loaded, speculative_tokens=4, static_cache=True, max_cached_tokens=512)
    for text in EDITS:
        parts = PromptParts(header="#a.py\n", prefix=text, suffix="\n")
        a = dynamic.complete(parts, max_new_tokens=12, stop_ids=frozenset())
        b = static.complete(parts, max_new_tokens=12, stop_ids=frozenset())
        assert a.generation.token_ids == b.generation.token_ids
        assert a.generation.reused_tokens == b.generation.reused_tokens


def test_a_decode_step_that_fails_to_compile_falls_back_to_eager_with_a_log_line(test_model_dir, monkeypatch, caplog):
    from fimls.contract import PromptParts
    from fimls.engine.model.engine import Engine
    from fimls.engine.model.loading import load_model

    def compile_that_breaks(fn, **kwargs):
        def compiled(*args, **kw):
            raise RuntimeError("no CUDA graphs here")

        return compiled

    monkeypatch.setattr(torch, "compile", compile_that_breaks)
    engine = Engine(load_model(str(test_model_dir), device="cpu"), compile_decode=True)
    assert engine.decode_forward is not None
    with caplog.at_level("WARNING"):
        engine.warm_up()
    assert engine.decode_forward is None
    assert any("decoding eagerly" in r.message and "no CUDA graphs here" in r.message for r in caplog.records)
    completion = engine.complete(PromptParts(header="#a.py\n", prefix="x = ", suffix="\n"), max_new_tokens=4, stop_ids=frozenset())
    assert len(completion.generation.token_ids) == 4
