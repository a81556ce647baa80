"""Prompt-lookup speculative decoding is lossless: its output is plain greedy's, token for token."""

import time

import pytest
from transformers import DynamicCache

from fimls.engine.model.decode import KVSession, find_draft, generate

# Code that repeats itself, as code does: drafts from earlier lines are often right.
REPETITIVE = (
    "def area_of_square(side):\n    return side * side\n\n\n"
    "def area_of_rectangle(width, height):\n    return width * height\n\n\n"
    "def area_of_square_twice(side):\n    return "
)


def test_find_draft_takes_what_followed_the_last_ngram():
    context = [1, 2, 3, 4, 5, 9, 9, 2, 3]
    assert find_draft(context, max_tokens=2) == [4, 5]
    assert find_draft(context, max_tokens=0) == []
    assert find_draft([1, 2, 3, 4], max_tokens=3) == []  # no earlier occurrence
    # The longest n-gram wins over a more recent shorter match.
    assert find_draft([7, 8, 9, 1, 5, 8, 9, 2, 7, 8, 9], max_tokens=1) == [1]


def _session(engine):
    config = engine.loaded.model.config
    return KVSession(make_cache=lambda: DynamicCache(config=config))


@pytest.mark.parametrize("speculative_tokens", [2, 8])
def test_speculative_output_equals_plain_greedy(float32_engine, speculative_tokens):
    engine = float32_engine
    kwargs = dict(max_new_tokens=40, stop_ids=frozenset(), device=engine.loaded.device, clock=time.perf_counter)
    drafted = 0
    for suffix in ("\n", "\n\n\ndef main():\n    pass\n"):
        prompt = [32013, 32016] + engine.encode("#shapes.py\n" + REPETITIVE) + [32015] + engine.encode(suffix) + [32017]
        plain = generate(engine.loaded.model, _session(engine), prompt, **kwargs)
        session = _session(engine)
        fast = generate(engine.loaded.model, session, prompt, speculative_tokens=speculative_tokens, **kwargs)
        assert fast.token_ids == plain.token_ids
        assert session.cache.get_seq_length() == len(session.tokens)
        assert session.tokens[: len(prompt)] == prompt
        drafted += fast.drafted_tokens
        assert 0 <= fast.accepted_tokens <= fast.drafted_tokens
    assert drafted > 0  # drafts were really proposed and verified


@pytest.fixture(scope="module")
def float32_engine(test_model_dir):
    # float32 activations: verifying a draft in one forward and decoding it token by token then
    # sum in different orders, and bfloat16 rounding could flip a near-tie between the two.
    from fimls.engine.model.engine import Engine
    from fimls.engine.model.loading import load_model

    return Engine(load_model(str(test_model_dir), device="cpu", dtype="float32"))
