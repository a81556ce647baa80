"""Several candidates from one prefill: the first is exactly the single completion, the others
start with the next most likely first tokens and reuse the whole prompt's KV cache."""

from fimls.contract import PromptParts
from fimls.stops import rules_for_cursor
from model_inputs import CODE, CURSOR, marked, shown_candidates

# Prompts ending at the cursor, of which the first the local test model gives a greedy
# completion and two non-empty alternatives is used (its weights differ from machine to machine).
PREFIXES = [document[: document.index(CURSOR)] for document in CODE]


def _branches(prefix: str):
    parts = PromptParts(header="#m.py\n", prefix=prefix, suffix="\n")
    line = prefix.rsplit("\n", 1)[-1]
    return parts, rules_for_cursor(line, "")


def test_alternatives_branch_from_the_shared_prefill_and_the_first_is_the_single_completion(engine):
    for prefix in PREFIXES:
        parts, rules = _branches(prefix)
        engine.session.reset()
        three = engine.complete(parts, max_new_tokens=12, rules=rules, candidates=3)
        if three.generation.token_ids and len(three.alternatives) == 2 and all(a.text for a in three.alternatives):
            break
    else:
        raise AssertionError("the test model gives no prompt a completion and two alternatives: not a reasonably trained test model")
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
    parts, _ = _branches(PREFIXES[0])
    sampled = engine.complete(parts, max_new_tokens=4, temperature=0.8, candidates=3)
    assert sampled.alternatives == ()


def test_an_invoked_request_gets_distinct_candidates_and_an_automatic_one_gets_one(tmp_path, test_model_dir, engine, fimls_session):
    # A cursor where the local model's greedy completion and an alternative survive post-processing, distinct.
    for document in CODE:
        text, offset = marked(document)
        (tmp_path / "m.py").write_text(text)
        if len(shown_candidates(engine, tmp_path, "m.py", text, offset, 3, maxNewTokens=12)) >= 2:
            break
    else:
        raise AssertionError("the test model shows two distinct candidates nowhere: not a reasonably trained test model")
    client = fimls_session(tmp_path, {"model": str(test_model_dir), "maxNewTokens": 12})
    assert client.first_status["state"] == "ready"
    uri = (tmp_path / "m.py").as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})
    line = text.count("\n", 0, offset)
    position = {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}

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
