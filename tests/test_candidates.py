"""Several candidates from one prefill: the first is exactly the single completion, the others
start with the next most likely first tokens and reuse the whole prompt's KV cache."""

from fimls.prompt import PromptParts
from fimls.engine.stops import rules_for_cursor

PREFIX = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return "


def test_alternatives_branch_from_the_shared_prefill_and_the_first_is_the_single_completion(engine):
    parts = PromptParts(header="#m.py\n", prefix=PREFIX, suffix="\n")
    rules = rules_for_cursor("    return ", "")
    engine.session.reset()
    single = engine.complete(parts, max_new_tokens=12, rules=rules)
    engine.session.reset()
    three = engine.complete(parts, max_new_tokens=12, rules=rules, candidates=3)
    assert (three.text, three.generation.token_ids) == (single.text, single.generation.token_ids)
    assert three.generation.reused_tokens == 0  # prefilled once, from nothing
    prompt_length = three.generation.prompt_tokens
    assert len(three.alternatives) == 2
    first_tokens = {three.generation.token_ids[0]}
    for alternative in three.alternatives:
        generation = alternative.generation
        # The whole prompt came from the cache; only the branch's first token was fed anew.
        assert (generation.prompt_tokens, generation.reused_tokens) == (prompt_length + 1, prompt_length)
        assert generation.token_ids[0] not in first_tokens
        first_tokens.add(generation.token_ids[0])
        assert alternative.text and alternative.text != three.text
    means = [a.generation.mean_log_probability for a in three.alternatives]
    assert means == sorted(means, reverse=True)
    # The greedy first token is the most likely one: the alternatives' first tokens are less so.
    choices = dict(three.generation.first_choices)
    assert all(choices[three.generation.token_ids[0]] >= choices[a.generation.token_ids[0]] for a in three.alternatives)


def test_sampling_makes_no_alternatives(engine):
    parts = PromptParts(header="#m.py\n", prefix=PREFIX, suffix="\n")
    sampled = engine.complete(parts, max_new_tokens=4, temperature=0.8, candidates=3)
    assert sampled.alternatives == ()


def test_an_invoked_request_gets_distinct_candidates_and_an_automatic_one_gets_one(tmp_path, test_model_dir):
    from lsp_client import LspClient

    client = LspClient(cwd=str(tmp_path))
    try:
        client.call("initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {},
                                   "initializationOptions": {"model": str(test_model_dir), "device": "cpu", "maxNewTokens": 12,
                                                             "debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0}})
        client.notify("initialized", {})
        assert client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"), timeout=300)["state"] == "ready"
        uri = (tmp_path / "m.py").as_uri()
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": PREFIX}})
        lines = PREFIX.split("\n")
        position = {"line": len(lines) - 1, "character": len(lines[-1])}

        def items(trigger_kind):
            answer = client.call("textDocument/inlineCompletion", {
                "textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": trigger_kind},
            }, timeout=120)
            return [item["insertText"] for item in answer["result"]]

        automatic = items(2)
        invoked = items(1)
        assert len(automatic) == 1
        assert 2 <= len(invoked) <= 3 and len(set(invoked)) == len(invoked)
        assert invoked[0] == automatic[0]  # the first candidate is what a single request returns
    finally:
        client.close()
