"""`fimls eval-context make-cases --resolver jedi`: Python cases whose gold answers come from jedi,
not from fimls' import resolution, split by how the name got to the cursor, with open files that
the answer did not choose; `run` reports recall per kind. On a hand-written package whose
answers are known: a name imported by name, a method reached through `self.client = Client(...)`,
a method of what a function returns, and `module.func(`."""

import json

from fimls.bench.eval_context import make_cases, run

CLIENT = '''class Client:
    def __init__(self, url):
        self.url = url

    def prepare_request(self, method, path):
        return (method, self.url + path)


def connect(url):
    return Client(url)
'''

SERVICE = '''from shop.client import Client, connect
from shop import client as client_module


class Service:
    def __init__(self, url):
        self.client = Client(url)

    def fetch(self, path):
        request = self.client.prepare_request("GET", path)
        other = connect("x")
        third = client_module.connect("y")
        return request, other.prepare_request("POST", path), third
'''


def _repo(tmp_path):
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "client.py").write_text(CLIENT)
    (package / "service.py").write_text(SERVICE)
    for i in range(5):  # files a user might have open, none of them the answer
        (package / f"util{i}.py").write_text(f"def helper{i}(value):\n    return value * {i}\n")
    return tmp_path


def test_jedi_cases_have_independent_golds_kinds_and_open_files_not_chosen_by_the_answer(tmp_path):
    repo = _repo(tmp_path)
    cases = make_cases(repo, 50, resolver="jedi")
    found = {(c["kind"], SERVICE[: c["offset"]].rsplit("\n", 1)[-1].strip()): c for c in cases if c["file"] == "shop/service.py"}
    # Gold lines (0-based) are where client.py defines each name, as read off the text above.
    expected = {
        ("imported", "self.client = Client("): ("Client", 0),
        ("inferred", "request = self.client.prepare_request("): ("prepare_request", 4),
        ("imported", "other = connect("): ("connect", 8),
        ("inferred", "third = client_module.connect("): ("connect", 8),
        ("inferred", "return request, other.prepare_request("): ("prepare_request", 4),
    }
    for key, (name, line) in expected.items():
        case = found[key]
        assert (case["name"], case["gold_path"], case["gold_start"]) == (name, "shop/client.py", line), key
        assert case["resolver"] == "jedi"
    for case in cases:
        assert case["gold_path"] != case["file"]
        assert case["gold_path"] not in case["open_files"] and case["file"] not in case["open_files"]
        assert len(case["open_files"]) == 3


def test_run_reports_recall_per_kind(tmp_path):
    repo = _repo(tmp_path)
    cases = make_cases(repo, 50, resolver="jedi")
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    report = run(repo, cases, [1024], ["none", "fused"])
    rows = {row["ranker"]: row for row in report["results"]}
    kinds = {c["kind"] for c in cases}
    assert kinds == {"imported", "inferred"}
    for row in rows.values():
        assert set(row["recall_by_kind"]) == kinds
        assert sum(row["cases_by_kind"].values()) == len(cases)
    assert all(value == 0 for value in rows["none"]["recall_by_kind"].values())
    # The imports ranker follows `from shop.client import ...`: every imported case's gold is packed.
    assert rows["fused"]["recall_by_kind"]["imported"] == 1.0
    # The symbols ranker types the receivers (`self.client`, what `connect` returns, the module).
    assert rows["fused"]["recall_by_kind"]["inferred"] == 1.0
