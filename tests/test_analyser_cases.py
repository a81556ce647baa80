"""`fimls eval-context make-cases --resolver typescript`: TypeScript cases whose gold answers come
from the TypeScript compiler's language service (the `typescript` package the VS Code extension's
`npm ci` installs), on a hand-written project whose answers are known."""

from pathlib import Path

from fimls.bench.eval_context import make_cases, run
import pytest

from conftest import IN_CI

pytestmark = pytest.mark.slow  # needs the VS Code extension's npm packages (typescript)

TYPESCRIPT = Path(__file__).resolve().parents[1] / "editors" / "vscode" / "node_modules" / "typescript"

CLIENT = """export class HttpClient {
  constructor(private base: string) {}

  get(path: string): string {
    return this.base + path;
  }
}

export function connect(base: string): HttpClient {
  return new HttpClient(base);
}
"""

STORE = """export class Store {
  get(key: string): string {
    return key;
  }
}
"""

PAGE = """import { HttpClient, connect } from "./client";

export class Page {
  private http: HttpClient;

  constructor() {
    this.http = connect("https://example.test");
  }

  load(): string {
    return this.http.get("/index");
  }
}
"""


def test_typescript_cases_take_their_golds_from_the_language_service(tmp_path, monkeypatch):
    if not (TYPESCRIPT / "package.json").exists():
        (pytest.fail if IN_CI else pytest.skip)("the test set-up's `npm ci --prefix editors/vscode` installs typescript")
    monkeypatch.setenv("TYPESCRIPT", str(TYPESCRIPT))
    src = tmp_path / "src"
    src.mkdir()
    (src / "client.ts").write_text(CLIENT)
    (src / "store.ts").write_text(STORE)  # another `get`: only the receiver's type says which
    (src / "page.ts").write_text(PAGE)
    for i in range(4):
        (src / f"util{i}.ts").write_text(f"export const value{i} = {i};\n")
    cases = make_cases(tmp_path, 50, resolver="typescript")
    found = {(c["kind"], PAGE[: c["offset"]].rsplit("\n", 1)[-1].strip()): c for c in cases if c["file"] == "src/page.ts"}
    expected = {  # gold lines (0-based) as read off CLIENT above
        ("imported", 'this.http = connect('): ("connect", 8),
        ("inferred", 'return this.http.get('): ("get", 3),
    }
    for key, (name, line) in expected.items():
        case = found[key]
        assert (case["name"], case["gold_path"], case["gold_start"], case["resolver"]) == (name, "src/client.ts", line, "typescript"), key
    for case in cases:
        assert case["gold_path"] != case["file"] and case["gold_path"] not in case["open_files"]
    report = run(tmp_path, [found[key] for key in expected], [1024], ["fused"])
    assert report["results"][0]["recall"] == 1.0
