import ast
import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import run_fimls

from fimls.stdio import Progress

ROOT = Path(__file__).resolve().parent.parent
# What `fimls check` shows on stderr: its steps, and an error as one sentence; nothing of gptqmodel,
# torch or transformers (banners, tables, warnings, progress bars).
CHECK_LINE = ("fimls check: ", "fimls: ")
CHECK_KEYS = {
    "model", "device", "dtype", "kernel", "tokenizer", "load_s", "prompt_tokens", "time_to_first_token_ms",
    "tokens_per_s", "new_tokens", "completion",
}
LIBRARY_CHATTER = ("GPT-QModel", "Warning", "WARN", "INFO", "it/s]", "Traceback")


def _only_fimls_lines(stderr: str, allowed: tuple[str, ...] = CHECK_LINE) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith(allowed) for line in lines), stderr[-3000:]
    assert not any(chatter in stderr for chatter in LIBRARY_CHATTER), stderr[-3000:]


@pytest.mark.slow  # runs fimls
def test_check_with_a_missing_model_path_fails_with_one_clear_sentence(tmp_path):
    missing = tmp_path / "no-such-model"
    result = run_fimls("check", "--model", str(missing))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("fimls: ")]
    assert len(error_lines) == 1
    assert f"No model directory at '{missing}'" in error_lines[0]
    assert "--model" in error_lines[0] or "directory" in error_lines[0]
    assert "(log: " in error_lines[0] and "check.log" in error_lines[0]
    _only_fimls_lines(result.stderr)
    assert result.stdout == ""


@pytest.mark.slow  # runs fimls
def test_check_with_an_unreachable_hub_id_says_what_was_tried(tmp_path):
    # HF_HUB_OFFLINE makes the hub lookup fail at once, as it would on a machine without network.
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
    assert set(report) == CHECK_KEYS | {"note"}  # the note: this is the test model
    assert report["device"] == "cpu"
    assert report["kernel"] == "TorchAtenLinear"
    assert report["load_s"] > 0 and report["time_to_first_token_ms"] > 0 and report["tokens_per_s"] > 0
    assert report["new_tokens"] >= 1 and report["prompt_tokens"] > 20
    # gptqmodel's banner and log lines must not reach stdout: it holds exactly our JSON.
    assert len(result.stdout.strip().splitlines()) == 1
    _only_fimls_lines(result.stderr)


def test_check_shows_its_own_steps_and_keeps_the_libraries_output_in_its_log(tmp_path, test_model_dir):
    log = tmp_path / "check.log"
    result = run_fimls("--log-file", str(log), "check", "--model", "fimls:test-model", "--device", "cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    _only_fimls_lines(result.stderr)
    steps = result.stderr.splitlines()
    assert steps[0].startswith("fimls check: loading fimls:test-model ... ") and steps[0].endswith(" s")
    assert steps[-1].startswith("fimls check: completing ... ")
    assert "kernel: TorchAtenLinear" in result.stdout and "GPT-QModel" not in result.stdout
    details = log.read_text(errors="replace")
    assert "GPT-QModel" in details and "Warning" in details  # gptqmodel's banner, a library's warning


@pytest.mark.slow  # runs fimls
def test_a_benchmark_whose_package_is_missing_says_how_to_install_it():
    # psutil made unimportable, as in an install without the bench extra.
    script = "import sys; sys.modules['psutil'] = None; from fimls.cli import main; sys.exit(main(['bench', 'soak']))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fimls: `fimls bench soak` needs psutil, which fimls installs only for its benchmarks: pip install 'fimls[bench]'"
    ]


def test_the_product_needs_neither_the_benchmarks_packages_nor_the_kits():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lab = {"gguf", "psutil", "packaging"}
    assert not {text.split(">")[0].split("=")[0] for text in project["dependencies"]} & lab
    assert {text.split(">")[0] for text in project["optional-dependencies"]["bench"]} == {"gguf", "psutil"}
    assert lab <= {text.split(">")[0] for text in project["optional-dependencies"]["test"]}
    imports = []
    for folder in ("fimls", "lsp", "context", "engine"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                imports += [(str(path.relative_to(ROOT)), name) for name in names if name.partition(".")[0] in lab]
    assert imports == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_writes_one_plain_line_per_step_off_a_terminal():
    stream = io.StringIO()
    progress = Progress("fimls make-test-model", stream)
    with progress.step("training the model", 8) as advance:
        for _ in range(8):
            advance(1)
    with progress.step("quantizing it"):
        pass
    with pytest.raises(ValueError):
        with progress.step("writing it"):
            raise ValueError("disk full")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("fimls make-test-model: training the model ... 25% 50% 75% 100% ") and lines[0].endswith(" s")
    assert lines[1].startswith("fimls make-test-model: quantizing it ... ") and lines[1].endswith(" s")
    assert lines[2] == "fimls make-test-model: writing it ... failed"
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_progress_redraws_its_line_with_a_bar_on_a_terminal():
    stream = _Terminal()
    with Progress("fimls check", stream).step("training", 4) as advance:
        advance(2)
    text = stream.getvalue()
    assert text.startswith("\rfimls check: training [") and "0/4" in text
    final = text.rsplit("\r", 1)[-1]
    assert final.startswith("fimls check: training ... ") and final.endswith(" s\x1b[K\n")


def test_diverted_libraries_write_to_the_log_and_fimls_to_the_terminal(tmp_path):
    log = tmp_path / "logs" / "check.log"
    script = f"""
import logging, os, sys, warnings
from pathlib import Path
from fimls.stdio import Progress, divert_libraries, print_err, print_out
logging.basicConfig(handlers=[logging.StreamHandler(sys.stderr)], force=True)
divert_libraries(Path({str(log)!r}))
os.write(1, b"BANNER on fd 1\\n")
os.write(2, b"native warning on fd 2\\n")
print("a library's print")
warnings.warn("a library's warning")
logging.getLogger("transformers").warning("a library's log line")
with Progress("fimls check").step("loading"):
    pass
print_out("the answer")
print_err("fimls: one sentence")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the answer\n"
    lines = result.stderr.splitlines()
    assert lines[0].startswith("fimls check: loading ... ") and lines[1:] == ["fimls: one sentence"]
    details = log.read_text()
    for chatter in ("BANNER on fd 1", "native warning on fd 2", "a library's print", "a library's warning",
                    "a library's log line"):
        assert chatter in details


@pytest.mark.slow  # runs fimls
def test_complete_rejects_a_position_outside_the_file(tmp_path, test_model_dir):
    source = tmp_path / "a.py"
    source.write_text("x = 1\n")
    result = run_fimls("complete", f"{source}:1:99", "--model", str(test_model_dir))
    assert result.returncode == 2
    assert "has no column 99" in result.stderr
