"""Reusing the KV cache of the last prompt gives what a full recompute gives."""

import time

import torch
from transformers import DynamicCache

from fimls.engine.decode import KVSession, generate, prefill

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
