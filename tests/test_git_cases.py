"""`fimls eval-context make-cases --from-git` (bench/git_cases.py) and `run` on its cases: the
expected case is worked out here from the test's own commit, never by fimls."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fimls.bench.eval_context import add_arguments, main, offset_of, run_edit_cases
from fimls.bench.git_cases import make_git_cases

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

LIB_BEFORE = '''"""Settings files."""

import json


def read_text(path):
    with open(path, encoding="utf-8") as file:
        return file.read()
'''

LIB_AFTER = LIB_BEFORE + '''

def parse_config(path, defaults=None):
    """The settings in the JSON file at `path`, over `defaults`."""
    merged = dict(defaults or {})
    merged.update(json.loads(read_text(path)))
    return merged
'''

APP_BEFORE = '''import lib


def main(path):
    text = lib.read_text(path)
    return len(text)
'''

TARGET = "    settings = lib.parse_config(path)\n"
APP_AFTER = APP_BEFORE.replace("    return len(text)\n", TARGET + "    return len(text)\n")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def history(tmp_path):
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "lib.py").write_text(LIB_BEFORE)
    (repo / "app.py").write_text(APP_BEFORE)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    parent = git(repo, "rev-parse", "HEAD")
    (repo / "lib.py").write_text(LIB_AFTER)
    (repo / "app.py").write_text(APP_AFTER)
    git(repo, "commit", "-q", "-am", "parse_config")
    return repo, parent, git(repo, "rev-parse", "HEAD")


def expected_case(repo: Path, parent: str, commit: str, checkouts: Path) -> dict:
    line = APP_AFTER.splitlines(keepends=True).index(TARGET)
    lines = APP_AFTER.splitlines(keepends=True)
    typed = "".join(lines[:line]) + "    \n" + "".join(lines[line + 1 :])
    definition = LIB_AFTER.splitlines().index("def parse_config(path, defaults=None):")
    return {
        "root": str(checkouts / f"proj-{parent[:12]}"),
        "commit": commit,
        # lib.py's one hunk, then app.py as typed up to the cursor
        "edits": [{"path": "lib.py", "text": LIB_AFTER}, {"path": "app.py", "text": typed}],
        "path": "app.py", "line": line, "character": 4,
        "gold": [{"path": "lib.py", "start_line": definition, "end_line": definition}],
        "kind": "introduced", "name": "parse_config",
    }


def test_make_cases_from_git_gives_the_exact_case_of_a_real_commit(history, tmp_path):
    repo, parent, commit = history
    checkouts = tmp_path / "checkouts"
    cases = make_git_cases(repo, checkouts, max_cases=10, seed=0)
    assert cases == [expected_case(repo, parent, commit, checkouts)]
    root = Path(cases[0]["root"])
    # The root is the parent's tree: the workspace as it was before the commit.
    assert (root / "lib.py").read_text() == LIB_BEFORE and (root / "app.py").read_text() == APP_BEFORE


def test_run_replays_the_edits_as_open_documents_and_scores_recall(history, tmp_path):
    repo, parent, commit = history
    checkouts = tmp_path / "checkouts"
    cases = make_git_cases(repo, checkouts, max_cases=10, seed=0)
    report = run_edit_cases(cases, [1024], ["recent", "fused", "fused-without-recent", "none"])
    recall = {row["ranker"]: row["recall"] for row in report["results"]}
    assert recall["recent"] == 1.0 and recall["fused"] == 1.0 and recall["none"] == 0.0
    assert report["roots"] == 1 and report["results"][0]["recall_by_kind"] == {"introduced": 1.0}
    # The edits were undone: the checkout on disk is untouched, as is the next case's workspace.
    assert (Path(cases[0]["root"]) / "lib.py").read_text() == LIB_BEFORE


def test_the_command_line_writes_and_runs_the_cases(history, tmp_path, capfd):
    repo, parent, commit = history
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "cases.jsonl"
    assert main(parser.parse_args(["make-cases", "--from-git", str(repo), "--checkouts", str(tmp_path / "co"), "--out", str(out)])) == 0
    assert [json.loads(line)["name"] for line in out.read_text().splitlines()] == ["parse_config"]
    capfd.readouterr()
    assert main(parser.parse_args(["run", "--cases", str(out), "--budget", "1024", "--ranker", "recent", "--json"])) == 0
    report = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert report["results"][0]["recall"] == 1.0


def test_positions_count_utf16_code_units():
    text = "a = 1\nb = '😀' + c\n"
    # The emoji is two UTF-16 units: character 8 is just after it and its closing quote.
    assert offset_of(text, 1, 8) == text.index("' + c") + 1
    assert offset_of(text, 0, 0) == 0 and offset_of(text, 1, 100) == text.index("\n", 6)
