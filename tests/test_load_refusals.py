"""A model is served exactly or refused with one sentence.

- No weight is ever made up: transformers fills a parameter its checkpoint lacks with random values
  (and drops a tensor it cannot place) and only logs it. fimls refuses such a model, naming what
  did not load: `fimls check` exits 2, and loading raises ModelUnavailable.
- A shape a GPTQ kernel cannot multiply (a group of 128 that does not divide a layer's width, as
  in DeepSeek-Coder-V2-Lite's dense layer) goes to the next kernel that can, checked against the
  same weights dequantized by hand; with no such kernel, one sentence, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

import torch

from conftest import run_fimls
from fimls.bench.random_gptq import write_dense_twin, write_random_gptq
from fimls.contract import ModelUnavailable
from fimls.engine.model.loading import load_model

pytestmark = pytest.mark.slow  # loads the test model


def _edited_copy(source: Path, destination: Path, edit) -> Path:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("dense"))
    weights = destination / "model.safetensors"
    tensors = load_file(str(weights))
    edit(tensors)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return destination


def _missing_one(tensors: dict) -> str:
    name = next(name for name in sorted(tensors) if name.endswith("mlp.down_proj.qweight"))
    del tensors[name]
    return name


def test_the_test_model_loads_every_weight(test_model_dir):
    load_model(str(test_model_dir), device="cpu")  # refused otherwise
    load_model(str(test_model_dir / "dense"), device="cpu")


def test_a_checkpoint_missing_a_tensor_is_refused_naming_it(test_model_dir, tmp_path):
    removed = []
    broken = _edited_copy(test_model_dir, tmp_path / "missing", lambda tensors: removed.append(_missing_one(tensors)))
    with pytest.raises(ModelUnavailable) as refusal:
        load_model(str(broken), device="cpu")
    message = str(refusal.value)
    assert message.startswith(f"Refusing '{broken}'") and "lacks weights the model needs (1: " in message, message
    assert removed[0].removesuffix(".qweight") in message, message
    checked = run_fimls("check", "--model", str(broken))
    assert checked.returncode == 2, checked.stderr
    said = [line for line in checked.stderr.splitlines() if line.startswith("fimls: ")]
    assert len(said) == 1 and "Refusing" in said[0] and "Traceback" not in checked.stderr, checked.stderr


def test_a_checkpoint_with_a_tensor_nothing_uses_is_refused_naming_it(test_model_dir, tmp_path):
    def add_stray(tensors: dict) -> None:
        tensors["model.layers.0.mlp.stray_proj.weight"] = next(iter(tensors.values())).clone()

    broken = _edited_copy(test_model_dir / "dense", tmp_path / "stray", add_stray)
    with pytest.raises(ModelUnavailable, match=r"fit no part of the model \(1: model\.layers\.0\.mlp\.stray_proj\.weight\)"):
        load_model(str(broken), device="cpu")


@pytest.fixture(scope="module")
def ragged(test_model_dir, tmp_path_factory) -> Path:
    return write_random_gptq("ragged-groups", tmp_path_factory.mktemp("ragged") / "gptq", test_model_dir)


def test_a_shape_the_first_kernel_cannot_serve_goes_to_one_that_can(ragged, tmp_path):
    loaded = load_model(str(ragged), device="cpu")
    assert loaded.kernel != "TorchAtenLinear", loaded.kernel  # the first choice on CPU refuses a width of 320
    twin = load_model(str(write_dense_twin(ragged, tmp_path / "dense")), device="cpu")
    ids = torch.tensor([[32013, 1000, 2000, 3000, 4000]])
    with torch.inference_mode():
        served = loaded.model(input_ids=ids).logits.float()
        reference = twin.model(input_ids=ids).logits.float()
    assert (served - reference).abs().max() <= 0.02 * reference.abs().max(), (served - reference).abs().max()


def test_a_shape_no_kernel_asked_for_can_serve_is_refused_in_one_sentence(ragged):
    with pytest.raises(ModelUnavailable, match=r"no GPTQ kernel of \['gptq_torch_aten'\] serves it \(.*divisible"):
        load_model(str(ragged), device="cpu", gptq_backend="gptq_torch_aten")
