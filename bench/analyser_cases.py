"""Retrieval cases for TypeScript/JavaScript and Go whose gold answers come from each language's
own analyser, as bench/jedi_cases.py does for Python: the TypeScript compiler's language service
(`--resolver typescript`, bench/ts_cases.js run by node, the `typescript` package named by
$TYPESCRIPT) and gopls (`--resolver gopls`, one `gopls serve` asked textDocument/definition). Neither is a fimls
dependency; both are tools of the eval only.

Kinds: `inferred` is a member reached through a value (`obs.subscribe(`, `c.Flags().NArg(`);
`imported` a name bound by an import of the file (TypeScript); `package` (Go) a name of the
package or of an imported one, written bare or qualified by the package's name.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fimls.bench.jedi_cases import OPEN_FILES, SITES_PER_FILE  # the same case shape as the Python ones


def typescript_cases(repo: Path, files: list[str], max_cases: int, seed: int = 0) -> list[dict[str, Any]]:
    if not os.environ.get("TYPESCRIPT"):
        raise SystemExit("--resolver typescript needs $TYPESCRIPT: the folder of an unpacked `npm pack typescript`")
    node = shutil.which("node")
    if node is None:
        raise SystemExit("--resolver typescript needs node on PATH")
    request = {"repo": str(repo.resolve()), "files": files, "max": max_cases, "seed": seed, "open": OPEN_FILES, "per_file": SITES_PER_FILE}
    script = Path(__file__).with_name("ts_cases.js")
    done = subprocess.run([node, str(script)], input=json.dumps(request), capture_output=True, text=True, check=True)
    cases = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return sorted(cases, key=lambda c: (c["file"], c["offset"]))


_GO_SELECTOR = re.compile(r"(?<![\w.])(?P<receiver>\w+)\.(?P<name>\w+)[ \t]*[(.]|\)\.(?P<chained>\w+)[ \t]*[(.]|(?<![\w.])(?P<bare>\w+)\(")
_GO_KEYWORDS = frozenset("if for switch func return go defer select case range make new len cap append panic print println".split())


def _go_import_names(text: str) -> set[str]:
    names = set()
    for block in re.findall(r"^import\s*\(([^)]*)\)|^import\s+([^\n]+)", text, re.M):
        for line in "\n".join(block).splitlines():
            match = re.match(r"\s*(?:(\w+)\s+)?\"([^\"]+)\"", line)
            if match:
                names.add(match[1] or match[2].rsplit("/", 1)[-1])
    return names


class _Gopls:
    """One `gopls serve` over stdio, asked textDocument/definition: it loads the packages once
    (a `gopls definition` command line loads them per question, 1.5 s each here)."""

    def __init__(self, gopls: str, root: Path):
        self.process = subprocess.Popen([gopls, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0
        self.request("initialize", {"processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": {},
                                    "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}]})
        self.notify("initialized", {})

    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: dict):
        self.next_id += 1
        self._send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            length = 0
            while (line := self.process.stdout.readline().strip()):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            message = json.loads(self.process.stdout.read(length))
            if message.get("id") == self.next_id and "method" not in message:
                return message.get("result")
            if "method" in message and "id" in message:  # a request from the server: answer it empty
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})

    def definition(self, path: Path, line: int, character: int):
        return self.request("textDocument/definition", {"textDocument": {"uri": path.as_uri()}, "position": {"line": line, "character": character}})

    def close(self) -> None:
        try:
            self.request("shutdown", {})
            self.notify("exit", {})
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()


def gopls_cases(repo: Path, files: list[str], max_cases: int, seed: int = 0) -> list[dict[str, Any]]:
    """`repo` must be where gopls can load it: inside a module, or under $GOPATH/src with
    GO111MODULE=off (Debian's golang-*-dev packages install there)."""
    gopls = shutil.which("gopls")
    if gopls is None:
        raise SystemExit("--resolver gopls needs gopls on PATH")
    repo = repo.resolve()
    server = _Gopls(gopls, repo)
    try:
        return _gopls_cases(server, repo, files, max_cases, seed)
    finally:
        server.close()


def _gopls_cases(server: _Gopls, repo: Path, files: list[str], max_cases: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    known = set(files)
    cases: list[dict[str, Any]] = []
    order = [f for f in files if not f.endswith("_test.go")]
    rng.shuffle(order)
    for path in order:
        if len(cases) >= max_cases:
            break
        text = (repo / path).read_text(encoding="utf-8", errors="replace")
        imported = _go_import_names(text)
        sites = []
        for match in _GO_SELECTOR.finditer(text):
            line_start = text.rfind("\n", 0, match.start()) + 1
            if text[line_start : match.start()].lstrip().startswith("//") or text.count('"', line_start, match.start()) % 2:
                continue
            if match["name"]:
                kind = "package" if match["receiver"] in imported else "inferred"
                sites.append((match.start("name"), match["name"], kind))
            elif match["chained"]:
                sites.append((match.start("chained"), match["chained"], "inferred"))
            elif match["bare"] not in _GO_KEYWORDS and not text.startswith("func", max(0, match.start() - 5)):
                sites.append((match.start("bare"), match["bare"], "package"))
        rng.shuffle(sites)
        kept = 0
        for start, name, kind in sites:
            if kept >= SITES_PER_FILE:
                break
            line = text.count("\n", 0, start)
            # LSP positions count UTF-16 code units; Go source here is ASCII before the name
            character = len(text[text.rfind("\n", 0, start) + 1 : start].encode("utf-16-le")) // 2
            answer = server.definition(repo / path, line, character)
            locations = answer if isinstance(answer, list) else [answer] if answer else []
            if len(locations) != 1:
                continue
            location = locations[0]
            try:
                gold_path = Path(location["uri"].removeprefix("file://")).resolve().relative_to(repo).as_posix()
            except ValueError:
                continue  # the standard library or another module
            if gold_path not in known or gold_path == path:
                continue
            gold_line = location["range"]["start"]["line"]
            others = [p for p in files if p not in (gold_path, path)]
            cases.append({
                "file": path, "offset": start + len(name) + 1, "name": name, "kind": kind, "resolver": "gopls",
                "gold_path": gold_path, "gold_start": gold_line, "gold_end": gold_line + 1,
                "open_files": sorted(rng.sample(others, min(OPEN_FILES, len(others)))),
            })
            kept += 1
    return sorted(cases[:max_cases], key=lambda c: (c["file"], c["offset"]))
