"""`disabledIn`: whether the cursor is in a comment or a string, by tree-sitter, table-tested with
real snippets of each language fimls has a grammar for (| marks the cursor)."""

import pytest

from fimls.context.syntax import cursor_in

CASES = [
    # Python
    ("a.py", 'x = 1  # compute the |', "comment"),
    ("a.py", 'name = "hello |world"\n', "string"),
    ("a.py", 'name = "hello"|\n', None),
    ("a.py", 'name = "unclosed |', "string"),
    ("a.py", 'def f():\n    """Return the |\n    x = 1\n', "string"),
    ("a.py", 'def f():\n    return g(|)\n', None),
    ("a.py", 'url = f"{host}/api/|{path}"\n', "string"),
    ("a.py", 'x = 1\n# a whole comment line|\ny = 2\n', "comment"),
    ("a.py", 'items = [a for a in b|]\n', None),
    # JavaScript / TypeScript
    ("a.js", "const s = `total: ${n} |items`;\n", "string"),
    ("a.js", "// TODO: handle |\nconst x = 1;\n", "comment"),
    ("a.js", "const x = compute(|);\n", None),
    ("a.ts", "/* a block\n   comment | */\nlet y: number = 2;\n", "comment"),
    ("a.ts", "let y: string = 'unclosed |", "string"),
    ("a.tsx", "const e = <div className=\"box |\"></div>;\n", "string"),
    # Go
    ("a.go", 'package m\n\nfunc f() string {\n\treturn "abc|"\n}\n', "string"),
    ("a.go", "package m\n\n// Handler serves |\nfunc f() {}\n", "comment"),
    ("a.go", "package m\n\nfunc f() {\n\tx := g(|)\n}\n", None),
    ("a.go", "package m\n\nvar s = `raw |text`\n", "string"),
    # Rust
    ("a.rs", 'fn main() {\n    let s = "hi |there";\n}\n', "string"),
    ("a.rs", "fn main() {\n    // explain |\n}\n", "comment"),
    ("a.rs", "/// Doc for |\nfn f() {}\n", "comment"),
    ("a.rs", "fn main() {\n    let v = vec![|];\n}\n", None),
    # Java
    ("A.java", 'class A {\n  String s = "x|y";\n}\n', "string"),
    ("A.java", "class A {\n  /** Javadoc | */\n  void f() {}\n}\n", "comment"),
    ("A.java", "class A {\n  void f() { g(|); }\n}\n", None),
    # C and C++
    ("a.c", '#include <stdio.h>\nint main(void) { printf("%d |", 1); }\n', "string"),
    ("a.c", "int x; /* open comment |", "comment"),
    ("a.c", "int x; /* closed */|\n", None),
    ("a.cpp", "int main() {\n  auto s = R\"(raw |)\";\n}\n", "string"),
    ("a.cpp", "int main() {\n  return f(|);\n}\n", None),
    # Languages without a grammar: never judged
    ("a.rb", "# comment |", None),
]


@pytest.mark.parametrize("path, marked, expected", CASES)
def test_cursor_kind(path, marked, expected):
    offset = marked.index("|")
    assert cursor_in(path, marked.replace("|", "", 1), offset) == expected


def test_no_completion_in_a_comment_when_disabled_there(tmp_path, engine, test_model_dir, fimls_session):
    from conftest import wait_for
    from model_inputs import CODE, COMMENT, choose

    # Inputs the local model completes (chosen at run time: its weights differ from machine to machine).
    comment = choose(engine, tmp_path, "before.py", COMMENT, maxNewTokens=8)
    code = choose(engine, tmp_path, "code.py", CODE, maxNewTokens=8)
    client = fimls_session(tmp_path, {"model": str(test_model_dir), "maxNewTokens": 8})
    assert client.first_status["state"] == "ready"

    def items(name, case):
        uri = (tmp_path / name).as_uri()
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": case.text}})
        return client.call("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": case.line, "character": case.character},
            "context": {"triggerKind": 2},
        }, timeout=120)["result"]

    assert items("before.py", comment)  # on by default: the comment is completed
    client.notify("workspace/didChangeConfiguration", {"settings": {"fimls": {"disabledIn": ["comment"]}}})
    assert wait_for(lambda: client.call("fimls/stats")["result"]["settings"]["disabledIn"] == ["comment"])
    assert items("comment.py", comment) == []
    assert items("code.py", code)  # code still is
