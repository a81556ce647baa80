"""The GPU kit, proved on the CPU: built offline from the wheel cache that the README's test set-up
fills (`python -m fimls.gpu_kit prepare`), under its size limit, installed with no index into an
empty folder beside an interpreter that has only the GPU image's packages, and `run.sh --device cpu
--small` passing end to end (the CUDA tests skip there, by design; tests/gpu/test_cuda.py).

This machine has CPython 3.11 and no torch build for 3.12 on its disk: the run is proved with a
kit for 3.11; the kit for the GPU image's 3.12 is built and checked for size and wheel tags."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

from fimls.gpu_kit import MOST_BYTES, build, default_stand_in, fits

pytestmark = pytest.mark.slow  # builds the GPU kit

HERE_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def stand_in() -> Path:
    python = default_stand_in() / "bin" / "python"
    if not python.exists():
        (pytest.fail if IN_CI else pytest.skip)(f"no stand-in for the GPU image at {python}: the README's test set-up (python -m fimls.gpu_kit prepare) makes it")
    return python


def _installed(python: Path, name: str) -> bool:
    return subprocess.run([str(python), "-c", f"import {name}"], capture_output=True, cwd="/").returncode == 0  # not a checkout


@pytest.mark.timeout(900)
def test_the_kit_installs_with_no_index_beside_the_image_and_runs_end_to_end(tmp_path, stand_in):
    kit = tmp_path / "kit"
    manifest = build(kit, HERE_PYTHON, offline=True)
    assert manifest["bytes"] < sum(p.stat().st_size for p in kit.rglob("*") if p.is_file()) <= MOST_BYTES
    assert all(fits(wheel, HERE_PYTHON) for wheel in (kit / "wheels").glob("*.whl"))
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
    run = subprocess.run(["bash", str(kit / "run.sh"), str(out), "--device", "cpu", "--small"], env=env,
                         capture_output=True, text=True, timeout=840, cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    logs = {path.name: path.read_text(errors="replace")[-3000:] for path in out.glob("*.log")}
    assert run.returncode == 0 and summary["ok"], (run.stdout, summary, logs)
    assert [p["phase"] for p in summary["phases"]] == ["install", "pypcre", "verify", "kernels", "check", "tests", "bench"]
    assert summary["seconds"] <= summary["budget_s"] == 540

    assert not list((out / "site").glob("torch*"))  # the image's torch, not a copy
    versions = json.loads((out / "verify.log").read_text().strip().splitlines()[-1])
    assert versions["transformers"] == manifest["packages"]["transformers"] != image  # the kit's comes first
    assert versions["torch"] == subprocess.run([str(stand_in), "-c", "import torch; print(torch.__version__)"],
                                               capture_output=True, text=True).stdout.strip()
    assert "pypcre: built here from source" in (out / "pypcre.log").read_text()
    check = json.loads((out / "check.json").read_text())
    assert check["device"] == "cpu" and check["completion"] and check["tokenizer"].startswith("exact")
    assert "5 skipped" in (out / "tests.log").read_text()
    bench = json.loads((out / "bench-gpu.json").read_text())
    assert bench["bench"] == "gpu" and bench["shapes"] and bench["shapes"][0]["decode_ms_per_token"] > 0


@pytest.mark.timeout(600)
def test_the_kit_for_the_gpu_images_python_is_complete_and_fits(tmp_path):
    manifest = build(tmp_path / "kit", "3.12", offline=True)
    assert manifest["bytes"] <= MOST_BYTES
    wheels = list((tmp_path / "kit" / "wheels").glob("*.whl"))
    assert wheels and all(fits(wheel, "3.12") for wheel in wheels)
    assert not any("-cp311-" in wheel.name for wheel in wheels)  # nothing of this machine's Python
    assert (tmp_path / "kit" / "source" / "pypcre-0.6.4.tar.gz").exists()
    fallback = manifest["pypcre_fallback_wheel"]
    assert fallback is None or "cp312" in fallback
