"""Replicas of the DeepSeek-Coder repositories users download, with the test model's weights.

Each replica holds the files of its Hub repository under their real names, with the metadata files
as the repository has them (fimls/checkpoints.py) and the test model's trained weights in the
repository's format: GPTQ act-order at its group size in one model.safetensors (TheBloke's
branches), dense bfloat16 in one pytorch_model.bin with special_tokens_map.json
(deepseek-ai/deepseek-coder-1.3b-base), or dense weights in two safetensors shards with their
index, beside the .bin shards (deepseek-ai/deepseek-coder-6.7b-base). They are built once from the
test model's dense weights and cached beside it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fimls import checkpoints
from fimls.testmodel import DENSE_SUBDIR, dimensions, ensure_test_model, quantize, recipe_key


@dataclass(frozen=True)
class Replica:
    repository: str
    branch: str
    layout: str  # "gptq" | "dense-bin" | "dense-sharded"
    group_size: int | None = None


REPLICAS = {
    "thebloke-1.3b-gptq-main": Replica("TheBloke/deepseek-coder-1.3b-base-GPTQ", "main", "gptq", 128),
    "thebloke-1.3b-gptq-32g": Replica("TheBloke/deepseek-coder-1.3b-base-GPTQ", "gptq-4bit-32g-actorder_True", "gptq", 32),
    "thebloke-1.3b-gptq-64g": Replica("TheBloke/deepseek-coder-1.3b-base-GPTQ", "gptq-4bit-64g-actorder_True", "gptq", 64),
    "deepseek-ai-1.3b-base": Replica("deepseek-ai/deepseek-coder-1.3b-base", "main", "dense-bin"),
    "deepseek-ai-6.7b-base": Replica("deepseek-ai/deepseek-coder-6.7b-base", "main", "dense-sharded"),
}


def ensure_replica(name: str) -> Path:
    """The directory of replica `name`, built first if needed (TheBloke's main branch is the test
    model itself)."""
    replica = REPLICAS[name]
    model_dir = ensure_test_model()
    if replica.layout == "gptq" and replica.group_size == 128:
        return model_dir
    target = model_dir.parent / f"replica-{recipe_key()}-{name}"
    stamp = target / "fimls-replica.json"
    if stamp.is_file():
        return target
    with open(model_dir.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test processes may ask for the same replica
        if stamp.is_file():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=model_dir.parent))
        try:
            _write(replica, model_dir / DENSE_SUBDIR, staging)
            (staging / "fimls-replica.json").write_text(json.dumps({"name": name, "recipe": recipe_key()}))
            staging.chmod(0o755)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _write(replica: Replica, dense: Path, out: Path) -> None:
    if replica.layout == "gptq":
        quantize(dense, out, group_size=replica.group_size)
        return
    import torch
    from safetensors.torch import load_file, save_file

    state = {name: tensor.to(torch.bfloat16).contiguous() for name, tensor in load_file(str(dense / "model.safetensors")).items()}
    if replica.layout == "dense-bin":
        torch.save(state, out / "pytorch_model.bin")
        (out / "special_tokens_map.json").write_text(checkpoints.special_tokens_map_json(), encoding="utf-8")
    else:
        _write_shards(state, out)
    files = {
        "config.json": checkpoints.config_json(dimensions(), gptq_group_size=None),
        "generation_config.json": checkpoints.generation_config_json(),
        "tokenizer_config.json": checkpoints.tokenizer_config_json(),
    }
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    shutil.copy(dense / "tokenizer.json", out / "tokenizer.json")


def _write_shards(state: dict, out: Path) -> None:
    """Two shards of each format, split by layer as the real repository is, each with its index."""
    import torch
    from safetensors.torch import save_file

    names = sorted(state)
    first = [n for n in names if n.startswith("model.embed_tokens") or n.startswith("model.layers.0.")]
    shards = [first, [n for n in names if n not in first]]
    total = sum(t.numel() * t.element_size() for t in state.values())
    for stem, extension, index_name in (
        ("model", "safetensors", "model.safetensors.index.json"),
        ("pytorch_model", "bin", "pytorch_model.bin.index.json"),
    ):
        weight_map = {}
        for number, shard in enumerate(shards, start=1):
            file_name = f"{stem}-{number:05d}-of-{len(shards):05d}.{extension}"
            tensors = {n: state[n] for n in shard}
            if extension == "safetensors":
                save_file(tensors, str(out / file_name), metadata={"format": "pt"})
            else:
                torch.save(tensors, out / file_name)
            weight_map.update({n: file_name for n in shard})
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / index_name).write_text(json.dumps(index, indent=2))
