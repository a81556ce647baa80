import json

import pytest

from conftest import run_fimls

pytestmark = pytest.mark.slow  # runs fimls


def test_check_with_a_missing_model_path_fails_with_one_clear_sentence(tmp_path):
    missing = tmp_path / "no-such-model"
    result = run_fimls("check", "--model", str(missing))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("fimls: ")]
    assert len(error_lines) == 1
    assert f"No model directory at '{missing}'" in error_lines[0]
    assert "--model" in error_lines[0] or "directory" in error_lines[0]
    assert result.stdout == ""


def test_check_with_an_unreachable_hub_id_says_what_was_tried(tmp_path):
    # HF_HUB_OFFLINE makes the hub lookup fail at once, as it would on a machine without network.
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "fimls", "check", "--model", "acme/not-a-real-model"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "acme/not-a-real-model" in result.stderr and "local directory" in result.stderr


def test_check_reports_device_kernel_and_speed(test_model_dir):
    result = run_fimls("check", "--model", str(test_model_dir), "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["device"] == "cpu"
    assert report["kernel"] == "TorchAtenLinear"
    assert report["load_s"] > 0 and report["time_to_first_token_ms"] > 0 and report["tokens_per_s"] > 0
    assert report["new_tokens"] >= 1 and report["prompt_tokens"] > 20
    # gptqmodel's banner and log lines must not reach stdout: it holds exactly our JSON.
    assert len(result.stdout.strip().splitlines()) == 1


def test_complete_rejects_a_position_outside_the_file(tmp_path, test_model_dir):
    source = tmp_path / "a.py"
    source.write_text("x = 1\n")
    result = run_fimls("complete", f"{source}:1:99", "--model", str(test_model_dir))
    assert result.returncode == 2
    assert "has no column 99" in result.stderr
