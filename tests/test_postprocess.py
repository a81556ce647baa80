"""Each post-processing rule, on real snippets in several languages."""

import pytest

from fimls.lsp.postprocess import (
    balance_brackets,
    is_degenerate,
    match_indentation,
    postprocess,
    to_single_line,
    trim_suffix_overlap,
)


@pytest.mark.parametrize(
    "text, after, expected",
    [
        # Python: the closing paren the editor auto-inserted is not written twice
        ("len(items))", ")\n", "len(items)"),
        # TypeScript: `);` already follows the cursor
        ("res.json());", ");\n}\n", "res.json()"),
        # Go: nothing after the cursor, nothing to trim
        ("fmt.Println(err)", "\n\treturn\n}\n", "fmt.Println(err)"),
        # Rust: the model rewrote the following line; the completion stops before it
        ("let x = parse(s)?;\n    let y = x * 2;\n    Ok(y)", "\n    Ok(y)\n}\n", "let x = parse(s)?;\n    let y = x * 2;"),
        # C: a rest of line that is white space only is not an overlap
        ("return 0;", "   \n}\n", "return 0;"),
    ],
)
def test_trim_suffix_overlap(text, after, expected):
    assert trim_suffix_overlap(text, after) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", True),
        ("   \n\t\n", True),
        ("))))))))))", True),
        ("self.x = 1\nself.x = 1\nself.x = 1\n", True),
        ("abcabcabcabcabc", True),
        ("return a + b", False),
        ("x = [0, 0, 0, 0]", False),
        ("}\n", False),
    ],
)
def test_degenerate_completions_are_dropped(text, expected):
    assert is_degenerate(text) is expected


@pytest.mark.parametrize(
    "text, after, expected",
    [
        # mid-line in Python (code follows): one line
        ("a, b)\n    return c", "c)\n", "a, b)"),
        # only closing punctuation follows (JS auto-closed `)`): multi-line stays
        ("() => {\n  run();\n}", ");\n", "() => {\n  run();\n}"),
        # end of line in Go: multi-line stays
        ("{\n\treturn nil\n}", "\n", "{\n\treturn nil\n}"),
    ],
)
def test_single_line_mid_line(text, after, expected):
    assert to_single_line(text, after) == expected


@pytest.mark.parametrize(
    "text, before, after, expected",
    [
        # Go file indented with tabs; the model wrote spaces
        ("if err != nil {\n        return err\n    }", "func f() error {\n\terr := g()\n\t", "\n}\n", "if err != nil {\n\t\treturn err\n\t}"),
        # Python file indented with 4 spaces; the model wrote a tab
        ("for x in xs:\n\t\tprint(x)", "def f(xs):\n    y = 1\n    ", "\n", "for x in xs:\n        print(x)"),
        # consistent already: unchanged
        ("if (a) {\n  b();\n}", "function f() {\n  ", "\n}\n", "if (a) {\n  b();\n}"),
    ],
)
def test_indentation_follows_the_file(text, before, after, expected):
    assert match_indentation(text, before, after) == expected


@pytest.mark.parametrize(
    "text, before, after, expected",
    [
        # Python: the completion's extra `)` would close nothing; the rest of line has one
        ("a, b))", "result = foo(", ")\n", "a, b)"),
        # JavaScript: `]` already after the cursor
        ("1, 2, 3]]", "const xs = [", "];\n", "1, 2, 3]"),
        # Rust: brackets opened inside the completion are closed inside it: kept
        ("vec![1, (2, 3)]", "let v = ", ";\n", "vec![1, (2, 3)]"),
        # C: no closer after the cursor: nothing to balance against
        ("x)", "if (", "\n", "x)"),
    ],
)
def test_balance_brackets_against_the_suffix(text, before, after, expected):
    assert balance_brackets(text, before, after) == expected


@pytest.mark.parametrize(
    "text, before, after, expected",
    [
        ("items))", "    total = len(", ")\n    return total\n", "items"),
        ("   ", "x = ", "\n", ""),
        ("value\n    return value\n\n", "def f(value):\n    return ", "\n", "value\n    return value"),
        ("err\n}", "\tif err != nil {\n\t\treturn ", "\n\t}\n", "err"),
    ],
)
def test_postprocess_pipeline(text, before, after, expected):
    assert postprocess(text, before, after) == expected


def test_a_closing_line_the_completion_needs_is_kept():
    # Go: the completion opens and closes its own block; the function's `}` follows in the file.
    text = "if err != nil {\n\t\treturn err\n\t}"
    assert trim_suffix_overlap(text, "\n}\n") == text


def test_post_processing_reads_only_the_text_around_the_cursor_and_decides_as_with_all_of_it():
    import random
    import sysconfig
    from pathlib import Path

    from fimls.lsp.postprocess import around_cursor

    rng = random.Random(11)
    files = sorted(p for p in Path(sysconfig.get_paths()["stdlib"]).rglob("*.py") if 20_000 < p.stat().st_size < 300_000)
    completions = ["value)\n    return value\n", "items))", "x\n\n\n    y", "\tindented\n\t\tmore\n", "self.run()\n        self.stop()\n    def"]
    for path in rng.sample(files, 20):
        document = path.read_text(encoding="utf-8", errors="replace")
        for _ in range(10):
            offset = rng.randrange(len(document) + 1)
            before, after = around_cursor(document, offset)
            cursor_line_so_far = offset - document.rfind("\n", 0, offset) - 1
            assert len(before) <= max(4000, cursor_line_so_far)  # not the whole prefix of the file
            for text in completions + [document[offset : offset + rng.randrange(1, 120)]]:
                assert postprocess(text, before, after) == postprocess(text, document[:offset], document[offset:])


@pytest.mark.parametrize(
    "text, before, after, dropped",
    [
        # Python: on the empty line of a body, the model writes the line that follows
        ("return total", "def f(items):\n    total = sum(items)\n    ", "\n    return total\n", True),
        # ... or the next two lines, across a blank line
        ("x = load()\n\n    y = parse(x)", "def main():\n    ", "\n    x = load()\n\n    y = parse(x)\n    run(y)\n", True),
        # Go: the rest of a word typed on the line repeats the next line as a whole
        ("rr != nil {", "func f() error {\n\tif e", "\n\tif err != nil {\n\t\treturn err\n", True),
        # TypeScript: a new line that differs from what follows stays
        ("const b = a + 1;", "function f(a: number) {\n  ", "\n  return a;\n}\n", False),
        # Rust: the same statement as the next line but with a change stays
        ("let y = x * 3;", "fn f(x: i32) -> i32 {\n    ", "\n    let y = x * 2;\n    y\n}\n", False),
        # Nothing follows: nothing to echo
        ("pass", "def f():\n    ", "\n", False),
    ],
)
def test_a_completion_that_only_repeats_the_following_lines_is_dropped(text, before, after, dropped):
    from fimls.lsp.postprocess import echoes_following

    assert echoes_following(text, before, after) is dropped
    assert (postprocess(text, before, after) == "") is dropped


@pytest.mark.parametrize(
    "text, degenerate",
    [
        ("self.assertEqual(a, b)\n        self.assertEqual(a, b)\n        self.assertEqual(a, b)", True),  # Python
        ("x := 1\n\ty := 2\n\ty := 2\n\ty := 2", True),  # Go: the loop starts after a good line
        ("case 1:\n\tcase 2:\n\tcase 3:", False),  # C: similar lines, not the same
        ("foo();\nfoo();", False),  # twice may be meant
        ("))))))))", True),
    ],
)
def test_one_line_over_and_over_is_degenerate(text, degenerate):
    assert is_degenerate(text) is degenerate
