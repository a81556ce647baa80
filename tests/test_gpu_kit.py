"""The GPU kit (tests/gpu/kit.py), proved on the CPU: built offline from the wheel cache that the
README's test set-up fills (`python tests/gpu/kit.py prepare`), under its size limit, installed with
no index into an empty folder beside an interpreter that has only the GPU image's packages, and
`run.sh --device cpu --small` passing end to end (the CUDA tests skip there, by design;
tests/gpu/test_cuda.py).

This machine has CPython 3.11 and no torch build for 3.12 on its disk: the run is proved with a
kit for 3.11; the kit for the GPU image's 3.12 is built and checked for size and wheel tags."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

KIT_SCRIPT = Path(__file__).resolve().parent / "gpu" / "kit.py"
ROOT = KIT_SCRIPT.parents[2]
HERE_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def _load_kit():
    """tests/gpu/kit.py is a script, not on the suite's path: loaded from its file."""
    spec = importlib.util.spec_from_file_location("gpu_kit_script", KIT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kit = _load_kit()


def _missing_setup(why: str):
    (pytest.fail if IN_CI else pytest.skip)(f"{why}: the README's test set-up (python tests/gpu/kit.py prepare) makes it")


def _build(directory: Path, python: str) -> dict:
    try:
        return kit.build(directory, python, offline=True)
    except kit.NotCached as error:
        _missing_setup(str(error))


@pytest.fixture(scope="module")
def stand_in() -> Path:
    python = kit.default_stand_in() / "bin" / "python"
    if not python.exists():
        _missing_setup(f"no stand-in for the GPU image at {python}")
    return python


def _installed(python: Path, name: str) -> bool:
    return subprocess.run([str(python), "-c", f"import {name}"], capture_output=True, cwd="/").returncode == 0  # not a checkout


def test_the_kit_script_runs_from_a_checkout_and_fimls_has_no_kit_command():
    result = subprocess.run([sys.executable, str(KIT_SCRIPT), "--help"], capture_output=True, text=True, cwd="/", timeout=120)
    assert result.returncode == 0, result.stderr
    assert all(command in result.stdout for command in ("prepare", "build", "verify", "warm-kernels"))
    # The product holds none of it.
    assert not (ROOT / "fimls" / "gpu_kit.py").exists() and not (ROOT / "fimls" / "kit_run.sh").exists()
    from fimls.cli import _parser

    with pytest.raises(SystemExit):
        _parser().parse_args(["gpu-kit", "/tmp/kit"])


def test_the_kit_carries_its_script_once_and_run_sh_calls_it_there(tmp_path):
    # Written inside a copy of the tests' folder, as `build tests/gpu/kit` would: no copy of itself.
    root = tmp_path / "checkout"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "lsp_client.py").write_text("# the suite's client\n")
    (root / "tests" / "gpu").mkdir()
    for name in ("test_cuda.py", "kit.py", "kit_run.sh"):
        (root / "tests" / "gpu" / name).write_text((KIT_SCRIPT.parent / name).read_text())
    directory = root / "tests" / "gpu" / "kit"
    directory.mkdir()
    kit.copy_tests_and_scripts(root, directory)

    files = sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())
    assert files == ["kit.py", "run.sh", "tests/gpu/lsp_client.py", "tests/gpu/pytest.ini", "tests/gpu/test_cuda.py"]
    assert (directory / "kit.py").read_text() == KIT_SCRIPT.read_text()
    run_sh = (directory / "run.sh").read_text()
    assert '"$KIT/kit.py" verify' in run_sh and '"$KIT/kit.py" warm-kernels' in run_sh
    assert "fimls.gpu_kit" not in run_sh
    assert os.access(directory / "run.sh", os.X_OK)


def test_the_kit_refuses_to_empty_a_folder_that_is_not_a_kit(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(RuntimeError, match="other than a kit"):
        kit.build(tmp_path, HERE_PYTHON, offline=True)
    assert (tmp_path / "notes.txt").exists()


def test_the_kit_carries_fimls_runtime_requirements_not_its_extras():
    requirements = {kit.canonicalize_name(name) for name in kit.requirements(ROOT)}
    assert {"gptqmodel", "pygls", "transformers"} <= requirements
    assert not {"gguf", "psutil", "packaging", "pytest"} & requirements
    carried = kit.carried(ROOT)
    assert "gguf" not in carried and "pytest" not in carried and "torch" not in carried


@pytest.mark.slow  # builds the GPU kit
@pytest.mark.timeout(900)
def test_the_kit_installs_with_no_index_beside_the_image_and_runs_end_to_end(tmp_path, stand_in):
    directory = tmp_path / "kit"
    manifest = _build(directory, HERE_PYTHON)
    assert manifest["bytes"] < sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) <= kit.MOST_BYTES
    assert all(kit.fits(wheel, HERE_PYTHON) for wheel in (directory / "wheels").glob("*.whl"))
    assert {"gptqmodel", "optimum", "pygls", "lsprotocol", "watchdog", "tree-sitter-python", "transformers"} <= set(manifest["packages"])
    assert not {"torch", "triton", "numpy", "pytest"} & set(manifest["packages"])  # the image's own
    # The stand-in is the image: its transformers is the tokenizer-bug one, and nothing of the kit.
    image = subprocess.run([str(stand_in), "-c", "import transformers; print(transformers.__version__)"], cwd="/",
                           capture_output=True, text=True, check=True).stdout.strip()
    assert image == "5.17.0"
    assert not any(_installed(stand_in, name) for name in ("gptqmodel", "optimum", "pygls", "fimls", "tree_sitter"))

    out = tmp_path / "out"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "FIMLS_MODEL", "FIMLS_TEST_MODEL_DIR")}
    env["FIMLS_KIT_PYTHON"] = str(stand_in)
    run = subprocess.run(["bash", str(directory / "run.sh"), str(out), "--device", "cpu", "--small"], env=env,
                         capture_output=True, text=True, timeout=840, cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    logs = {path.name: path.read_text(errors="replace")[-3000:] for path in out.glob("*.log")}
    assert run.returncode == 0 and summary["ok"], (run.stdout, summary, logs)
    assert [p["phase"] for p in summary["phases"]] == ["install", "pypcre", "verify", "kernels", "check", "tests", "bench"]
    assert summary["seconds"] <= summary["budget_s"] == 540

    assert not list((out / "site").glob("torch*"))  # the image's torch, not a copy
    assert not list((out / "site").glob("fimls/*kit*"))  # the kit's script is the kit's, not fimls'
    versions = json.loads((out / "verify.log").read_text().strip().splitlines()[-1])
    assert versions["transformers"] == manifest["packages"]["transformers"] != image  # the kit's comes first
    assert versions["torch"] == subprocess.run([str(stand_in), "-c", "import torch; print(torch.__version__)"],
                                               capture_output=True, text=True).stdout.strip()
    assert "pypcre: built here from source" in (out / "pypcre.log").read_text()
    check = json.loads((out / "check.json").read_text())
    assert check["device"] == "cpu" and check["completion"] and check["tokenizer"].startswith("exact")
    assert "GPT-QModel" in (out / "check-details.log").read_text()  # the libraries' output, kept apart
    assert "5 skipped" in (out / "tests.log").read_text()
    bench = json.loads((out / "bench-gpu.json").read_text())
    assert bench["bench"] == "gpu" and bench["shapes"] and bench["shapes"][0]["decode_ms_per_token"] > 0


@pytest.mark.slow  # builds the GPU kit
@pytest.mark.timeout(600)
def test_the_kit_for_the_gpu_images_python_is_complete_and_fits(tmp_path):
    directory = tmp_path / "kit"
    manifest = _build(directory, "3.12")
    assert manifest["bytes"] <= kit.MOST_BYTES
    wheels = list((directory / "wheels").glob("*.whl"))
    assert wheels and all(kit.fits(wheel, "3.12") for wheel in wheels)
    assert not any("-cp311-" in wheel.name for wheel in wheels)  # nothing of this machine's Python
    assert not {"gguf", "psutil", "packaging"} & set(manifest["packages"])  # the benchmarks' and the kit's, not fimls'
    assert (directory / "source" / "pypcre-0.6.4.tar.gz").exists()
    fallback = manifest["pypcre_fallback_wheel"]
    assert fallback is None or "cp312" in fallback
    assert (directory / "kit.py").is_file() and not (directory / "tests" / "gpu" / "kit.py").exists()
