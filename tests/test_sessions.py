"""KV sessions by document: switching between documents keeps each one's cache, within one bound
on cached positions in all, for the dynamic cache and for the static one (parked and restored)."""

import pytest

from fimls.engine.model.engine import Engine
from fimls.contract import PromptParts

A = "import os\n\n\ndef load(path):\n    with open(path) as handle:\n        return handle.read()\n\n\ndef save(path, text):\n    "
B = "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.append(item)\n\n    def pop(self):\n        return "


def _typed(text: str, keystrokes: int) -> list[str]:
    """`text` as it looks after each of `keystrokes` more characters typed at its end."""
    tail = "self.items.pop()  # the last one"
    return [text + tail[:i] for i in range(keystrokes)]


def _alternate(engine: Engine, sessions: bool) -> list:
    """Two documents typed in turn, a keystroke each; the generations, in order."""
    generations = []
    for a, b in zip(_typed(A, 6), _typed(B, 6)):
        for name, text in (("file:///a.py", a), ("file:///b.py", b)):
            parts = PromptParts(header=f"#{name[8:]}\n", prefix=text, suffix="\n")
            completion = engine.complete(parts, max_new_tokens=6, stop_ids=frozenset(), session=name if sessions else "")
            generations.append(completion.generation)
    return generations


@pytest.fixture(scope="module")
def loaded(test_model_dir):
    from fimls.engine.model.loading import load_model

    return load_model(str(test_model_dir), device="cpu", dtype="float32")


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_documents_typed_in_turn_each_keep_their_cache_and_generate_what_one_session_does(loaded, static):
    by_document = _alternate(Engine(loaded, static_cache=static, max_cached_tokens=1024), sessions=True)
    shared = _alternate(Engine(loaded, static_cache=static, max_cached_tokens=1024), sessions=False)
    assert [g.token_ids for g in by_document] == [g.token_ids for g in shared]
    # After each document's first prompt, all but the changed tail comes from its own cache.
    later = by_document[2:]
    assert min(g.reused_tokens / g.prompt_tokens for g in later) > 0.9
    # One session for both: each switch throws the other document's cache away.
    assert max(g.reused_tokens / g.prompt_tokens for g in shared[2:]) < 0.2


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_the_least_recently_used_documents_go_first_when_the_bound_is_reached(loaded, static):
    engine = Engine(loaded, static_cache=static, max_cached_tokens=1024)
    prompts = {name: PromptParts(header="", prefix=text, suffix="") for name, text in (("a", A), ("b", B))}
    sizes = {name: len(engine.render(parts)) for name, parts in prompts.items()}
    engine.max_cached_tokens = max(sizes.values()) + 8  # room for one document, not both
    for name in ("a", "b", "a"):
        engine.complete(prompts[name], max_new_tokens=4, stop_ids=frozenset(), session=name)
        assert engine.sessions.cached_tokens <= engine.max_cached_tokens
    assert engine.sessions.dropped == 2 and len(engine.sessions) == 1
    # "b" went to make room for "a": its next prompt is prefilled from scratch.
    again = engine.complete(prompts["b"], max_new_tokens=4, stop_ids=frozenset(), session="b")
    assert again.generation.reused_tokens == 0
