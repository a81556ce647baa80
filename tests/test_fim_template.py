import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from fimls.contract import PromptParts, Snippet
from fimls.engine.model.fim import FimTemplate, FimUnsupported
from fimls.engine.model.tokenizer import CodeTokenizer


def test_rendered_prompt_has_fim_tokens_in_psm_order(engine):
    parts = PromptParts(header="#pkg/util.py\n", prefix="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n")
    ids = engine.template.render(parts, engine.encode, layout="psm")
    # BOS (the real tokenizer prepends it to DeepSeek's own FIM example), then <｜fim▁begin｜>.
    assert ids[:2] == [32013, 32016]
    hole, end = ids.index(32015), ids.index(32017)
    assert 2 < hole < end == len(ids) - 1
    assert ids.count(32015) == ids.count(32016) == ids.count(32017) == 1
    tokenizer = engine.loaded.tokenizer
    assert tokenizer.decode(ids[2:hole]) == parts.header + parts.prefix
    assert tokenizer.decode(ids[hole + 1 : end]) == parts.suffix


def test_snippets_come_first_and_each_piece_is_encoded_alone(engine):
    parts = PromptParts(header="#b.py\n", prefix="x = helper(", suffix=")\n", snippets=(Snippet("a.py", "#a.py\ndef helper(v):\n    return v\n"),))
    ids = engine.template.render(parts, engine.encode, layout="psm")
    pieces = [engine.encode(p) for p in (parts.snippets[0].text, parts.header, parts.prefix)]
    assert ids[2 : 2 + sum(map(len, pieces))] == [t for piece in pieces for t in piece]


def test_line_in_middle_layout_puts_the_typed_line_after_fim_end(engine):
    parts = PromptParts(header="#a.py\n", prefix="import os\n\ndef f(path):\n    return os.pa", suffix="\n\nf('x')\n")
    ids = engine.template.render(parts, engine.encode, layout="line-in-middle")
    end = ids.index(32017)
    assert ids[end + 1 :] == engine.encode("    return os.pa")
    hole = ids.index(32015)
    assert engine.loaded.tokenizer.decode(ids[2:hole]) == "#a.py\nimport os\n\ndef f(path):\n"
    # Typing one more character changes only the tail after <｜fim▁end｜>.
    typed = PromptParts(header=parts.header, prefix=parts.prefix + "t", suffix=parts.suffix)
    more = engine.template.render(typed, engine.encode, layout="line-in-middle")
    assert more[: end + 1] == ids[: end + 1]


def test_template_ids_come_from_the_tokenizer(engine):
    template = engine.template
    assert template.family == "deepseek-coder"
    assert (template.bos_id, template.begin_id, template.hole_id, template.end_id) == (32013, 32016, 32015, 32017)
    assert {32014, 32021} <= template.stop_ids


def test_tokenizer_without_fim_tokens_is_refused_naming_the_model():
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel()
    backend.add_tokens(["def", "return"])
    tokenizer = CodeTokenizer(PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>"), backend)
    with pytest.raises(FimUnsupported, match="Model 'acme/chat-7b' has no fill-in-the-middle tokens"):
        FimTemplate.from_tokenizer(tokenizer, "acme/chat-7b")


def test_control_token_strings_in_the_source_stay_text(engine):
    # A file about tokenizers (fimls' own testmodel.py is one) holds the FIM markers as text.
    source = 'FIM_HOLE = "<｜fim▁hole｜>"\nEOS = "<｜end▁of▁sentence｜>"\nx = '
    parts = PromptParts(header="#tokens.py\n", prefix=source, suffix="\n")
    ids = engine.template.render(parts, engine.encode, layout="psm")
    assert ids.count(32015) == ids.count(32016) == ids.count(32017) == 1  # only the template's own
    assert 32014 not in ids
    hole = ids.index(32015)
    assert engine.loaded.tokenizer.decode(ids[2:hole]) == parts.header + source  # the text itself survives
    assert engine.encode("plain text") == engine.loaded.tokenizer.hf("plain text", add_special_tokens=False).input_ids
