"""Build the small DeepSeek-Coder-shaped model that tests (and offline users) run on.

It is laid out as `TheBloke/deepseek-coder-1.3b-base-GPTQ` (main) is, so every test takes the path
users take: a byte-level BPE tokenizer with DeepSeek-Coder's pre-tokenizer sequence whose added
tokens carry DeepSeek-Coder's exact strings, ids (32000-32021) and `special` flags in a vocab of
32256 rows, DeepSeek's own tokenizer_config.json (the one that names `LlamaTokenizerFast`),
TheBloke's config.json (rope scaling linear x4 under the old `type` key, rope theta 100000, 16384
positions, BOS 32013 / EOS 32014, no grouped-query attention, a `quantization_config` without
`checkpoint_format`), quantize_config.json and generation_config.json, and act-order GPTQ 4-bit
weights with groups of 128 made by gptqmodel in one model.safetensors. Only the dimensions are
small. The dense float32 weights it was quantized from are kept in `dense/`, for the replicas of
the other repositories (tests/replicas.py) and for checking the quantized model against them. It is
trained for a short, fixed number of steps on fill-in-the-middle samples of the standard library,
enough to write indented, keyword-shaped code and to end a middle with EOS; tests must not need
more from it than that.

The corpus ships with fimls (`data/test-model-corpus.xz`: the Python standard library of one
CPython release, files of 1.5-40 KB), so the model trains on the same text on every machine and
every Python. Training is still not bit-identical across CPUs (AVX2 and AVX-512 sum in other
orders), which is why no test may depend on what this model says at a particular input: tests
choose their inputs at run time (tests/model_inputs.py). `FIMLS_TEST_MODEL_SEED` (or `fimls
make-test-model --seed N`) builds a differently seeded model, the way to prove that.

The build is deterministic on a given machine (fixed corpus, seed and thread count) and cached
under a key of the recipe, so a second call returns at once.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import lzma
import math
import os
import random
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Callable, ContextManager

from fimls import checkpoints
from fimls.checkpoints import BASE_VOCAB, BOS, EOS, FIM_BEGIN, FIM_END, FIM_HOLE, VOCAB_ROWS
import fcntl
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

log = logging.getLogger(__name__)

TEST_MODEL_ALIAS = "fimls:test-model"
RECIPE_VERSION = 6
DENSE_SUBDIR = "dense"

ARCHITECTURE = dict(
    hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, max_position_embeddings=16384, rope_theta=100000.0,
    rope_scaling={"type": "linear", "factor": 4.0}, rms_norm_eps=1e-6,
)
TRAIN = dict(steps=360, batch=16, seq_len=256, lr=3e-3, negatives=1024, seed=1234, threads=2)
DEFAULT_SEED = TRAIN["seed"]
SEED_ENV = "FIMLS_TEST_MODEL_SEED"
CORPUS = Path(__file__).resolve().parent / "data" / "test-model-corpus.xz"
# TheBloke's main branch: act-order (desc_act), groups of 128.
GPTQ = dict(bits=4, group_size=128, desc_act=True, calibration_samples=32)

# progress(title, total) opens a step of the build and yields the function that counts its units
# (fimls.stdio.Progress.step is one); `total` is None for a step that is not counted.
StepProgress = Callable[[str, "int | None"], ContextManager[Callable[[int], None]]]


def _no_progress(title: str, total: int | None = None) -> ContextManager[Callable[[int], None]]:
    return contextlib.nullcontext(lambda count=1: None)


def cache_root() -> Path:
    if os.environ.get("FIMLS_CACHE_DIR"):
        return Path(os.environ["FIMLS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fimls"


def seed() -> int:
    """The training seed: `FIMLS_TEST_MODEL_SEED`, else the recipe's own."""
    value = os.environ.get(SEED_ENV, "").strip()
    if not value:
        return DEFAULT_SEED
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{SEED_ENV} must be an integer, not {value!r}") from None


def train_settings() -> dict:
    return {**TRAIN, "seed": seed()}


@cache
def _corpus_digest() -> str:
    return hashlib.sha256(CORPUS.read_bytes()).hexdigest()[:16]


def recipe_key() -> str:
    recipe = {"version": RECIPE_VERSION, "arch": ARCHITECTURE, "train": train_settings(), "gptq": GPTQ,
              "corpus": _corpus_digest()}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def default_dir() -> Path:
    return cache_root() / f"test-model-{recipe_key()}"


def token_counter():
    """Counts tokens with the test model's tokenizer: exact budgets for benchmarks without a model."""
    # The settings import this module in every editor's process: transformers only when asked.
    from fimls.engine.model.tokenizer import load_tokenizer

    return load_tokenizer(str(ensure_test_model()), name=TEST_MODEL_ALIAS, local_only=True).count


def is_test_model_dir(directory: Path | str) -> bool:
    """Whether `directory` holds a test model this module built (under any recipe)."""
    return (Path(os.path.expanduser(str(directory))) / "fimls-test-model.json").is_file()


def _is_complete(directory: Path) -> bool:
    stamp = directory / "fimls-test-model.json"
    return stamp.is_file() and json.loads(stamp.read_text()).get("recipe") == recipe_key()


def ensure_test_model(directory: Path | str | None = None, progress: StepProgress | None = None) -> Path:
    """Return a directory holding the test model, building it first if needed. `FIMLS_TEST_MODEL_DIR`
    names one built elsewhere, used as is (the GPU kit carries one, built on another machine).
    `progress` is told the steps of a build (and of a wait for another process's)."""
    if directory is None and os.environ.get("FIMLS_TEST_MODEL_DIR"):
        return Path(os.environ["FIMLS_TEST_MODEL_DIR"])
    target = Path(directory) if directory is not None else default_dir()
    if _is_complete(target):
        return target
    progress = progress or _no_progress
    target.parent.mkdir(parents=True, exist_ok=True)

    with open(target.parent / f".{target.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with progress("waiting for another process building the test model"):
                fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_complete(target):
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            try:
                _build(staging, recipe_key(), progress)
                staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
                if target.exists():
                    shutil.rmtree(target)
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


def _corpus() -> list[str]:
    """The bundled source files, in a fixed order: the same text on every machine."""
    data = lzma.decompress(CORPUS.read_bytes()).decode("utf-8")
    return [entry.partition("\x00")[2] for entry in data.split("\x01")]


def _train_tokenizer(texts: list[str]):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.Sequence([])
    tokenizer.pre_tokenizer = checkpoints.pre_tokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    alphabet = [c for c in pre_tokenizers.ByteLevel.alphabet() if c not in checkpoints.FILLER_CHARACTERS]
    trainer = trainers.BpeTrainer(
        vocab_size=BASE_VOCAB, min_frequency=1, show_progress=False, initial_alphabet=alphabet
    )
    tokenizer.train_from_iterator(texts, trainer)
    if tokenizer.get_vocab_size() != BASE_VOCAB:
        raise RuntimeError(f"BPE training gave {tokenizer.get_vocab_size()} tokens, expected {BASE_VOCAB}")
    for content in checkpoints.FILLER_CHARACTERS:
        tokenizer.add_tokens([AddedToken(content, normalized=True, special=False)])
    for content, special in checkpoints.NAMED_TOKENS:
        token = AddedToken(content, normalized=True, special=special)
        (tokenizer.add_special_tokens if special else tokenizer.add_tokens)([token])
    # The real tokenizer prepends BOS to every encoding (add_bos_token), FIM prompts included.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 32013)]
    )
    return tokenizer


def _fim_sample(text: str, rng: random.Random, encode) -> list[int]:
    """One training sequence: plain code, or prefix-suffix-middle FIM as DeepSeek-Coder was trained."""
    lines = text.splitlines(keepends=True)
    start = rng.randrange(max(1, len(lines) - 12))
    chunk = lines[start : start + rng.randint(6, 24)]
    ids = {t: i for i, t in zip(range(32013, 32018), [BOS, EOS, FIM_HOLE, FIM_BEGIN, FIM_END])}
    # Holes start on a line with code: a middle of just "\n" teaches the model to say nothing.
    candidates = [i for i in range(1, len(chunk) - 1) if chunk[i].strip()]
    if rng.random() < 0.3 or not candidates:
        return [ids[BOS]] + encode("".join(chunk))
    body = "".join(chunk)
    first_line = rng.choice(candidates)
    first = sum(len(line) for line in chunk[:first_line])
    line_end = body.find("\n", first)
    if rng.random() < 0.5:
        # From the middle of a line to its end, as when a user types mid-line.
        hole_start = first + rng.randrange(0, max(1, line_end - first))
        hole_end = line_end + 1
    else:
        # One to three whole lines after their indentation, as when a user opens a new line.
        line = chunk[first_line]
        hole_start = first + len(line) - len(line.lstrip(" \t"))
        hole_end = sum(len(x) for x in chunk[: min(len(chunk), first_line + rng.randint(1, 3))])
    prefix, middle, suffix = body[:hole_start], body[hole_start:hole_end], body[hole_end:]
    return (
        [ids[BOS], ids[FIM_BEGIN]] + encode(prefix) + [ids[FIM_HOLE]] + encode(suffix)
        + [ids[FIM_END]] + encode(middle) + [ids[EOS]]
    )


def _sampled_softmax_loss(model, input_ids, pad: int, negatives: int, generator):
    """Cross-entropy over the batch's target tokens plus random negatives, not all 32256 rows.

    The full-vocabulary projection is ~90% of a step's cost at this size; sampling it lets the
    build see ten times more code in the same minute. The negatives are drawn from the whole
    vocabulary so rows the batch never targets are still pushed down.
    """
    import torch  # the training stack only when a model is built (see `token_counter`)

    hidden = model.model(input_ids=input_ids, attention_mask=(input_ids != pad).long()).last_hidden_state
    hidden, targets = hidden[:, :-1].reshape(-1, hidden.shape[-1]), input_ids[:, 1:].reshape(-1)
    keep = targets != pad
    hidden, targets = hidden[keep], targets[keep]
    random_rows = torch.randint(0, VOCAB_ROWS, (negatives,), generator=generator)
    candidates, inverse = torch.unique(torch.cat([targets, random_rows]), return_inverse=True)
    logits = hidden @ model.lm_head.weight[candidates].T
    # Each sampled non-target row stands for |V \ T| / |N \ T| rows of the full vocabulary: weigh
    # it so, or the rows the batch never targets are never pushed down and the full softmax is flat.
    is_target = torch.isin(candidates, targets)
    stand_ins = max(1, int((~is_target).sum()))
    weight = math.log((VOCAB_ROWS - int(is_target.sum())) / stand_ins)
    logits = logits + (~is_target).to(logits.dtype) * weight
    return torch.nn.functional.cross_entropy(logits, inverse[: len(targets)])


def _train_model(model, texts: list[str], encode, advance: Callable[[int], None]) -> None:
    import torch  # the training stack only when a model is built (see `token_counter`)

    train = train_settings()
    rng = random.Random(train["seed"])
    generator = torch.Generator().manual_seed(train["seed"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=TRAIN["lr"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, TRAIN["lr"], total_steps=TRAIN["steps"], pct_start=0.05)
    seq_len, pad = TRAIN["seq_len"], 32018
    model.train()
    for step in range(TRAIN["steps"]):
        batch = []
        for _ in range(TRAIN["batch"]):
            sample = _fim_sample(texts[rng.randrange(len(texts))], rng, encode)[:seq_len]
            batch.append(sample + [pad] * (seq_len - len(sample)))
        loss = _sampled_softmax_loss(model, torch.tensor(batch), pad, TRAIN["negatives"], generator)
        if step % 30 == 0:
            log.debug("test model: step %d sampled loss %.3f", step, loss.item())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        advance(1)
    model.eval()


def _build(out: Path, key: str, progress: StepProgress = _no_progress) -> None:
    with progress("loading torch and transformers"):
        # The training stack only when a model is built (see `token_counter`).
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed())
    torch.set_num_threads(TRAIN["threads"])
    texts = _corpus()
    with progress("training the tokenizer"):
        raw_tokenizer = _train_tokenizer(texts)
    encode = lambda s: raw_tokenizer.encode(s, add_special_tokens=False).ids  # noqa: E731

    # A copy: LlamaConfig normalizes rope_scaling in place, which would change the recipe key.
    config = LlamaConfig(
        vocab_size=VOCAB_ROWS, bos_token_id=32013, eos_token_id=32014, pad_token_id=None,
        tie_word_embeddings=False, **copy.deepcopy(ARCHITECTURE),
    )
    model = LlamaForCausalLM(config)
    with progress("training the model", TRAIN["steps"]) as advance:
        _train_model(model, texts, encode, advance)

    dense = out / DENSE_SUBDIR
    model.save_pretrained(dense)
    write_tokenizer_files(dense, raw_tokenizer)
    with progress(f"quantizing it to {GPTQ['bits']}-bit GPTQ"):
        quantize(dense, out, group_size=GPTQ["group_size"], texts=texts)
    (out / "fimls-test-model.json").write_text(json.dumps({"recipe": key, "alias": TEST_MODEL_ALIAS}))


def dimensions() -> dict[str, int]:
    return {k: ARCHITECTURE[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")}


def write_tokenizer_files(directory: Path, raw_tokenizer) -> None:
    """tokenizer.json as trained and DeepSeek-Coder's own tokenizer_config.json, to the byte."""
    raw_tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(checkpoints.tokenizer_config_json(), encoding="utf-8")


def calibration_texts(texts: list[str]) -> list[str]:
    rng = random.Random(seed() + 1)
    calibration = []
    for _ in range(GPTQ["calibration_samples"]):
        text = texts[rng.randrange(len(texts))]
        start = rng.randrange(max(1, len(text) - 1200))
        calibration.append(text[start : start + 1200])
    return calibration


# What a TheBloke GPTQ repository holds besides READMEs and licences (docs/facts.md §2).
THEBLOKE_FILES = {
    "config.json", "generation_config.json", "model.safetensors", "quantize_config.json",
    "tokenizer.json", "tokenizer_config.json",
}


def quantize(dense_dir: Path, out: Path, *, group_size: int, texts: list[str] | None = None) -> None:
    """Quantize the dense model in `dense_dir` into `out` as TheBloke's branches are: 4-bit,
    act-order, `group_size`, one model.safetensors, and TheBloke's metadata files verbatim.

    gptqmodel writes a `logs/` folder into the current directory while it quantizes; it runs in
    a scratch directory so that nothing lands where the user ran fimls.
    """
    # The quantizer only when a model is built (see `token_counter`).
    from gptqmodel import GPTQModel, QuantizeConfig
    from transformers import PreTrainedTokenizerFast

    texts = texts if texts is not None else _corpus()
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(dense_dir / "tokenizer.json"), bos_token=BOS, eos_token=EOS)
    config = QuantizeConfig(
        bits=GPTQ["bits"], group_size=group_size, desc_act=GPTQ["desc_act"], sym=True, damp_percent=0.1,
        offload_to_disk=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fimls-gptq-") as scratch, contextlib.chdir(scratch), \
            contextlib.redirect_stdout(sys.stderr):
        model = GPTQModel.load(str(dense_dir), config, device="cpu")
        model.quantize(calibration_texts(texts), batch_size=4, tokenizer=tokenizer)
        model.save(str(out))
    for extra in set(os.listdir(out)) - THEBLOKE_FILES:
        if (out / extra).is_file():
            (out / extra).unlink()  # gptqmodel's own metadata (quant_log.csv, its tokenizer files ...)
    files = {
        "config.json": checkpoints.config_json(dimensions(), gptq_group_size=group_size),
        "quantize_config.json": checkpoints.quantize_config_json(group_size),
        "generation_config.json": checkpoints.generation_config_json(),
        "tokenizer_config.json": checkpoints.tokenizer_config_json(),
    }
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    shutil.copy(dense_dir / "tokenizer.json", out / "tokenizer.json")
