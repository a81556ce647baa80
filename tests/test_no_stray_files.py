"""Building or loading a model writes nothing where the user ran fimls (gptqmodel writes a `logs/`
folder into the current directory while it quantizes)."""

import os
import subprocess
import sys

import pytest

from conftest import run_fimls

pytestmark = pytest.mark.slow  # runs fimls


def test_check_and_make_test_model_leave_the_current_directory_empty(tmp_path, test_model_dir):
    for args in (["make-test-model"], ["check", "--model", str(test_model_dir), "--device", "cpu"]):
        result = run_fimls(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert os.listdir(tmp_path) == [], (args, os.listdir(tmp_path))


def test_quantizing_leaves_the_current_directory_empty(tmp_path, test_model_dir):
    # What `fimls make-test-model` does on a cache miss, without rebuilding the whole model.
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    script = (
        "import sys; from pathlib import Path; import fimls; from fimls.testmodel import quantize\n"
        "quantize(Path(sys.argv[1]), Path(sys.argv[2]), group_size=64)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(test_model_dir / "dense"), str(out)],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "model.safetensors").is_file()
    assert os.listdir(cwd) == []
