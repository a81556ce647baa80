"""The workspace index follows real file events; ignored, secret and outside files never reach a
prompt; snippets are packed within exact budgets in the documented format."""

import os

from pathlib import Path

import pytest

from conftest import wait_for
from fimls.context.builder import ContextBuilder, pack, reciprocal_rank_fusion
from fimls.context.candidates import Candidate
from fimls.context.languages import path_comment
from fimls.context.workspace import WorkspaceIndex
from fimls.settings import SECRET_GLOBS


def _index(root):
    return WorkspaceIndex(str(root), max_file_bytes=200_000, exclude_globs=SECRET_GLOBS)


def _built(root):
    """A scanned index of `root` and a context builder over it."""
    builder = ContextBuilder(_index(root))
    builder.build()
    return builder.index, builder


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "geometry.py").write_text(
        "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius * radius\n\n\n"
        "class Rectangle:\n    def __init__(self, width, height):\n        self.width = width\n        self.height = height\n"
    )
    (root / "main.py").write_text("from pkg.geometry import circle_area, Rectangle\n\n\nprint(circle_area(2))\n")
    (root / ".gitignore").write_text("generated/\n*.log\n")
    (root / "generated").mkdir()
    (root / "generated" / "leak.py").write_text("IGNORED_MARKER_circle_area = 1\n")
    (root / "debug.log").write_text("circle_area\n")
    (root / ".env").write_text("SECRET_TOKEN_circle_area = 'hunter2'\n")
    (root / "node_modules" / "lib").mkdir(parents=True)
    (root / "node_modules" / "lib" / "index.js").write_text("function circle_area() {}\n")
    (root / "blob.py").write_bytes(b"circle_area\0\x01\x02")
    outside = tmp_path / "outside.py"
    outside.write_text("OUTSIDE_MARKER_circle_area = 1\n")
    os.symlink(outside, root / "linked.py")
    return root


def test_scan_takes_source_and_skips_ignored_secret_binary_vendored_and_outside_files(repo):
    index = _index(repo)
    index.scan()
    assert sorted(index.files) == ["main.py", "pkg/__init__.py", "pkg/geometry.py"]
    assert index.files["pkg/geometry.py"].language == "python"


def test_index_follows_real_file_events(repo):
    index = _index(repo)
    index.scan()
    index.watch()
    try:
        (repo / "pkg" / "shapes.py").write_text("def square(x):\n    return x * x\n")
        assert wait_for(lambda: "pkg/shapes.py" in index.files)
        (repo / "pkg" / "shapes.py").write_text("def cube(x):\n    return x * x * x\n")
        assert wait_for(lambda: "cube" in index.files["pkg/shapes.py"].text)
        os.rename(repo / "pkg" / "shapes.py", repo / "pkg" / "solids.py")
        assert wait_for(lambda: "pkg/solids.py" in index.files and "pkg/shapes.py" not in index.files)
        os.remove(repo / "pkg" / "solids.py")
        assert wait_for(lambda: "pkg/solids.py" not in index.files)
        (repo / "generated" / "new.py").write_text("x = 1\n")  # ignored: never indexed
        (repo / "late.py").write_text("y = 2\n")
        assert wait_for(lambda: "late.py" in index.files)
        assert "generated/new.py" not in index.files
    finally:
        index.stop()


def test_open_documents_override_their_disk_copy(repo):
    index = _index(repo)
    index.scan()
    index.open_document(str(repo / "main.py"), "EDITED = True\n")
    assert index.files["main.py"].text == "EDITED = True\n"
    index.refresh(repo / "main.py")  # a disk event while open: the editor's copy wins
    assert index.files["main.py"].text == "EDITED = True\n"
    index.close_document(str(repo / "main.py"))
    assert index.files["main.py"].text.startswith("from pkg.geometry")


def test_ignored_secret_and_outside_files_never_reach_the_snippets(repo, engine):
    index, builder = _built(repo)
    text = "from pkg.geometry import circle_area\n\nIGNORED_MARKER_circle_area SECRET_TOKEN_circle_area OUTSIDE_MARKER_circle_area\ncircle_area("
    for ranker in ("fused", "bm25", "jaccard", "imports"):
        snippets = builder.snippets(ranker, "app.py", text, len(text), (0, 4), 2000, engine.count_tokens)
        joined = "".join(s.text for s in snippets)
        for marker in ("IGNORED_MARKER", "SECRET_TOKEN", "OUTSIDE_MARKER", "hunter2", "function circle_area"):
            assert marker not in joined, (ranker, marker)


def test_imports_ranker_finds_the_definition_used_at_the_cursor(repo, engine):
    index, builder = _built(repo)
    text = (repo / "main.py").read_text() + "shape = Rectangle("
    snippets = builder.snippets("imports", "main.py", text, len(text), (0, 6), 500, engine.count_tokens)
    assert snippets and snippets[-1].path == "pkg/geometry.py"
    assert snippets[-1].text.startswith("#pkg/geometry.py\nclass Rectangle:")  # the name used last is best


def _names_found(builder, current, text):
    """(path, line) of every line of the imports ranker's candidates."""
    candidates = builder.candidates("imports", current, text, len(text), (0, text.count("\n") + 1))
    return [(c.path, line) for c in candidates for line in c.text.splitlines()]


def test_imports_ranker_resolves_typescript_through_extensions_index_files_and_reexports(tmp_path):
    root = tmp_path / "ts"
    (root / "src" / "core").mkdir(parents=True)
    (root / "src" / "core" / "schemas.ts").write_text(
        "export interface Schema { parse(input: unknown): unknown }\n\n"
        "export function string(): Schema {\n  return { parse: (x) => String(x) };\n}\n"
    )
    (root / "src" / "core" / "util.js").write_text("const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));\nmodule.exports = { clamp };\n")
    (root / "src" / "core" / "index.ts").write_text('export * from "./schemas.js";\nexport { clamp } from "./util.js";\n')
    (root / "src" / "unrelated.ts").write_text("export function string() { return 'wrong one'; }\n")
    _, builder = _built(root)
    text = 'import * as core from "./core/index.js";\nimport { clamp } from "./core/util";\n\nconst s: core.Schema = core.string();\nclamp('
    found = _names_found(builder, "src/app.ts", text)
    assert ("src/core/schemas.ts", "export function string(): Schema {") in found
    assert ("src/core/schemas.ts", "export interface Schema { parse(input: unknown): unknown }") in found
    assert ("src/core/util.js", "const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));") in found
    assert all(path != "src/unrelated.ts" for path, _ in found)


def test_imports_ranker_resolves_go_packages_and_the_files_of_the_same_package(tmp_path):
    root = tmp_path / "go"
    (root / "internal" / "store").mkdir(parents=True)
    (root / "go.mod").write_text("module example.com/shop\n\ngo 1.22\n")
    (root / "internal" / "store" / "store.go").write_text(
        "package store\n\ntype Item struct {\n\tName  string\n\tPrice int\n}\n\n"
        "func (s *Store) Add(item Item) error {\n\treturn nil\n}\n\ntype Store struct{ items []Item }\n"
    )
    (root / "cart.go").write_text("package main\n\nfunc total(prices []int) int {\n\tsum := 0\n\treturn sum\n}\n")
    (root / "cart_test.go").write_text("package main\n\nfunc helperOnlyForTests() {}\n")
    _, builder = _built(root)
    text = 'package main\n\nimport (\n\t"fmt"\n\tst "example.com/shop/internal/store"\n)\n\nfunc main() {\n\ts := &st.Store{}\n\ts.Add(st.Item{Name: "x"})\n\tfmt.Println(total(nil), helperOnlyForTests)\n'
    found = _names_found(builder, "main.go", text)
    assert ("internal/store/store.go", "func (s *Store) Add(item Item) error {") in found
    assert ("internal/store/store.go", "type Store struct{ items []Item }") in found
    assert ("internal/store/store.go", "type Item struct {") in found
    assert ("cart.go", "func total(prices []int) int {") in found  # same package, no import needed
    assert all(path != "cart_test.go" for path, _ in found)  # tests are not part of the package build


def test_imports_ranker_resolves_rust_crate_paths_child_modules_and_other_workspace_crates(tmp_path):
    root = tmp_path / "rs"
    (root / "app" / "src" / "net").mkdir(parents=True)
    (root / "util-kit" / "src").mkdir(parents=True)
    (root / "app" / "src" / "net" / "mod.rs").write_text("pub mod client;\n\npub const PORT: u16 = 8080;\n")
    (root / "app" / "src" / "net" / "client.rs").write_text(
        "pub struct Client {\n    pub host: String,\n}\n\nimpl Client {\n    pub fn connect(&self) -> bool {\n        true\n    }\n}\n"
    )
    (root / "app" / "src" / "config.rs").write_text("pub fn load(path: &str) -> String {\n    path.to_string()\n}\n")
    (root / "util-kit" / "src" / "lib.rs").write_text("pub fn clamp(x: i32, lo: i32, hi: i32) -> i32 {\n    x.max(lo).min(hi)\n}\n")
    (root / "app" / "src" / "unrelated.rs").write_text("pub fn load() {}\n")
    _, builder = _built(root)
    text = (
        "mod config;\nmod net;\n\nuse crate::net::{client::Client, PORT};\nuse util_kit::clamp;\nuse std::io;\n\n"
        "fn main() {\n    let c = Client { host: config::load(\"x\") };\n    c.connect();\n    clamp(PORT as i32, 0, 1);\n"
    )
    found = _names_found(builder, "app/src/main.rs", text)
    assert ("app/src/net/client.rs", "pub struct Client {") in found
    assert ("app/src/net/client.rs", "    pub fn connect(&self) -> bool {") in found  # a method of its impl
    assert ("app/src/net/mod.rs", "pub const PORT: u16 = 8080;") in found
    assert ("app/src/config.rs", "pub fn load(path: &str) -> String {") in found  # a child module
    assert ("util-kit/src/lib.rs", "pub fn clamp(x: i32, lo: i32, hi: i32) -> i32 {") in found  # another crate
    assert all(path != "app/src/unrelated.rs" for path, _ in found)


def test_imports_ranker_resolves_java_imports_wildcards_and_the_same_package(tmp_path):
    root = tmp_path / "java"
    base = root / "src" / "main" / "java" / "com" / "shop"
    (base / "model").mkdir(parents=True)
    (base / "model" / "Item.java").write_text(
        "package com.shop.model;\n\npublic class Item {\n    private final int price;\n\n"
        "    public int getPrice() {\n        return price;\n    }\n}\n"
    )
    (base / "model" / "Money.java").write_text("package com.shop.model;\n\npublic record Money(long cents) {}\n")
    (base / "Cart.java").write_text("package com.shop;\n\npublic interface Cart {\n    void add(Object item);\n}\n")
    (root / "src" / "main" / "java" / "other" / "Item.java").parent.mkdir(parents=True)
    (root / "src" / "main" / "java" / "other" / "Item.java").write_text("package other;\n\npublic class Item {}\n")
    _, builder = _built(root)
    text = (
        "package com.shop;\n\nimport com.shop.model.Item;\nimport com.shop.model.*;\nimport java.util.List;\n\n"
        "public class App {\n    int total(Item item, Cart cart, Money money) {\n        return item.getPrice("
    )
    found = _names_found(builder, "src/main/java/com/shop/App.java", text)
    assert ("src/main/java/com/shop/model/Item.java", "public class Item {") in found
    assert ("src/main/java/com/shop/model/Item.java", "    public int getPrice() {") in found
    assert ("src/main/java/com/shop/model/Money.java", "public record Money(long cents) {}") in found  # wildcard
    assert ("src/main/java/com/shop/Cart.java", "public interface Cart {") in found  # same package
    assert all(path != "src/main/java/other/Item.java" for path, _ in found)


def test_imports_ranker_follows_c_and_cpp_includes_into_headers(tmp_path):
    root = tmp_path / "c"
    (root / "include" / "geo").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "include" / "geo" / "point.h").write_text(
        "#ifndef GEO_POINT_H\n#define GEO_POINT_H\n#include \"geo/types.h\"\n\n"
        "typedef struct point {\n    real x, y;\n} point_t;\n\nreal point_distance(const point_t *a, const point_t *b);\n#endif\n"
    )
    (root / "include" / "geo" / "types.h").write_text("#pragma once\n#define GEO_EPSILON 1e-9\ntypedef double real;\n")
    (root / "src" / "shape.hpp").write_text(
        "#pragma once\nnamespace geo {\nclass Shape {\n public:\n    virtual double area() const = 0;\n};\n}\n"
    )
    (root / "src" / "unrelated.h").write_text("real point_distance(void);\n")
    _, builder = _built(root)
    text = (
        '#include <geo/point.h>\n#include "shape.hpp"\n#include <stdio.h>\n\n'
        "double f(const geo::Shape &s, point_t *a, point_t *b) {\n    if (point_distance(a, b) < GEO_EPSILON) return s.area("
    )
    found = _names_found(builder, "src/main.cpp", text)
    assert ("include/geo/point.h", "real point_distance(const point_t *a, const point_t *b);") in found
    assert ("include/geo/point.h", "typedef struct point {") in found
    assert ("include/geo/types.h", "#define GEO_EPSILON 1e-9") in found  # included by the included header
    assert ("src/shape.hpp", "class Shape {") in found  # quoted: next to the file
    assert all(path != "src/unrelated.h" for path, _ in found)


def test_incremental_reparse_of_a_typed_file_equals_a_full_parse():
    import random

    from fimls.context.syntax import parse, parser

    text = (Path(__file__).parent.parent / "context" / "builder.py").read_text()
    rng = random.Random(7)
    for _ in range(150):  # keystrokes, pastes, deletions, unbalanced brackets and quotes, non-ASCII
        start = rng.randrange(len(text) + 1)
        end = min(len(text), start + rng.choice([0, 0, 1, 5, 40]))
        text = text[:start] + rng.choice(["", "x", "(", '"""', "\n    ", "é", "😀", "def f(:\n"]) + text[end:]
        incremental = parse("python", text, "typed.py")
        assert str(incremental.root_node) == str(parser("python").parse(text.encode()).root_node)


def test_imports_of_the_typed_file_are_reread_only_when_an_edit_touches_an_import():
    from fimls.context import imports_go, imports_rust
    from fimls.context.imports import python_imports
    from fimls.context.syntax import parse

    def modules(source, path):
        return [(i.module, i.names) for i in python_imports(source, path)]

    base = "import os\nfrom pkg.util import (\n    helper,\n    other,\n)\n\n\ndef main():\n    x = 1\n"
    path = "typed_imports.py"
    assert modules(base, path) == [("os", ()), ("pkg.util", ("helper", "other"))]
    before = parse("python", base, path)
    typed = base + "    y = helper(x)\n"
    assert modules(typed, path) == modules(base, path)
    from fimls.context import syntax

    assert syntax._live[("python", path)][1] is before  # not reparsed: the edit touched no import
    cases = [
        (typed.replace("    other,\n", "    other,\n    third,\n"), ("pkg.util", ("helper", "other", "third"))),  # inside the parentheses
        (typed.replace("import os\n", "import os\nimport json\n"), ("json", ())),  # a new import line
    ]
    for edited, expected in cases:
        assert expected in modules(edited, path)
        assert modules(edited, path) == [(i.module, i.names) for i in python_imports(edited)]  # what a full parse reads
    removed = typed.replace("import os\n", "")
    assert ("os", ()) not in modules(removed, path)
    # The same for the other languages' import words.
    go = 'package main\n\nimport (\n\t"fmt"\n)\n\nfunc main() {\n}\n'
    assert [i.module for i in imports_go.imports(go, "m.go")] == ["fmt"]
    go2 = go.replace('\t"fmt"\n', '\t"fmt"\n\t"os"\n')
    assert [i.module for i in imports_go.imports(go2, "m.go")] == ["fmt", "os"]
    rust = "use crate::a::B;\n\nfn main() {\n}\n"
    assert imports_rust.uses(rust, "src/main.rs")[0] == [(["crate", "a"], "B")]
    assert imports_rust.uses(rust.replace("fn main() {\n", "fn main() {\n    let x = 1;\n"), "src/main.rs")[0] == [(["crate", "a"], "B")]
    assert imports_rust.uses(rust + "mod tests;\n", "src/main.rs")[1] == ["tests"]


def test_bm25_term_counts_follow_updates_and_deletes_exactly():
    from fimls.context.bm25 import BM25Index

    index = BM25Index()
    index.update("a.py", "def load_config(path):\n    return read(path)\n" * 20)
    index.update("b.py", "def save_config(path, data):\n    write(path, data)\n")
    index.update("a.py", "def parse_args(argv):\n    return argv\n")  # rewritten
    index.update("b.py", None)  # deleted
    index._db.execute("CREATE VIRTUAL TABLE vocabulary USING fts5vocab(chunks, 'row')")
    in_fts5 = dict(index._db.execute("SELECT term, doc FROM vocabulary").fetchall())
    assert dict(index._frequencies) == in_fts5 == {"parse_args": 1, "argv": 1}
    assert [c.path for c in index.search("argv = parse_args(", 5)] == ["a.py"]


def test_bm25_indexed_in_batches_equals_file_by_file(monkeypatch):
    from fimls.context import bm25

    monkeypatch.setattr(bm25, "FILES_PER_COMMIT", 3)  # several batches and a partial last one
    files = [(f"m{i}.py", f"def handler_{i}(request):\n    return render_{i % 3}(request)\n" * (i + 1)) for i in range(8)]
    files.append(("m2.py", "def rewritten(x):\n    return render_0(x)\n"))  # a path seen again within a batch
    one_by_one, batched = bm25.BM25Index(), bm25.BM25Index()
    for path, text in files:
        one_by_one.update(path, text)
    batched.update_many(iter(files))
    assert len(batched) == len(one_by_one) and dict(batched._frequencies) == dict(one_by_one._frequencies)
    for query in ("return render_0(request", "handler_5(", "rewritten(x)"):
        assert [(c.path, c.start_line) for c in batched.search(query, 10)] == [(c.path, c.start_line) for c in one_by_one.search(query, 10)]


@pytest.mark.parametrize("budget", [0, 20, 60, 200, 1000])
def test_packing_never_exceeds_the_budget_and_puts_the_best_last(engine, budget):
    candidates = [
        Candidate(f"src/m{i}.py", 0, 3, f"def f{i}(x):\n    return x + {i}\n" * (i + 1), "bm25", 1.0 / (i + 1))
        for i in range(8)
    ]
    snippets = pack(candidates, budget, engine.count_tokens)
    assert sum(engine.count_tokens(s.text) for s in snippets) <= budget
    for snippet in snippets:
        assert snippet.text.startswith(path_comment(snippet.path)) and snippet.text.endswith("\n")
    if snippets:
        assert snippets[-1].path == min((s.path for s in snippets), key=lambda p: int(p[5:-3]))


def test_fusion_rewards_agreement_and_merges_overlaps():
    a = Candidate("x.py", 0, 15, "a", "bm25", 3.0)
    b = Candidate("y.py", 0, 15, "b", "bm25", 2.0)
    a_window = Candidate("x.py", 10, 70, "a2", "jaccard", 0.5)
    c = Candidate("z.py", 0, 60, "c", "jaccard", 0.9)
    fused = reciprocal_rank_fusion([[a, b], [c, a_window]])
    assert fused[0] is a  # in both lists
    assert [f.path for f in fused] == ["x.py", "z.py", "y.py"]


def test_snippets_stay_while_typing_on_a_line_and_change_with_the_line(repo, engine):
    index, builder = _built(repo)
    text = "from pkg.geometry import circle_area, Rectangle\n\nx = circle_area(1)\ny = Rect"
    first = builder.snippets("fused", "app.py", text, len(text), (0, 4), 400, engine.count_tokens)
    typed = text + "angle("
    assert builder.snippets("fused", "app.py", typed, len(typed), (0, 4), 400, engine.count_tokens) is first
    moved = typed + ")\nz = "
    index.open_document(str(repo / "pkg" / "geometry.py"), "def circle_area(r):\n    return 3 * r * r\n")
    recomputed = builder.snippets("fused", "app.py", moved, len(moved), (0, 5), 400, engine.count_tokens)
    assert recomputed is not first
    assert "return 3 * r * r" in "".join(s.text for s in recomputed)


def test_eval_harness_finds_the_gold_definition_in_a_fixture_repository(repo):
    from fimls.bench.eval_context import make_cases, run

    cases = make_cases(repo, max_cases=10)
    assert {(c["file"], c["name"], c["gold_path"]) for c in cases} == {
        ("main.py", "circle_area", "pkg/geometry.py"),
    }  # Rectangle is imported but never used: no case
    case = cases[0]
    assert case["gold_start"] == 3  # `def circle_area` on line 4
    text = (repo / "main.py").read_text()
    assert text[: case["offset"]].endswith("circle_area(")
    report = run(repo, cases, budgets=[256], rankers=["none", "imports", "fused"])
    by_ranker = {r["ranker"]: r for r in report["results"]}
    assert by_ranker["none"]["recall"] == 0.0
    assert by_ranker["imports"]["recall"] == 1.0 and by_ranker["imports"]["mrr"] == 1.0
    assert by_ranker["fused"]["recall"] == 1.0


def test_eval_harness_makes_typescript_and_go_cases(tmp_path):
    from fimls.bench.eval_context import make_cases

    ts = tmp_path / "ts"
    (ts / "lib").mkdir(parents=True)
    (ts / "lib" / "math.ts").write_text("export function square(x: number): number {\n  return x * x;\n}\n")
    (ts / "lib" / "index.ts").write_text('export * from "./math.js";\n')
    (ts / "app.ts").write_text('import { square } from "./lib/index.js";\n\nconsole.log(square(3));\n')
    assert {(c["file"], c["name"], c["gold_path"], c["gold_start"]) for c in make_cases(ts, 10)} == {
        ("app.ts", "square", "lib/math.ts", 0),  # found behind the barrel's re-export
    }
    go = tmp_path / "go"
    go.mkdir()
    (go / "util.go").write_text("package main\n\nfunc double(x int) int {\n\treturn 2 * x\n}\n")
    (go / "main.go").write_text("package main\n\nfunc main() {\n\tprintln(double(21))\n}\n")
    cases = make_cases(go, 10)
    assert {(c["file"], c["name"], c["gold_path"], c["gold_start"]) for c in cases} == {("main.go", "double", "util.go", 2)}
    assert (go / "main.go").read_text()[: cases[0]["offset"]].endswith("double(")
    rust = tmp_path / "rust" / "src"
    rust.mkdir(parents=True)
    (rust / "geometry.rs").write_text("pub fn area(w: f64, h: f64) -> f64 {\n    w * h\n}\n")
    (rust / "main.rs").write_text("mod geometry;\nuse crate::geometry::area;\n\nfn main() {\n    println!(\"{}\", area(2.0, 3.0));\n}\n")
    assert {(c["file"], c["name"], c["gold_path"], c["gold_start"]) for c in make_cases(rust.parent, 10)} == {
        ("src/main.rs", "area", "src/geometry.rs", 0),
    }


def test_jaccard_reads_the_typed_file_around_the_cursor_only():
    from fimls.context import jaccard

    def file_with(lines: int, marker_line: int) -> str:
        rows = [f"filler_{i} = {i}\n" for i in range(lines)]
        rows[marker_line] = "special_marker_name = compute_special_marker()\n"
        return "".join(rows) + "special_marker_name = compute_special_marker("

    # Within CURRENT_FILE_LINES / 2 of the cursor (the file's last line) or not.
    for lines, marker_line, found in ((900, 10, True), (1500, 600, True), (5000, 100, False), (5000, 4300, True)):
        text = file_with(lines, marker_line)
        region, first = jaccard.around_cursor(text, len(text), text.count("\n"))
        assert first % jaccard.STEP_LINES == 0 and text.count("\n") - first <= jaccard.CURRENT_FILE_LINES // 2 + jaccard.STEP_LINES
        assert text.endswith(region) and region.endswith("compute_special_marker(")
        hits = jaccard.jaccard_search("special_marker_name = compute_special_marker(", {"a.py": region}, 5, first_lines={"a.py": first})
        windows = [(c.start_line, c.end_line) for c in hits]
        assert any(start <= marker_line < end for start, end in windows) == found, (lines, marker_line, windows)
        for c in hits:  # line numbers are the file's, not the region's
            assert text.splitlines(keepends=True)[c.start_line] == c.text.splitlines(keepends=True)[0]
